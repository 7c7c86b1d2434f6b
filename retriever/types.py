"""What retrieval and answering return: a ranked hit, a citation, an answer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Hit:
    """One ranked chunk. ``text == source[start:end]`` of document ``doc_id``.

    ``score`` is the score of the strategy that ranked it; ``scores`` keeps each signal
    (``bm25``, ``dense``, ``fused``) so a person can see why it ranked where it did.
    """

    rank: int
    chunk_id: str
    doc_id: str
    title: str
    text: str
    start: int
    end: int
    score: float
    context: str = ""
    kind: str = "paragraph"
    scores: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Citation:
    """A numbered citation ``[n]`` pointing at an exact slice of a source document."""

    n: int
    chunk_id: str
    doc_id: str
    title: str
    text: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    """An answer with its citations; ``mode`` is ``extractive`` or ``llm``.

    When ``refused`` is true, ``answer`` says the knowledge base does not cover the question and
    ``related`` holds the nearest passages ("可能相关") instead of citations.
    """

    answer: str
    mode: str
    refused: bool
    citations: list[Citation] = field(default_factory=list)
    related: list[Hit] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "mode": self.mode,
            "refused": self.refused,
            "citations": [c.to_dict() for c in self.citations],
            "related": [h.to_dict() for h in self.related],
            "warnings": list(self.warnings),
        }
