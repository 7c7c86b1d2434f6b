"""Split a document into chunks: by structure (the default), by paragraph, or in fixed windows.

Every chunk is an exact slice ``doc.text[start:end]`` with no leading or trailing whitespace. The
chunks of a strategy cover every non-whitespace character of the document and, except for ``window``,
never overlap.

``structure`` follows how these work reports are written. Headings (``一、`` / ``（一）`` / ``第X章`` /
``第X条`` / Markdown ``#`` lines and short title lines) build a heading path. A paragraph's enumerated
items (inline ``一是……二是……``, ``一要``, ``第一，``, ``首先/其次/最后``, ``（一）``, ``1.``, ``1、``,
``(1)``, ``①``; or paragraphs that each start with the next marker) become one chunk each, and the
text before the first item (the lead-in) is a chunk of its own. An item chunk's ``context`` holds the
document title, the heading path and the lead-in, so it can be found by what the enumeration is about
while its cited text stays the item alone. Markers count only in sequence (一是, 二是, 三是 …) and
after a clause boundary, which rules out ``第一次``, ``统一是``, ``1.5亿元`` and dates.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from zhiwen.core.text import HEADING_SENTENCE_END as _HEADING_SENTENCE_END
from zhiwen.core.text import SENTENCE_END as _SENTENCE_END
from zhiwen.core.types import Chunk, Document, make_chunk_id
from zhiwen.core.vocab import CHUNKERS

WINDOW_CHARS = 200
WINDOW_OVERLAP = 40
HEADING_MAX_CHARS = 40  # a title line or a paragraph's opening heading sentence is at most this long
LEADIN_CONTEXT_CHARS = 160  # how much of a lead-in is repeated in its items' context

_CLAUSE_END = re.compile(r"[，、,：:]")
_LINE_END_PUNCT = set("。！？；：，、,.;:!?…—”’」』）)")
_BOUNDARY = set("。；！？：，;!?:,\n \t\u3000")
_CN = "一二三四五六七八九十"
_CN_VALUES = {c: i + 1 for i, c in enumerate(_CN[:9])}


@dataclass(frozen=True)
class _Marker:
    """An enumeration marker found in the text: ``一是`` at ``start`` … ``end``, family and ordinal."""

    start: int
    end: int
    family: str
    ordinal: int  # _LAST for a closing marker (``最后``) that ends a sequence of any length
    label: str


@dataclass(frozen=True)
class _Unit:
    """A chunk before ids are assigned: a trimmed span, its kind, context lines and metadata."""

    start: int
    end: int
    kind: str
    context: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


def _cn_number(numeral: str) -> int | None:
    """一 … 九十九 as an int; None for anything that is not a well-formed Chinese numeral."""
    if numeral == "十":
        return 10
    if len(numeral) == 1:
        return _CN_VALUES.get(numeral)
    tens, _, units = numeral.partition("十")
    if "十" not in numeral or "十" in units or len(tens) > 1:
        return None
    tens_value = 1 if not tens else _CN_VALUES.get(tens)
    units_value = 0 if not units else _CN_VALUES.get(units)
    if tens_value is None or units_value is None:
        return None
    return tens_value * 10 + units_value


_LAST = 0  # ordinal of a closing marker (最后), which ends a sequence of any length
_ORDER_WORDS = {"首先": 1, "其次": 2, "再次": 3, "最后": _LAST}
_NUM = f"[{_CN}]{{1,3}}"

# (family, with {v} standing for the named group v; pattern with the ordinal in group n; needs a boundary)
_ITEM_PATTERNS: tuple[tuple[str, re.Pattern[str], bool], ...] = (
    ("N{v}", re.compile(f"(?P<n>{_NUM})(?P<v>[是要])(?!否)"), True),
    ("第N", re.compile(f"第(?P<n>{_NUM})(?=[，,])"), True),
    ("首先", re.compile("(?P<n>首先|其次|再次|最后)(?=[，,])"), True),
    ("（N）", re.compile(f"[（(](?P<n>{_NUM})[）)]"), True),
    ("N、", re.compile(f"(?P<n>{_NUM})、(?!{_NUM}[、季月年])"), True),
    ("1{v}", re.compile(r"(?P<n>[1-9][0-9]?)(?P<v>[.．、])(?![0-9])"), True),
    ("(1)", re.compile(r"[（(](?P<n>[1-9][0-9]?)[）)]"), True),
    ("①", re.compile("(?P<n>[①-⑳])"), False),
)
_SECTION_FAMILIES = ("N、", "（N）")  # at the start of a paragraph these are headings, not items
_CHAPTER = re.compile(r"第[一二三四五六七八九十百零〇0-9]{1,5}[编章节]|#{1,6}(?=\s)")
_ARTICLE = re.compile(r"第[一二三四五六七八九十百零〇0-9]{1,5}条")


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    """``start``/``end`` moved inwards past whitespace; None when only whitespace is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _brief(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, at a sentence end when there is one."""
    if len(text) <= limit:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, limit)]
    return text[: ends[-1]] if ends else text[:limit] + "…"


def _first_sentence(text: str, start: int, end: int) -> int:
    """Where the first sentence of ``text[start:end]`` ends (a ``：`` also ends it)."""
    match = _HEADING_SENTENCE_END.search(text, start, end)
    return match.end() if match else end


def _ordinal(numeral: str) -> int | None:
    """The position a marker's numeral stands for; None when it is not a numeral."""
    if numeral in _ORDER_WORDS:
        return _ORDER_WORDS[numeral]
    if numeral.isascii():
        return int(numeral)
    if "①" <= numeral <= "⑳":
        return ord(numeral) - ord("①") + 1
    return _cn_number(numeral)


def _find_markers(text: str, start: int, end: int, seg_start: int) -> list[_Marker]:
    """All enumeration markers in ``text[start:end]`` that follow a clause boundary, in text order.

    ``seg_start`` is where the enclosing segment starts: a marker there needs no boundary before it.
    """
    found = []
    for family, pattern, needs_boundary in _ITEM_PATTERNS:
        for match in pattern.finditer(text, start, end):
            pos = match.start()
            if needs_boundary and pos != seg_start and text[pos - 1] not in _BOUNDARY:
                continue
            ordinal = _ordinal(match["n"])
            if ordinal is None:
                continue
            after = text[match.end() : match.end() + 5]
            if family == "N{v}" and re.match(f"{match['n']}[，、。；]", after):
                continue  # "一是一，二是二" is an idiom, not an enumeration
            verb = (match.groupdict().get("v") or "").replace("．", ".")
            found.append(_Marker(pos, match.end(), family.format(v=verb), ordinal, match[0]))
    return sorted(found, key=lambda m: (m.start, -m.end))


def _runs(markers: list[_Marker]) -> list[list[_Marker]]:
    """Sequences 1, 2, 3 … (two or more markers of one family, in order), by first position."""
    runs: list[list[_Marker]] = []
    open_runs: dict[str, list[_Marker]] = {}
    for marker in markers:
        current = open_runs.get(marker.family)
        if marker.ordinal == 1:
            if current and len(current) > 1:
                runs.append(current)
            open_runs[marker.family] = [marker]
        elif current and marker.ordinal in (_LAST, current[-1].ordinal + 1):
            current.append(marker)
            if marker.ordinal == _LAST:
                runs.append(current)
                del open_runs[marker.family]
    runs.extend(run for run in open_runs.values() if len(run) > 1)
    return sorted(runs, key=lambda run: run[0].start)


def _first_run(text: str, start: int, end: int, seg_start: int) -> list[_Marker] | None:
    runs = _runs(_find_markers(text, start, end, seg_start))
    return runs[0] if runs else None


def _cut_candidates(text: str, start: int, end: int) -> list[list[int]]:
    """Places to cut ``text[start:end]``, best kind first: sentence ends, line breaks, clause marks."""
    sentences = [m.end() for m in _SENTENCE_END.finditer(text, start, end)]
    lines = [m.end() for m in re.finditer("\n", text[start:end])]
    clauses = [m.end() for m in _CLAUSE_END.finditer(text, start, end)]
    return [sentences, [start + offset for offset in lines], clauses]


def split_span(text: str, start: int, end: int, max_chars: int, min_chars: int) -> list[tuple[int, int]]:
    """Cut ``text[start:end]`` into trimmed pieces of at most ``max_chars``, at sentence ends if possible.

    Pieces aim at an even length; a piece shorter than ``min_chars`` joins its neighbour.
    """
    span = _trim(text, start, end)
    if span is None:
        return []
    start, end = span
    if end - start <= max_chars:
        return [(start, end)]
    target = (end - start) / math.ceil((end - start) / max_chars)
    candidates = _cut_candidates(text, start, end)
    pieces = []
    cursor = start
    while end - cursor > max_chars:
        cut = cursor + max_chars
        for cuts in candidates:
            lo = bisect.bisect_left(cuts, cursor + max(min_chars, 1))
            hi = bisect.bisect_right(cuts, cursor + max_chars)
            if lo < hi:
                cut = min(cuts[lo:hi], key=lambda c: abs(c - cursor - target))
                break
        pieces.append((cursor, cut))
        cursor = cut
    pieces.append((cursor, end))
    trimmed = [span for span in (_trim(text, s, e) for s, e in pieces) if span]
    if len(trimmed) > 1 and trimmed[-1][1] - trimmed[-1][0] < min_chars:
        trimmed[-2:] = [(trimmed[-2][0], trimmed[-1][1])]
    return trimmed


def _merge_forward(units: list[_Unit], small: Callable[[_Unit], bool], last_back: bool = True) -> list[_Unit]:
    """Fold each unit for which ``small`` holds into the next one; the last one, into the previous."""
    merged: list[_Unit] = []
    carry: int | None = None
    for index, unit in enumerate(units):
        if carry is not None:
            unit = replace(unit, start=carry)
            carry = None
        if small(unit) and index + 1 < len(units):
            carry = unit.start
            continue
        if small(unit) and merged and last_back:
            merged[-1] = replace(merged[-1], end=unit.end)
            continue
        merged.append(unit)
    return merged


def _pieces(text: str, unit: _Unit, max_chars: int, min_chars: int, carry_head: bool = True) -> list[_Unit]:
    """``unit`` itself when its span fits, else ``part`` units of it.

    With ``carry_head``, parts after the first also carry the span's first sentence (in these reports,
    its topic) in their context.
    """
    spans = split_span(text, unit.start, unit.end, max_chars, min_chars)
    if len(spans) <= 1:
        return [replace(unit, start=s, end=e) for s, e in spans]
    head = _brief(text[spans[0][0] : _first_sentence(text, spans[0][0], spans[0][1])], LEADIN_CONTEXT_CHARS)
    return [
        _Unit(
            s,
            e,
            "part",
            (*unit.context, head) if carry_head and i > 0 else unit.context,
            {**unit.meta, "part_index": i + 1, "part_count": len(spans)},
        )
        for i, (s, e) in enumerate(spans)
    ]


def _split_segment(
    text: str, segment: _Unit, search_from: int, max_chars: int, min_chars: int
) -> list[_Unit]:
    """Units for ``segment``'s span: its lead-in and one group per enumerated item, recursively.

    Markers are looked for from ``search_from`` on (after the marker that opens the segment).
    """
    start, end, context, meta = segment.start, segment.end, segment.context, segment.meta
    run = _first_run(text, search_from, end, start)
    if run is None:
        return _pieces(text, segment, max_chars, min_chars)
    units: list[_Unit] = []
    lead = _trim(text, start, run[0].start)
    if lead:
        units += _pieces(text, _Unit(*lead, "leadin", context, meta), max_chars, min_chars)
        context = (*context, _brief(text[lead[0] : lead[1]], LEADIN_CONTEXT_CHARS))
    for index, marker in enumerate(run):
        item_end = run[index + 1].start if index + 1 < len(run) else end
        item_meta = {
            **meta,
            "item_label": marker.label,
            "item_index": index + 1,
            "item_count": len(run),
            "item_path": [*meta.get("item_path", []), marker.label],
        }
        item = _Unit(marker.start, item_end, "item", context, item_meta)
        units += _split_segment(text, item, marker.end, max_chars, min_chars)
    return _merge_forward(units, lambda u: u.end - u.start < min_chars)


# --- structure: lines, blocks and headings -------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    """A paragraph (one line, or lines joined across soft line breaks) or a heading line."""

    start: int
    end: int
    heading: bool


def _lines(text: str) -> list[tuple[int, int] | None]:
    """Trimmed span of every line of ``text``; None for blank lines."""
    spans: list[tuple[int, int] | None] = []
    offset = 0
    for line in text.split("\n"):
        spans.append(_trim(text, offset, offset + len(line)))
        offset += len(line) + 1
    return spans


def _starts_with_marker(text: str, start: int, end: int) -> bool:
    return bool(_CHAPTER.match(text, start, end) or _ARTICLE.match(text, start, end)) or any(
        m.start == start for m in _find_markers(text, start, min(end, start + 8), start)
    )


def _is_heading_line(
    text: str, span: tuple[int, int], prev_blank: bool, next_blank: bool, first: bool
) -> bool:
    """A short line without closing punctuation that is a title, or a numbered heading line."""
    start, end = span
    if end - start > HEADING_MAX_CHARS or text[end - 1] in _LINE_END_PUNCT:
        return False
    if _CHAPTER.match(text, start, end) or _ARTICLE.match(text, start, end):
        return True
    if any(
        m.start == start and m.family in _SECTION_FAMILIES for m in _find_markers(text, start, end, start)
    ):
        return True
    return first or (prev_blank and next_blank)


def _blocks(text: str) -> list[_Block]:
    """Headings and paragraphs in reading order; a line without closing punctuation runs on."""
    lines = _lines(text)
    blocks: list[_Block] = []
    first = True
    joining = False
    for i, span in enumerate(lines):
        if span is None:
            joining = False
            continue
        prev_blank = i == 0 or lines[i - 1] is None
        next_blank = i + 1 == len(lines) or lines[i + 1] is None
        if _is_heading_line(text, span, prev_blank, next_blank, first):
            blocks.append(_Block(*span, heading=True))
            joining = False
        elif joining and not _starts_with_marker(text, *span):
            blocks[-1] = _Block(blocks[-1].start, span[1], heading=False)
        else:
            blocks.append(_Block(*span, heading=False))
        first = False
        joining = not blocks[-1].heading and text[span[1] - 1] not in _LINE_END_PUNCT and not next_blank
    return blocks


def _heading_family(text: str, start: int, end: int) -> str | None:
    """The numbering family of a heading that opens ``text[start:end]``, if any."""
    if match := _CHAPTER.match(text, start, end):
        return "#" if match[0].startswith("#") else match[0][-1]
    if _ARTICLE.match(text, start, end):
        return "条"
    markers = _find_markers(text, start, end, start)
    opening = next((m for m in markers if m.start == start and m.family in _SECTION_FAMILIES), None)
    if opening is None:
        return None
    run = _runs(markers)
    if run and run[0][0].start == start:
        return None  # the paragraph is an inline enumeration（一）…（二）…, not a section
    return opening.family


class _HeadingPath:
    """The headings in force: a new heading replaces the one of its family and everything below it."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []

    def push(self, family: str, heading: str) -> None:
        families = [f for f, _ in self.entries]
        if family in families:
            del self.entries[families.index(family) :]
        self.entries.append((family, heading))

    def texts(self) -> list[str]:
        return [heading for _, heading in self.entries]


def _paragraph_opening(text: str, block: _Block) -> tuple[str, str, int] | None:
    """For a paragraph opening with a section marker: (family, heading text, where the body starts)."""
    family = _heading_family(text, block.start, block.end)
    if family is None:
        return None
    if family == "条":
        label = _ARTICLE.match(text, block.start, block.end)[0]
        return family, label, block.start
    sentence_end = _first_sentence(text, block.start, block.end)
    heading = text[block.start : sentence_end].rstrip("。！？；：!?;:")
    if sentence_end - block.start <= HEADING_MAX_CHARS:
        return family, heading, sentence_end
    return family, _brief(heading, HEADING_MAX_CHARS), block.start


def _opening_item(text: str, block: _Block) -> _Marker | None:
    """An item marker opening a paragraph whose next item is not in the same paragraph."""
    markers = _find_markers(text, block.start, block.end, block.start)
    opening = next((m for m in markers if m.start == block.start and m.family not in _SECTION_FAMILIES), None)
    if opening is None:
        return None
    runs = _runs(markers)
    if runs and runs[0][0].start == block.start:
        return None
    return opening


def _paragraph_items(text: str, blocks: list[_Block]) -> dict[int, tuple[_Marker, int, int, str]]:
    """Paragraphs that each open with the next item marker (一是…\\n二是…): block -> (marker, i, n, lead-in)."""
    items: dict[int, tuple[_Marker, int, int, str]] = {}
    current: list[tuple[int, _Marker]] = []

    def close() -> None:
        if len(current) > 1:
            first = current[0][0]
            lead = ""
            if first > 0 and not blocks[first - 1].heading and (first - 1) not in items:
                previous = blocks[first - 1]
                sentences = [m.end() for m in _SENTENCE_END.finditer(text, previous.start, previous.end - 1)]
                lead = text[(sentences[-1] if sentences else previous.start) : previous.end].strip()
            for index, (block_index, marker) in enumerate(current):
                items[block_index] = (marker, index + 1, len(current), _brief(lead, LEADIN_CONTEXT_CHARS))
        current.clear()

    for block_index, block in enumerate(blocks):
        if block.heading:
            close()
            continue
        marker = _opening_item(text, block)
        if marker is None:
            continue
        last = current[-1][1] if current else None
        if (
            last
            and last.family == marker.family
            and last.ordinal != _LAST
            and marker.ordinal in (_LAST, last.ordinal + 1)
        ):
            current.append((block_index, marker))
        elif marker.ordinal == 1:
            close()
            current.append((block_index, marker))
    close()
    return items


def _structure_units(doc: Document, max_chars: int, min_chars: int) -> list[_Unit]:
    text = doc.text
    blocks = _blocks(text)
    listed = _paragraph_items(text, blocks)
    path = _HeadingPath()
    in_body = False
    units: list[_Unit] = []
    for index, block in enumerate(blocks):
        if block.heading:
            family = _heading_family(text, block.start, block.end) or "title"
            if family != "title" or in_body:  # title lines before the first paragraph are the title block
                path.push(family, text[block.start : block.end])
            units.append(_Unit(block.start, block.end, "heading", (), {"heading_path": path.texts()}))
            continue
        in_body = True
        body_start = block.start
        opening = _paragraph_opening(text, block)
        if opening:
            family, heading, body_start = opening
            path.push(family, heading)
            if body_start > block.start:
                units.append(_Unit(block.start, body_start, "heading", (), {"heading_path": path.texts()}))
        meta: dict[str, Any] = {"heading_path": path.texts(), "paragraph_index": index}
        context = tuple(filter(None, [doc.title, " > ".join(path.texts())]))
        search_from, kind = body_start, "paragraph"
        if index in listed:
            marker, item_index, item_count, lead = listed[index]
            meta |= {"item_label": marker.label, "item_index": item_index, "item_count": item_count}
            meta["item_path"] = [marker.label]
            context = (*context, lead) if lead else context
            search_from, kind = marker.end, "item"
        segment = _Unit(body_start, block.end, kind, context, meta)
        units += _split_segment(text, segment, search_from, max_chars, min_chars)
    units = _merge_forward(units, lambda u: u.kind == "heading", last_back=False)
    return _merge_forward(units, lambda u: u.end - u.start < min_chars)


def _paragraph_units(doc: Document, max_chars: int, min_chars: int) -> list[_Unit]:
    units: list[_Unit] = []
    context = (doc.title,) if doc.title else ()
    for index, span in enumerate(s for s in _lines(doc.text) if s):
        meta = {"paragraph_index": index}
        paragraph = _Unit(*span, "paragraph", context, meta)
        units += _pieces(doc.text, paragraph, max_chars, min_chars, carry_head=False)
    return units


def _window_units(doc: Document, max_chars: int, min_chars: int) -> list[_Unit]:
    units: list[_Unit] = []
    context = (doc.title,) if doc.title else ()
    step = WINDOW_CHARS - WINDOW_OVERLAP
    for start in range(0, max(len(doc.text) - WINDOW_OVERLAP, 1), step):
        span = _trim(doc.text, start, min(start + WINDOW_CHARS, len(doc.text)))
        if span:
            units.append(_Unit(*span, "window", context, {"window_index": len(units)}))
    return units


_STRATEGIES: dict[str, Callable[[Document, int, int], list[_Unit]]] = {
    "structure": _structure_units,
    "paragraph": _paragraph_units,
    "window": _window_units,
}


def split_document(
    doc: Document, strategy: str = "structure", max_chars: int = 360, min_chars: int = 24
) -> list[Chunk]:
    """Cut ``doc`` into chunks in reading order with the named strategy (one of ``CHUNKERS``).

    ``max_chars`` bounds a chunk's length (a heading folded into the chunk after it may add to it);
    chunks shorter than ``min_chars`` are joined to a neighbour. Ids are stable for the same input.
    """
    if strategy not in _STRATEGIES:
        raise ValueError(f"unknown chunking strategy {strategy!r}; choose one of {', '.join(CHUNKERS)}")
    page_starts = doc.meta.get("page_starts")
    seen: dict[str, int] = {}
    chunks = []
    for unit in _STRATEGIES[strategy](doc, max_chars, min_chars):
        text = doc.text[unit.start : unit.end]
        context = "\n".join(dict.fromkeys(unit.context))
        meta = dict(unit.meta)
        if page_starts:
            meta["page"] = bisect.bisect_right(page_starts, unit.start)
        chunks.append(
            Chunk(
                chunk_id=make_chunk_id(doc.doc_id, text, context, seen),
                doc_id=doc.doc_id,
                title=doc.title,
                text=text,
                start=unit.start,
                end=unit.end,
                context=context,
                kind=unit.kind,
                meta=meta,
            )
        )
    return chunks
