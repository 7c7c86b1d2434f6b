"""Retrieval and answers: hybrid search over an index, and answers that cite exact passages."""

from .search import FILTER_KEYS, STRATEGIES, Retriever
from .types import Answer, Citation, Hit

__all__ = ["FILTER_KEYS", "STRATEGIES", "Answer", "Citation", "Hit", "Retriever"]
