"""Compose an offline answer that answers the question asked, from the passages retrieval found.

A question wants something particular of a work report (``intent.understand``): every measure of an
enumeration ("金融促进消费有哪些措施？"), the problems, the plans, or one fact. The composer:

1. puts passages of the wanted part of the report first (the ``role`` the outline gave them) and leaves
   out the wrong part: the problems are not the answer to "怎么解决";
2. for a list, looks up the enumeration or section the question is about in the document's outline and
   answers with all of its items, in order, each with its headline and its own citation; it says
   "共N项措施" (or 问题, 工作打算) only when it lists all N;
3. otherwise quotes, from each passage, only the sentences about the question's subject;
4. groups what it quotes by document, with the document's title, issuer and year.

Every citation is an exact slice of its document. Pure: the document texts and outlines come from a
``Library`` (an index generation), so the composer does no I/O of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from zhiwen.core.text import sentences
from zhiwen.core.tokenize import tokenize
from zhiwen.core.types import Citation, Document, Hit, OutlineNode, outline_path
from zhiwen.core.vocab import ROLES

from .intent import QuestionIntent, generic_words, understand

MAX_PASSAGES = 4  # passages quoted when the answer is not one enumeration
MIN_TOPIC_SHARE = 0.5  # a heading names the question's subject when it holds this share of its words
ROLE_NOUN = {"done": "项措施", "problem": "个问题", "plan": "项工作打算", "overview": "项"}
ROLE_LABEL = {"done": "已开展的工作", "problem": "存在的问题", "plan": "下一步打算", "overview": "概述"}


class Library(Protocol):
    """What the composer reads: a document's text and outline (``core.index.Generation`` has both)."""

    def document(self, doc_id: str) -> Document | None: ...

    def outline(self, doc_id: str) -> list[OutlineNode]: ...


@dataclass(frozen=True)
class Quote:
    """A cited piece of an answer: its document span, the hit it came from, and how it is introduced."""

    hit: Hit
    start: int
    end: int
    prefix: str = ""  # shown before the quote (an item's headline when the quote is inside the item)


def topic_words(question: str, intent: QuestionIntent) -> set[str]:
    """The words naming what the question is about: its topic's tokens without generic words."""
    words = set(tokenize(intent.topic or question)) - generic_words()
    return {w for w in words if len(w) > 1 or not w.isascii()}


def wanted_roles(intent: QuestionIntent) -> tuple[str, ...]:
    """The report parts that answer the question, best first."""
    if intent.facet == "problem":
        return ("problem",)
    if intent.facet == "plan":
        return ("plan",)
    if intent.wants_measures:
        return ("done", "plan")
    if intent.intent in ("list", "fact"):
        return ("done",) if intent.intent == "list" else ("done", "plan", "overview")
    return ("done", "plan", "overview", "problem")


def by_role(hits: Sequence[Hit], intent: QuestionIntent) -> tuple[list[Hit], bool]:
    """Hits of the wanted parts of the report, best part first; (all hits, False) when none is."""
    roles = wanted_roles(intent)
    wanted = [h for h in hits if _role(h) in roles]
    if not wanted:
        return list(hits), False
    return sorted(wanted, key=lambda h: roles.index(_role(h))), True


def _role(hit: Hit) -> str:
    return str(hit.meta.get("role", "done"))


