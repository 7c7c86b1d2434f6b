"""A document's outline: sections, paragraphs, enumerations and their items, each an exact span, with roles.

Work reports have a fixed shape: a preamble, the work done, the problems, the plans, each in numbered
sections (``一、`` ``（一）`` ``1.``) or in paragraphs that open with a topic sentence ("优服务强保障，提升
金融服务质效。"), with measures listed as items (``一是……二是……``, or short headline sentences such as
"以上率下抓“领学”。"). The outline records that shape independently of how a chunker cut the text, so an
answer can list every item of the enumeration a question asks about, and say which part of the report
(``role``: overview, done, problem, plan) a passage comes from.

Every node is a span of the document text: ``text[start:end]`` is the whole node and
``text[head_start:head_end]`` its heading, lead-in or headline (empty when it has none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from itertools import pairwise
from typing import Any

from zhiwen.core.text import SENTENCE_END
from zhiwen.core.types import Chunk, outline_path
from zhiwen.core.types import OutlineNode as Node
from zhiwen.core.vocab import ROLES

from .split import (
    HEADING_MAX_CHARS,
    _blocks,
    _first_run,
    _first_sentence,
    _heading_family,
    _paragraph_items,
    _paragraph_opening,
    _trim,
)

TOPIC_MIN_PARAGRAPH = 3  # a topic sentence heads a paragraph at least this many times its length
HEADLINE_MAX_CHARS = 15  # an unnumbered item's headline sentence ("加强党的全面领导。") is at most this long


class RoleCuesError(ValueError):
    """The role cue file is malformed; the message names the file and line."""


@dataclass
class _Draft:
    """A node while the outline is being built (spans and parents still change)."""

    parent: int | None
    kind: str
    label: str
    start: int
    end: int
    head: tuple[int, int]
    family: str = ""
    position: int = 0
    count: int = 0
    children: list[int] = field(default_factory=list)


class _Builder:
    def __init__(self, text: str) -> None:
        self.text = text
        self.drafts: list[_Draft] = []
        self.sections: list[tuple[str, int]] = []  # open sections: (numbering family, draft index)

    def add(
        self, parent: int | None, kind: str, start: int, end: int, head: tuple[int, int], **kw: Any
    ) -> int:
        self.drafts.append(_Draft(parent, kind, kw.pop("label", ""), start, end, head, **kw))
        index = len(self.drafts) - 1
        if parent is not None:
            self.drafts[parent].children.append(index)
        return index

    def open_section(self, family: str, start: int, head: tuple[int, int], label: str) -> int:
        """A section of ``family`` closes every open section from the one of its family down."""
        families = [f for f, _ in self.sections]
        if family in families:
            del self.sections[families.index(family) :]
        parent = self.sections[-1][1] if self.sections else None
        index = self.add(parent, "section", start, head[1], head, family=family, label=label)
        self.sections.append((family, index))
        return index

    def current(self) -> int | None:
        return self.sections[-1][1] if self.sections else None

    def enumerations(self, start: int, end: int, search_from: int, parent: int | None) -> bool:
        """Enumerations in ``text[start:end]`` (markers from ``search_from``), nested; False when none."""
        run = _first_run(self.text, search_from, end, start)
        if run is None:
            return False
        lead = _trim(self.text, start, run[0].start)
        head = lead or (run[0].start, run[0].start)
        enum = self.add(parent, "enumeration", head[0], end, head)
        for i, marker in enumerate(run):
            item_end = run[i + 1].start if i + 1 < len(run) else end
            self.item(enum, marker.start, item_end, marker.label, i + 1, len(run), marker.end)
        return True

    def item(self, enum: int, start: int, end: int, label: str, position: int, count: int, body: int) -> None:
        span = _trim(self.text, start, end) or (start, end)
        headline = _trim(self.text, start, _first_sentence(self.text, start, span[1])) or span
        node = self.add(enum, "item", *span, headline, label=label, position=position, count=count)
        self.enumerations(span[0], span[1], body, node)

    def implicit_items(self, start: int, end: int, parent: int) -> None:
        """Short headline sentences that each open a run of explanation ("以上率下抓“领学”。…")."""
        cuts = [start, *(m.end() for m in SENTENCE_END.finditer(self.text, start, end))]
        sentences = [s for s in (_trim(self.text, a, b) for a, b in pairwise(cuts)) if s]
        heads = [
            i
            for i, (a, b) in enumerate(sentences)
            if b - a <= HEADLINE_MAX_CHARS
            and i + 1 < len(sentences)
            and sentences[i + 1][1] - sentences[i + 1][0] > b - a
        ]
        if len(heads) < 2:
            return
        lead = _trim(self.text, start, sentences[heads[0]][0])
        head = lead or (sentences[heads[0]][0], sentences[heads[0]][0])
        enum = self.add(parent, "enumeration", head[0], end, head)
        for position, i in enumerate(heads, 1):
            item_end = sentences[heads[position]][0] if position < len(heads) else end
            a, b = sentences[i]
            self.item(enum, a, item_end, "", position, len(heads), b)

    def topic_sentence(self, start: int, end: int) -> int | None:
        """Where a paragraph's opening topic sentence ends ("优服务强保障，提升金融服务质效。"), if it has one."""
        first_end = _first_sentence(self.text, start, end)
        sentence = self.text[start:first_end]
        if (
            first_end - start <= HEADING_MAX_CHARS
            and sentence.endswith("。")
            and "，" in sentence
            and end - start >= TOPIC_MIN_PARAGRAPH * (first_end - start)
        ):
            return first_end
        return None


