"""Zhiwen as a Model Context Protocol server (``zhiwen mcp``), for agents and IDE assistants.

Four tools over the process's ``KnowledgeBase``: ``search`` (ranked passages with exact offsets), ``ask``
(an answer with numbered citations), ``list_documents`` and ``get_passage``. Served over stdio
(``zhiwen mcp``) or streamable HTTP at ``/mcp`` (``zhiwen mcp --http``, and inside ``zhiwen api`` and
``zhiwen serve``, behind the same API keys as the rest of the API).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from mcp.server.mcpserver import MCPServer
from zhiwen.core.vocab import STRATEGIES

from .kb import KnowledgeBase

INSTRUCTIONS = (
    "知问 Zhiwen: a knowledge base of Chinese government and financial-regulator work reports. Use `search` "
    "for passages (each an exact slice source[start:end] of its document), `ask` for an answer with [n] "
    "citations, `list_documents` to see what is indexed, `get_passage` to read one passage by chunk_id."
)


def build_mcp(kb: KnowledgeBase) -> MCPServer:
    """An MCP server whose tools call ``kb`` (tools are sync: the SDK runs them on worker threads)."""
    server = MCPServer("zhiwen", instructions=INSTRUCTIONS, version=version("zhiwen"), log_level="WARNING")
    limit = kb.settings.max_query_chars

    def checked(text: str, field: str) -> str:
        text = text.strip()
        if not text or len(text) > limit:
            raise ValueError(f"{field}: must be 1 to {limit} characters, got {len(text)}")
        return text

    @server.tool()
    def search(
        query: str, k: int = 5, strategy: str = "hybrid", issuer: str = "", year: str = "", doc_id: str = ""
    ) -> list[dict[str, Any]]:
        """Ranked passages for `query`. Each has doc_id, title, text, start, end (text is exactly the
        document's text[start:end]), score and metadata. Optional filters: issuer (e.g. 银保监局), year, doc_id."""
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy: use one of {', '.join(STRATEGIES)}, got {strategy!r}")
        filters = {"issuer": issuer, "year": year, "doc_id": doc_id}
        hits = kb.retriever.search(
            checked(query, "query"), k=max(1, min(k, 50)), strategy=strategy, filters=filters
        )
        return [h.to_dict() for h in hits]

    @server.tool()
    def ask(question: str, history: list[dict[str, str]] | None = None) -> dict[str, Any]:
        """Answer `question` from the knowledge base with numbered citations [n]; each citation gives
        doc_id, title, start, end and the exact quoted text. A question the knowledge base cannot answer is
        refused (refused: true) with the nearest passages under `related`. `history` is the conversation
        so far ([{"role": "user"|"assistant", "content": ...}]): a follow-up such as "第二项具体是什么？"
        is read against it, and `understood` says how."""
        return kb.answer(
            checked(question, "question"), use_llm=kb.llm_configured, history=history or []
        ).to_dict()

    @server.tool()
    def list_documents() -> list[dict[str, Any]]:
        """Every indexed document: doc_id, title, number of chunks, metadata (issuer, year, doc_type)."""
        return kb.documents()

    @server.tool()
    def get_passage(chunk_id: str) -> dict[str, Any]:
        """One passage by `chunk_id` (as `search` returns it), with its context and offsets."""
        chunk = kb.passage(chunk_id)
        if chunk is None:
            raise ValueError(f"chunk_id: no passage {chunk_id!r} in the index")
        return chunk.to_dict()

    return server
