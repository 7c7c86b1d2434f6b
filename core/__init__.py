"""The shared core every package stands on: settings, types, the index reader, text utilities, the embedder.

Nothing here imports ``ingest``, ``retriever``, ``ui`` or ``eval``; they all import from here. Importing
this package is cheap (settings and types); the index reader (``core.index``), the embedder
(``core.embed``) and the model converter (``core.model``) load FAISS, bm25s and torch only when imported.
"""

from .settings import Settings, SettingsError
from .types import Answer, AnswerEvent, Chunk, Citation, Document, FinalAnswer, Hit, Refusal, TextDelta

__all__ = [
    "Answer",
    "AnswerEvent",
    "Chunk",
    "Citation",
    "Document",
    "FinalAnswer",
    "Hit",
    "Refusal",
    "Settings",
    "SettingsError",
    "TextDelta",
]