def compose(question: str, hits: Sequence[Hit], library: Library | None) -> tuple[str, list[Citation]]:
    """The answer text with ``[n]`` markers and its citations, from ``hits`` (in scope, relevant)."""
    intent = understand(question)
    words = topic_words(question, intent)
    ranked, on_facet = by_role(hits, intent)
    if library is not None and intent.intent in ("list", "problem", "plan"):
        group = target_group(question, ranked, words, library, wanted_roles(intent))
        if group is not None:
            text, citations = _group_answer(group, library, words, wanted_roles(intent))
            # Another report that also speaks of the subject is part of the answer too ("推动企业上市方面做了
            # 哪些工作？": the 市局 section and the 汇报发言's sentence), quoted after the group.
            others = [
                h for h in ranked[:MAX_PASSAGES] if h.doc_id != group[0].doc_id and _names(h.text, words)
            ]
            if not others:
                return text, citations
            more, extra = _render(
                [q for h in others for q in _quotes(h, words, intent)], library, "", len(citations)
            )
            return f"{text}\n\n{more}", citations + extra
    quotes = [q for h in ranked[:MAX_PASSAGES] for q in _quotes(h, words, intent)]
    label = "" if on_facet else f"（知识库中没有{ROLE_LABEL[wanted_roles(intent)[0]]}，以下为相关内容）"
    return _render(quotes, library, label)


def target_group(
    question: str, hits: Sequence[Hit], words: set[str], library: Library, roles: Sequence[str] = ROLES
) -> tuple[Hit, OutlineNode | None] | None:
    """The part of a report the question asks about, found from the top hits, or None.

    The innermost section, enumeration or item around a top hit whose heading names the question's
    subject; or the whole document when its title does (the node is then None); for a question naming no
    subject ("2022年…做了哪些工作？"), the outermost part of the wanted role that lists several things;
    failing those, an enumeration holding two of the top hits (retrieval agrees on it).
    """
    top = [(h, library.document(h.doc_id)) for h in hits[:3]]
    top = [(h, d) for h, d in top if d is not None]
    best: tuple[tuple[int, int, int, int], tuple[Hit, OutlineNode]] | None = None
    for rank, (hit, document) in enumerate(top):
        nodes = library.outline(hit.doc_id)
        path = [n for n in outline_path(nodes, hit.start) if n.kind != "paragraph" and n.role in roles]
        path += [  # parts whose heading the passage holds (a passage can end with the next item's headline)
            n
            for n in nodes
            if hit.start < n.head_start < hit.end and n.kind != "paragraph" and n.role in roles
        ]
        # Words the title holds name the document, not a part of it ("党组总结认为重点工作成效不足…": 党组,
        # 总结); a heading need only name the rest. When the title holds them all, the document may be the
        # subject: a part must then name more of them than the title does.
        beyond = {w for w in words if w not in document.title and len(w) > 1}
        wanted = beyond or words
        in_title = 0 if beyond else sum(w in document.title for w in words)
        for depth, node in enumerate(path):
            head = node.head(document.text)
            count = sum(w in head for w in wanted)
            if count < in_title or not _names(head, wanted):
                continue
            # The heading naming most of the subject; then the one repeating the longest run of the
            # question verbatim (a lead-in that happens to hold the same words is weaker); then the wider
            # part, the better-ranked passage.
            key = (_shared_run(question, head), count, -depth, -rank)
            if best is None or key > best[0]:
                best = key, (hit, node)
    if best is not None:
        return best[1]
    for hit, document in top:  # the subject is the document itself, or no subject is named
        if all(w in document.title for w in words):
            nodes = library.outline(hit.doc_id)
            if len(_top_sections(nodes, roles)) >= 2:
                return hit, None
            path = [n for n in outline_path(nodes, hit.start) if n.kind != "paragraph" and n.role in roles]
            group = next(((hit, n) for n in path if len(_members(nodes, n)) >= 2), None)
            if group is not None:
                return group
    best = hits[0] if hits else None
    if best is None or library.document(best.doc_id) is None:
        return None
    nodes = library.outline(best.doc_id)
    others = [h for h in hits[1:4] if h.doc_id == best.doc_id]
    for node in reversed(outline_path(nodes, best.start)):
        if (
            node.kind == "enumeration"
            and node.role in roles
            and any(node.start <= h.start < node.end for h in others)
        ):
            return best, node
    return None


def _shared_run(question: str, heading: str) -> int:
    """The length of the longest run of characters ``question`` and ``heading`` share (substring tests
    from the longest down: a question is short, and ``in`` runs in C)."""
    for size in range(len(question), 0, -1):
        if any(question[i : i + size] in heading for i in range(len(question) - size + 1)):
            return size
    return 0


