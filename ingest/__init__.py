"""Ingest: load documents, split them by structure, embed the chunks, write the index atomically."""

from .load import SUPPORTED_SUFFIXES, LoadError, load_document
from .pipeline import IngestReport, ingest_documents, ingest_paths, remove_documents
from .settings import Settings, SettingsError
from .split import CHUNKERS, split_document
from .types import Chunk, Document

__all__ = [
    "CHUNKERS",
    "SUPPORTED_SUFFIXES",
    "Chunk",
    "Document",
    "IngestReport",
    "LoadError",
    "Settings",
    "SettingsError",
    "ingest_documents",
    "ingest_paths",
    "load_document",
    "remove_documents",
    "split_document",
]
