"""Ingest: load documents, split them by structure, embed the chunks, write the index atomically."""

from .load import SUPPORTED_SUFFIXES, LoadError, load_document
from .pipeline import IngestReport, ingest_documents, ingest_paths, remove_documents
from .split import split_document

__all__ = [
    "SUPPORTED_SUFFIXES",
    "IngestReport",
    "LoadError",
    "ingest_documents",
    "ingest_paths",
    "load_document",
    "remove_documents",
    "split_document",
]
