"""Zhiwen as a LangChain retriever, so it plugs into any LangChain chain.

    from zhiwen.retriever.langchain import ZhiwenRetriever
    retriever = ZhiwenRetriever.from_settings(Settings.load(), k=5)
    docs = retriever.invoke("如何支持新市民金融？")

Each ``Document.page_content`` is the exact cited text; ``metadata`` carries the rest of the hit
(chunk_id, doc_id, title, start, end, score, context, scores, and the document metadata).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field
from zhiwen.core.settings import Settings

from .search import Retriever


class ZhiwenRetriever(BaseRetriever):
    """A LangChain ``BaseRetriever`` over a Zhiwen index."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Retriever
    k: int = 5
    strategy: str = "hybrid"
    filters: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> ZhiwenRetriever:
        return cls(retriever=Retriever(settings), **kwargs)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        hits = self.retriever.search(query, k=self.k, strategy=self.strategy, filters=self.filters)
        docs = []
        for hit in hits:
            metadata = hit.to_dict()
            metadata.pop("text")
            docs.append(LCDocument(page_content=hit.text, metadata=metadata, id=hit.chunk_id))
        return docs
