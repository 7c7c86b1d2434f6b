"""The core data types: a loaded document and a chunk cut from it.

A chunk's ``text`` is always the exact slice ``document.text[start:end]``; anything added for retrieval
(the lead-in of an enumeration, the heading path) lives in ``context`` and never changes the cited text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


def content_hash(text: str) -> str:
    """A stable hex digest of ``text``, used for change detection and cache keys."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
        return content_hash(self.text)


@dataclass(frozen=True)
class Chunk:
    """A retrievable unit: an exact slice of a document plus the context used to find it.

    ``kind`` says what the slice is: ``paragraph``, ``item`` (one enumerated item), ``heading``,
    ``window`` (fixed-size baseline) or ``part`` (a piece of an over-long item or paragraph).
    """

    chunk_id: str
    doc_id: str
    title: str
    text: str
    start: int
    end: int
    context: str = ""
    kind: str = "paragraph"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def indexed_text(self) -> str:
        """What is embedded and indexed: the retrieval context followed by the cited text."""
        return f"{self.context}\n{self.text}" if self.context else self.text

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "doc_id": self.doc_id,
            "title": self.title,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "context": self.context,
            "kind": self.kind,
            "meta": dict(self.meta),
        }


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