def _names(heading: str, words: set[str]) -> bool:
    """Whether a heading names the question's subject: half its words, or one long (specific) word."""
    found = [w for w in words if w in heading]
    return bool(found) and (len(found) >= MIN_TOPIC_SHARE * len(words) or max(map(len, found)) >= 3)


def _top_sections(nodes: list[OutlineNode], roles: Sequence[str]) -> list[OutlineNode]:
    return [n for n in nodes if n.parent is None and n.kind == "section" and n.role in roles]


def _members(nodes: list[OutlineNode], node: OutlineNode) -> list[OutlineNode]:
    """What a group lists: an enumeration's items; a section's subsections, else the items of its
    first enumeration."""
    return _listed(nodes, node)[1]


def _listed(nodes: list[OutlineNode], node: OutlineNode) -> tuple[OutlineNode, list[OutlineNode]]:
    """The node whose parts a group lists (the group, or the enumeration a section holds), and the parts."""
    children = [n for n in nodes if n.parent == node.index]
    if node.kind == "enumeration":
        return node, [n for n in children if n.kind == "item"]
    sections = [n for n in children if n.kind == "section"]
    if len(sections) >= 2:
        return node, sections
    for child in children:
        inner = [n for n in nodes if n.parent == child.index and n.kind == "enumeration"]
        if child.kind == "enumeration" or inner:
            return _listed(nodes, child if child.kind == "enumeration" else inner[0])
    return node, []


def part_answer(hit: Hit, node: OutlineNode, library: Library, question: str) -> tuple[str, list[Citation]]:
    """The answer about one part of a report a follow-up picked out: the parts it lists, each cited, or
    its sentences when it lists nothing; a ``line`` (a passage an earlier answer quoted) is quoted as it
    is. ``hit`` is the passage holding it."""
    if node.kind == "line":
        document = library.document(hit.doc_id)
        text = document.text if document is not None else ""
        return f"{_header(document, hit.title)}：\n{text[node.start : node.end]}[1]", [
            _citation(hit, text, node.start, node.end, 1)
        ]
    return _group_answer((hit, node), library, topic_words(question, understand(question)), ROLES)


def listed_parts(citations: Sequence[Citation], library: Library) -> list[tuple[str, OutlineNode]]:
    """The list an answer showed, as (document, part) in order: what "第二项" counts in.

    1. A list answer (``_group_answer``) cites each part it lists at the part's headline (or the whole
       part): when two or more cited parts share a parent, the list is all of that parent's parts (an
       answer quoting only 三是 and 四是 still shows a list of four).
    2. Otherwise, two or more citations are the numbered lines the reader saw: each is a ``line`` part.
    3. Otherwise, the innermost enumeration or section listing two or more parts around the cited passage.
    """
    for citation in citations:
        nodes = library.outline(citation.doc_id)
        headed = [
            n
            for n in nodes
            if n.kind in ("item", "section")
            and citation.start in (n.head_start if n.head_end > n.head_start else n.start, n.start)
        ]
        if not headed:
            continue
        cited = {c.start for c in citations if c.doc_id == citation.doc_id}
        parent = next((n for n in nodes if n.index == headed[0].parent), None)
        siblings = [n for n in nodes if n.parent == headed[0].parent and n.kind == headed[0].kind]
        if sum(n.head_start in cited or n.start in cited for n in siblings) >= 2:
            members = _members(nodes, parent) if parent is not None else siblings
            return [(citation.doc_id, n) for n in (members if headed[0] in members else siblings)]
    if len(citations) >= 2:
        return [
            (c.doc_id, OutlineNode(-1, None, "line", "", c.start, c.end, c.start, c.start)) for c in citations
        ]
    for citation in citations:
        nodes = library.outline(citation.doc_id)
        for node in reversed(outline_path(nodes, citation.start)):
            if node.kind in ("enumeration", "section") and len(_members(nodes, node)) >= 2:
                return [(citation.doc_id, n) for n in _members(nodes, node)]
    return []


