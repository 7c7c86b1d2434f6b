"""The shared types: a document, a chunk cut from it, a ranked hit, a citation, an answer or a refusal.

A chunk's ``text`` is always the exact slice ``document.text[start:end]``; anything added for retrieval
(the lead-in of an enumeration, the heading path) lives in ``context`` and never changes the cited text.
Hits, citations and answers are immutable once built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .text import sha256_text


@dataclass(frozen=True)
class Document:
    """One source document as loaded: its full text and metadata.

    ``doc_id`` is the path relative to the ingested folder (posix style), stable across runs.
    ``meta`` may hold ``source`` (absolute path), ``issuer``, ``year``, ``doc_type``,
    ``page_starts`` (character offset where each PDF page starts) and anything else a loader finds.
    """

    doc_id: str
    title: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """A stable hex digest of the text, for change detection."""
        return sha256_text(self.text)


@dataclass(frozen=True)
class Passage:
    """An exact slice of a source document: ``text == document.text[start:end]`` of ``doc_id``."""

    chunk_id: str
    doc_id: str
    title: str
    text: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Chunk(Passage):
    """A retrievable unit: an exact slice of a document plus the context used to find it.

    ``kind`` says what the slice is: ``paragraph``, ``item`` (one enumerated item), ``leadin``,
    ``heading``, ``window`` (fixed-size baseline) or ``part`` (a piece of an over-long item or paragraph).
    """

    context: str = ""
    kind: str = "paragraph"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def indexed_text(self) -> str:
        """What is embedded and indexed: the retrieval context followed by the cited text."""
        return f"{self.context}\n{self.text}" if self.context else self.text


def make_chunk_id(doc_id: str, text: str, context: str = "", seen: dict[str, int] | None = None) -> str:
    """A chunk id from the document id and the chunk's content hash.

    Identical content in the same document gets a ``-2``, ``-3`` suffix in reading order, tracked in
    ``seen`` (one dict per document), so ids stay unique and stable when the document is unchanged.
    """
    digest = hashlib.sha1(f"{doc_id}\0{context}\0{text}".encode()).hexdigest()[:16]
    base = f"{doc_id}#{digest}"
    if seen is None:
        return base
    count = seen.get(base, 0) + 1
    seen[base] = count
    return base if count == 1 else f"{base}-{count}"


@dataclass(frozen=True)
class OutlineNode:
    """One part of a document's outline: a section, a paragraph, an enumeration or one of its items.

    Built by ``zhiwen.ingest.outline``. ``text[start:end]`` is the whole part and
    ``text[head_start:head_end]`` its heading, lead-in or headline (empty when it has none).

    ``parent`` is the index of the enclosing node in the outline (None at the top). Items carry their
    ``position`` (1-based) and the ``count`` of items in their enumeration. ``role`` is overview, done,
    problem or plan.
    """

    index: int
    parent: int | None
    kind: str
    label: str
    start: int
    end: int
    head_start: int
    head_end: int
    role: str = "done"
    position: int = 0
    count: int = 0

    def head(self, text: str) -> str:
        """The node's heading, lead-in or headline as the document writes it."""
        return text[self.head_start : self.head_end]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def outline_path(nodes: Sequence[OutlineNode], start: int) -> list[OutlineNode]:
    """The outline nodes holding document offset ``start``, outermost first (ancestors of the deepest)."""
    return [n for n in nodes if n.start <= start < n.end]


@dataclass(frozen=True)
class Hit(Chunk):
    """One ranked chunk, with its place in the ranking.

    ``score`` is the score of the strategy that ranked it; ``scores`` keeps each signal
    (``bm25``, ``dense``, ``fused``) so a person can see why it ranked where it did. ``meta`` holds the
    document's metadata and the chunk's own.
    """

    rank: int = field(kw_only=True)
    score: float = field(kw_only=True)
    scores: dict[str, float] = field(default_factory=dict, kw_only=True)


@dataclass(frozen=True)
class Citation(Passage):
    """A numbered citation ``[n]`` pointing at an exact slice of a source document."""

    n: int = field(kw_only=True)


RefusalRule = Literal["topic", "subject", "scope", "everyday", "relevance", "detail", "judge", "reference"]


@dataclass(frozen=True)
class Refusal:
    """Why a question is not answered.

    ``rule``: ``topic`` (the question names a term of art no document mentions), ``subject`` (its most
    specific subject word appears nowhere in the knowledge base), ``scope`` (no passage is of the year or
    issuing body it names), ``everyday`` (it is nearer to everyday questions than to any passage, see
    ``answer.EVERYDAY_MARGIN``), ``relevance`` (the best passage in scope is below the threshold), ``detail`` (it
    asks for a date or a figure the passages about its subject do not give), ``judge`` (the LLM judged
    that the passages do not answer it) or ``reference`` (a follow-up points at something the conversation
    does not have: 第五项 of a four-item answer). ``relevance`` is the best in-scope passage's dense
    relevance (0 when none is in scope);
    ``detail`` names the missing terms or the scope, for the message.
    """

    rule: RefusalRule
    relevance: float
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """An answer with its citations; ``mode`` is ``extractive`` or ``llm``.

    With a ``refusal``, ``answer`` says the knowledge base does not cover the question and ``related``
    holds the nearest passages ("可能相关") instead of citations. ``understood`` is how a follow-up
    question was read in its conversation (the answer text then opens with "理解为：" and it); empty for
    a question taken as it stands.
    """

    answer: str
    mode: str
    citations: tuple[Citation, ...] = ()
    related: tuple[Hit, ...] = ()
    warnings: tuple[str, ...] = ()
    refusal: Refusal | None = None
    understood: str = ""

    @property
    def refused(self) -> bool:
        return self.refusal is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "mode": self.mode,
            "refused": self.refused,
            "refusal": self.refusal.to_dict() if self.refusal else None,
            "citations": [c.to_dict() for c in self.citations],
            "related": [h.to_dict() for h in self.related],
            "warnings": list(self.warnings),
            "understood": self.understood,
        }


@dataclass(frozen=True)
class TextDelta:
    """A piece of answer text as it streams (LLM mode)."""

    text: str


@dataclass(frozen=True)
class FinalAnswer:
    """The last event of an answer stream: the checked, complete answer."""

    answer: Answer


AnswerEvent = TextDelta | FinalAnswer
