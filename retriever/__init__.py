"""Retrieval and answers: hybrid search over an index, and answers that cite exact passages."""

from zhiwen.core.types import Answer, Citation, FinalAnswer, Hit, Refusal, TextDelta

from .search import Retriever

__all__ = ["Answer", "Citation", "FinalAnswer", "Hit", "Refusal", "Retriever", "TextDelta"]