def build_outline(text: str) -> list[Node]:
    """The outline of a document's text: nodes in reading order, parents before their children."""
    b = _Builder(text)
    blocks = _blocks(text)
    listed = _paragraph_items(text, blocks)
    listing: dict[tuple[int, int], int] = {}  # cross-paragraph enumerations: (section, first block) -> draft
    in_body = False
    for index, block in enumerate(blocks):
        if block.heading:
            family = _heading_family(text, block.start, block.end) or "title"
            if family != "title" or in_body:  # title lines before the first paragraph are the title block
                b.open_section(family, block.start, (block.start, block.end), _label(text, block.start))
            continue
        in_body = True
        body = block.start
        topic = False
        opening = _paragraph_opening(text, block)
        if opening:
            family, label, body = opening
            if family == "条":
                head = (block.start, block.start + len(label))
            else:
                head = _trim(text, block.start, _first_sentence(text, block.start, block.end)) or (
                    block.start,
                    block.end,
                )
                head = (head[0], head[1] - _closing(text, head))
            b.open_section(family, block.start, head, _label(text, block.start))
        elif (
            not b.sections and index not in listed and (topic_end := b.topic_sentence(block.start, block.end))
        ):
            b.open_section("topic", block.start, (block.start, topic_end - 1), "")
            body, topic = topic_end, True
        parent = b.current()
        if index in listed:
            marker, position, count, _ = listed[index]
            first = index - position + 1
            key = (parent if parent is not None else -1, first)
            if key not in listing:
                end = blocks[first + count - 1].end
                listing[key] = b.add(
                    parent, "enumeration", block.start, end, _lead_in(text, blocks, first, listed)
                )
            b.item(listing[key], block.start, block.end, marker.label, position, count, marker.end)
            continue
        span = _trim(text, body, block.end)
        if span is not None:
            paragraph = b.add(
                parent, "paragraph", *span, _trim(text, span[0], _first_sentence(text, *span)) or span
            )
            if not b.enumerations(span[0], span[1], span[0], paragraph) and topic:
                b.implicit_items(span[0], span[1], paragraph)
        if topic:
            b.sections.pop()  # a topic paragraph's section ends with its paragraph
    return _assign_roles(text, _close(b.drafts))


def _lead_in(text: str, blocks: list, first: int, listed: dict) -> tuple[int, int]:
    """The lead-in of items that each open a paragraph: the last sentence of the paragraph before them."""
    if first == 0 or blocks[first - 1].heading or (first - 1) in listed:
        return (blocks[first].start, blocks[first].start)
    previous = blocks[first - 1]
    ends = [m.end() for m in SENTENCE_END.finditer(text, previous.start, previous.end - 1)]
    return _trim(text, ends[-1] if ends else previous.start, previous.end) or (previous.start, previous.end)


def _label(text: str, start: int) -> str:
    """The numbering a heading opens with ("一、", "（一）", "第二章"), or ""."""
    match = re.match(
        r"第[一二三四五六七八九十百零〇0-9]{1,5}[编章节条]|[一二三四五六七八九十]{1,3}、|[（(][一二三四五六七八九十]{1,3}[）)]|[0-9]{1,2}[.．、]",
        text[start : start + 8],
    )
    return match[0] if match else ""