def _group_answer(
    group: tuple[Hit, OutlineNode | None], library: Library, words: set[str], roles: Sequence[str]
) -> tuple[str, list[Citation]]:
    """Every part the group lists, each with its headline and own citation; or, for a single section or
    item that lists nothing, its sentences."""
    best, node = group
    document = library.document(best.doc_id)
    assert document is not None  # target_group checked it
    text = document.text
    nodes = library.outline(best.doc_id)
    if node is None:
        listed, members, lead = None, _top_sections(nodes, roles), ""
    else:
        listed, members = _listed(nodes, node)
        lead = node.head(text) if node.kind in ("section", "item") else ""
    citations: list[Citation] = []
    lines = []
    if len(members) < 2 and node is not None:  # one section or item: quote what it says
        body = _body_sentences(text, node)
        for start, end in body:
            citations.append(_citation(best, text, start, end, len(citations) + 1))
            lines.append(f"{text[start:end]}[{citations[-1].n}]")
        said = any(text[a:b] in lead or lead in text[a:b] for a, b in body)  # a headline with no body
        return f"{_header(document)}{'' if said else '「' + lead + '」'}：\n" + "\n".join(lines), citations
    for member in members:
        if member.head_end > member.head_start:
            start, end = _sentence_span(text, member.head_start, member.head_end)
        else:
            start, end = member.start, member.end
        citations.append(_citation(best, text, start, end, len(citations) + 1))
        line = f"{text[start:end]}[{citations[-1].n}]"
        named = any(w in text[start:end] for w in words)
        extra = None if named else _relevant_sentence(text, end, member.end, words)
        if extra is not None:
            citations.append(_citation(best, text, *extra, len(citations) + 1))
            line += f"……{text[extra[0] : extra[1]]}[{citations[-1].n}]"
        lines.append(line)
    role = (listed or members[0]).role
    kind = "section" if listed is None or all(m.kind == "section" for m in members) else "enumeration"
    noun = "项工作" if kind == "section" and role == "done" else ROLE_NOUN.get(role, "项")
    header = f"{_header(document)}{'「' + lead + '」' if lead else ''}（共{len(members)}{noun}）："
    return header + "\n" + "\n".join(lines), citations


MAX_BODY_SENTENCES = 10


def _body_sentences(text: str, node: OutlineNode) -> list[tuple[int, int]]:
    """The sentences of a node after its heading (a merged run when there are many)."""
    start = max(node.head_end, node.start)
    spans = [
        (start + m.start(), start + m.end()) for m in sentences(text[start : node.end]) if m.group().strip()
    ]
    spans = [s for s in (_trim_span(text, a, b) for a, b in spans) if s]
    if len(spans) > MAX_BODY_SENTENCES:
        spans = spans[: MAX_BODY_SENTENCES - 1] + [(spans[MAX_BODY_SENTENCES - 1][0], spans[-1][1])]
    return spans or [(node.start, node.end)]