def _closing(text: str, span: tuple[int, int]) -> int:
    """How many closing punctuation marks end ``span`` (a heading's 。 is not part of its title)."""
    return 1 if text[span[1] - 1] in "。；：:;" else 0


def _close(drafts: list[_Draft]) -> list[Node]:
    """Freeze drafts into nodes; a section or enumeration ends where its last descendant ends."""
    ends = [d.end for d in drafts]
    for index in range(len(drafts) - 1, -1, -1):
        for child in drafts[index].children:
            ends[index] = max(ends[index], ends[child])
    return [
        Node(i, d.parent, d.kind, d.label, d.start, ends[i], *d.head, position=d.position, count=d.count)
        for i, d in enumerate(drafts)
    ]


@lru_cache(maxsize=1)
def role_cues() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """The role cues of ``core/data/roles.txt``: (role, one pattern of all its cues), in file order."""
    path = resources.files("zhiwen.core") / "data" / "roles.txt"
    cues = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        role, sep, words = line.partition(":")
        if not sep or role.strip() not in ROLES or not words.split():
            raise RoleCuesError(
                f"{path}:{number}: expected 'role: cue cue …' with a role of {', '.join(ROLES)}"
            )
        try:
            pattern = re.compile("|".join(f"(?:{w})" for w in words.split()))
        except re.error as exc:
            raise RoleCuesError(f"{path}:{number}: bad cue pattern ({exc})") from None
        cues.append((role.strip(), pattern))
    return tuple(cues)


def cued_roles(text: str) -> list[str]:
    """The roles whose cues occur in ``text``, the earliest occurrence first.

    After a "但" (but) only what follows counts: "取得了积极成效，但…还存在一些不足" is about the problems.
    """
    text = text[text.rfind("但") + 1 :]
    found = [(m.start(), order, role) for order, (role, p) in enumerate(role_cues()) if (m := p.search(text))]
    return [role for _, _, role in sorted(found)]


def _assign_roles(text: str, nodes: list[Node]) -> list[Node]:
    """Roles from headings (and opening sentences where a part has no heading), inherited downwards.

    A part inherits its parent's role unless the parent's heading named no role or named several (a
    "problems and next steps" section): then the part's own cues decide. Parts before the first section
    are the preamble (overview).
    """
    roles: list[str] = []
    decided: list[bool] = []  # whether the role came from a single clear cue (children then inherit it)
    first_section = next((n.start for n in nodes if n.kind == "section"), len(text))
    for node in nodes:
        own = cued_roles(node.head(text)) if node.head_end > node.head_start else []
        if node.parent is None and node.end <= first_section:
            role, clear = "overview", False  # the preamble, whatever it mentions
        elif node.parent is not None and decided[node.parent]:
            role, clear = roles[node.parent], True
        elif own:
            role, clear = own[0], len(set(own)) == 1 and node.kind in ("section", "enumeration")
        elif node.parent is not None:
            role, clear = roles[node.parent], False
        else:
            role, clear = "done", False
        roles.append(role)
        decided.append(clear)
    return [replace(n, role=r) for n, r in zip(nodes, roles, strict=True)]


def place_chunk(chunk: Chunk, text: str, nodes: list[Node]) -> Chunk:
    """``chunk`` with its place in the document's outline added to its metadata.

    ``role`` (the part of the report), ``section_path`` (the headings above it, outermost first),
    ``outline_node`` (the deepest node holding its start), and, inside an enumeration, ``enumeration``
    (that node's index: its items are the chunk's siblings) with ``position`` and ``count`` (k of N).
    """
    path = outline_path(nodes, chunk.start)
    meta = {k: v for k, v in chunk.meta.items() if k not in _PLACE_KEYS}
    meta["role"] = path[-1].role if path else "overview"
    meta["section_path"] = [n.head(text) for n in path if n.kind == "section"]
    if path:
        meta["outline_node"] = path[-1].index
    item = next((n for n in reversed(path) if n.kind == "item"), None)
    if item is not None:
        meta |= {"enumeration": item.parent, "position": item.position, "count": item.count}
    return replace(chunk, meta=meta)


_PLACE_KEYS = ("role", "section_path", "outline_node", "enumeration", "position", "count")