def _trim_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and (text[start].isspace() or text[start] in "。；"):
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _sentence_span(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` extended to the end of its sentence (a heading's closing 。 belongs to it)."""
    while end < len(text) and text[end] in "。；：:;":
        end += 1
    return start, end


def _relevant_sentence(text: str, start: int, end: int, words: set[str]) -> tuple[int, int] | None:
    """The sentence of ``text[start:end]`` sharing the most subject words (at least one), or None."""
    if not words or start >= end:
        return None
    best, best_score = None, 0
    for match in sentences(text[start:end]):
        if not match.group().strip():
            continue
        score = sum(1 for w in words if w in match.group())
        if score > best_score:
            best, best_score = (start + match.start(), start + match.end()), score
    return best


MAX_QUOTED_SENTENCES = 3  # of one passage, when the question names several subjects


def _quotes(hit: Hit, words: set[str], intent: QuestionIntent) -> list[Quote]:
    """The sentences of ``hit`` about the question's subject (the whole passage when it is short).

    The sentences naming the most subject words (a close run of them); then, while some subject word is
    still unnamed, the sentence naming most of the rest ("消费新业态、夜间经济…": one sentence each). Adjacent sentences
    make one quote; others are quoted apart, each with its own citation.
    """
    spans = [(m.start(), m.end()) for m in sentences(hit.text) if m.group().strip()]
    if len(spans) <= 1:
        return [Quote(hit, hit.start, hit.end)]
    bonus = [
        0.5 if intent.intent == "fact" and any(ch.isdigit() for ch in hit.text[a:b]) else 0 for a, b in spans
    ]
    named = [{w for w in words if w in hit.text[a:b]} for a, b in spans]
    scores = [len(n) + b for n, b in zip(named, bonus, strict=True)]
    top = [i for i, score in enumerate(scores) if score == max(scores) and score > 0]
    chosen = list(range(top[0], top[-1] + 1)) if top and top[-1] - top[0] <= 2 else top[:1]
    left = set(words).difference(*(named[i] for i in chosen))
    while len(chosen) < MAX_QUOTED_SENTENCES:
        gains = [len(n & left) + (bonus[i] if n & left else 0) for i, n in enumerate(named)]
        best = max(range(len(spans)), key=lambda i: (gains[i], -i))
        if gains[best] <= 0 or best in chosen:
            break
        chosen.append(best)
        left -= named[best]
    if not chosen:
        if len(hit.text) <= 160:
            return [Quote(hit, hit.start, hit.end)]
        chosen = [0]
    chosen.sort()
    runs: list[list[int]] = []
    for i in chosen:
        if runs and i - runs[-1][-1] <= 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    headline = hit.text[: spans[0][1]] + "……" if hit.meta.get("item_label") or "position" in hit.meta else ""
    quotes = []
    for run in runs:
        prefix = headline if run[0] > 0 and not quotes else ""
        quotes.append(Quote(hit, hit.start + spans[run[0]][0], hit.start + spans[run[-1]][1], prefix))
    return quotes


def _citation(hit: Hit, text: str, start: int, end: int, n: int) -> Citation:
    return Citation(hit.chunk_id, hit.doc_id, hit.title, text[start:end], start, end, n=n)


def _header(document: Document | None, fallback: str = "") -> str:
    """《title》（issuer · year） for the document a part of the answer comes from."""
    if document is None:
        return f"《{fallback}》"
    about = " · ".join(str(v) for v in (document.meta.get("issuer"), document.meta.get("year")) if v)
    return f"《{document.title}》" + (f"（{about}）" if about else "")


def _render(
    quotes: list[Quote], library: Library | None, label: str, numbered: int = 0
) -> tuple[str, list[Citation]]:
    """Quotes grouped by document in reading order, each followed by its marker (numbered after
    ``numbered`` earlier citations)."""
    citations: list[Citation] = []
    by_doc: dict[str, list[tuple[Quote, Citation]]] = {}
    for quote in quotes:
        hit = quote.hit
        text = hit.text[quote.start - hit.start : quote.end - hit.start]
        citation = Citation(
            hit.chunk_id, hit.doc_id, hit.title, text, quote.start, quote.end, n=numbered + len(citations) + 1
        )
        citations.append(citation)
        by_doc.setdefault(hit.doc_id, []).append((quote, citation))
    parts = []
    for doc_id, pieces in by_doc.items():
        pieces.sort(key=lambda pair: pair[1].start)
        document = library.document(doc_id) if library is not None else None
        header = _header(document, pieces[0][0].hit.title)
        lines = [f"{q.prefix}{c.text}[{c.n}]" for q, c in pieces]
        parts.append(f"{header}{label}：\n" + "\n".join(lines))
    return "\n\n".join(parts), citations
