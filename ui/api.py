"""The HTTP API (``zhiwen api``, and beside the chat window in ``zhiwen serve``): one FastAPI app.

Four ways in, over one ``KnowledgeBase`` (one model, one index):

- REST under ``/api/v1``: search, ask (JSON or server-sent events), documents, passages, health, info;
- OpenAI-compatible chat: ``/v1/models`` and ``/v1/chat/completions`` (the knowledge base is the model);
- Dify's External Knowledge API: ``POST /retrieval``;
- MCP over streamable HTTP at ``/mcp`` (``mcp_server.py``).

When API keys exist (``zhiwen apikey create``), every request needs ``Authorization: Bearer <key>``, and
uploads and deletes need an ``admin`` key. When the chat window has a login and no key exists yet, the
API refuses every request: a password on the window must not leave the API open. Request bodies,
uploads and queries have size limits (settings ``max_body_kb``, ``max_upload_mb``, ``max_query_chars``);
CORS is off unless ``cors_origins`` names origins. Errors are JSON in each surface's own shape.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from zhiwen.core.index import IndexStateError, live_manifest
from zhiwen.core.types import Answer, Hit, TextDelta
from zhiwen.core.vocab import FILTER_KEYS, STRATEGIES
from zhiwen.retriever.answer import relevance

from .kb import KnowledgeBase
from .keys import ApiKey, KeyStore, Role

API = "/api/v1"
MAX_K = 100
DIFY_PATH = "/retrieval"
# Dify's score_threshold is a 0-1 relevance. e5's cosines are compressed (answerable 0.83-0.91,
# off-topic 0.80-0.88), so the score is a logistic of the cosine around the refusal threshold: 0.5 at the
# threshold, about 0.12 and 0.88 at 0.04 below and above it. Dify's default threshold 0.5 then keeps
# what Zhiwen itself would answer from.
RELEVANCE_SLOPE = 50.0


class ApiError(Exception):
    """An error to answer with: HTTP status, a short code, one line saying what is wrong."""

    def __init__(self, status: int, code: str, message: str, dify_code: int | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.dify_code = status, code, message, dify_code


def error_response(
    path: str, status: int, code: str, message: str, dify_code: int | None = None
) -> JSONResponse:
    """The error in the shape the caller's surface expects (Dify, OpenAI, or Zhiwen's REST)."""
    if path == DIFY_PATH:
        body: dict[str, Any] = {"error_code": dify_code or status, "error_msg": message}
    elif path.startswith("/v1/"):
        body = {"error": {"message": message, "type": code, "param": None, "code": code}}
    else:
        body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status)


# --- request bodies ------------------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Filters(Strict):
    """Keep passages whose document matches every given key (a list matches any of its values)."""

    issuer: str | list[str] | None = None
    year: str | int | list[str | int] | None = None
    doc_type: str | list[str] | None = None
    doc_id: str | list[str] | None = None


class ChatMessage(BaseModel):
    """One turn of a conversation; ``content`` may be OpenAI's list of parts ({type: text, text})."""

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = ""

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class SearchRequest(Strict):
    query: str
    k: int | None = Field(None, ge=1, le=MAX_K)
    strategy: Literal[STRATEGIES] | None = None  # type: ignore[valid-type]
    filters: Filters | None = None


class AskRequest(Strict):
    question: str
    history: list[ChatMessage] = []
    filters: Filters | None = None
    llm: bool = False
    stream: bool = False
    k: int | None = Field(None, ge=1, le=20)


class ChatRequest(BaseModel):
    """OpenAI's chat request; sampling options (temperature, …) are accepted and have no effect."""

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    filters: Filters | None = None  # Zhiwen's extension, sent with extra_body


class RetrievalSetting(BaseModel):
    top_k: int = Field(ge=1, le=MAX_K)
    score_threshold: float = Field(0.0, ge=0.0, le=1.0)


class Condition(BaseModel):
    name: str | list[str]
    comparison_operator: str
    value: str | int | float | list[str] | None = None


class MetadataCondition(BaseModel):
    logical_operator: Literal["and", "or"] = "and"
    conditions: list[Condition] = []


class RetrievalRequest(BaseModel):
    """Dify's External Knowledge API request."""

    knowledge_id: str
    query: str
    retrieval_setting: RetrievalSetting
    metadata_condition: MetadataCondition | None = None


# --- limits ----------------------------------------------------------------------------------------


class BodyLimit:
    """Answer 413 to a request whose body is larger than its path allows, before the app reads it all.

    ``limit_for(path, method)`` gives the byte limit, or None for paths this API does not own (the chat
    window's own routes keep Gradio's limits).
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], int | None]):
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_for(scope["path"], scope["method"]) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = error_response(
            scope["path"], 413, "request_too_large", f"request body is larger than {_size(limit)}", 413
        )
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await too_large(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if not started:
                await too_large(scope, receive, send)


class KeyGate:
    """The API-key check for routes that are not FastAPI's own (MCP's streamable HTTP endpoint)."""

    def __init__(self, app: ASGIApp, prefix: str, authorize: Callable[[str, str, Role], ApiKey | None]):
        self.app, self.prefix, self.authorize = app, prefix, authorize

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            try:
                self.authorize(scope["path"], header, "read")
            except ApiError as exc:
                await error_response(scope["path"], exc.status, exc.code, exc.message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _TooLarge(StarletteHTTPException):
    """A body that grew past its limit while being read (no Content-Length was declared)."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body is larger than {_size(limit)}")


def _size(limit: int) -> str:
    return f"{limit / 1024 / 1024:g} MB" if limit >= 1024 * 1024 else f"{limit / 1024:g} KB"


# --- the app ---------------------------------------------------------------------------------------


def create_api(
    kb: KnowledgeBase, keys: KeyStore, login_required: bool = False, mcp: Any | None = None
) -> FastAPI:
    """The API app over ``kb``. ``login_required``: the chat window beside it has a login (see module doc).

    ``mcp``: an MCP server (``mcp_server.build_mcp``) to serve over streamable HTTP at ``/mcp``.
    """
    settings = kb.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if mcp is None:
            yield
            return
        async with mcp.session_manager.run():
            yield

    app = FastAPI(
        title="知问 Zhiwen API",
        version=version("zhiwen"),
        description="Search and answers with exact citations over the indexed work reports. "
        "Send `Authorization: Bearer <key>` when API keys exist (`zhiwen apikey create`).",
        lifespan=lifespan,
    )
    app.state.kb = kb

    def authorize(path: str, header: str, role: Role) -> ApiKey | None:
        """The caller's key (from the Authorization ``header``) when keys are in force; raises when it is
        missing, wrong or too weak."""
        dify = path == DIFY_PATH
        if not keys.active():
            if login_required:
                raise ApiError(
                    401,
                    "key_required",
                    "the chat window has a login, so the API needs a key: create one with "
                    "`zhiwen apikey create --role read`",
                    1002,
                )
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                403 if dify else 401,
                "invalid_authorization",
                "Invalid Authorization header format. Expected 'Bearer <api-key>' format.",
                1001,
            )
        key = keys.check(token.strip())
        if key is None:
            raise ApiError(
                403 if dify else 401,
                "invalid_api_key",
                "Authorization failed: unknown or revoked API key",
                1002,
            )
        if not key.allows(role):
            raise ApiError(
                403, "forbidden", f"this needs an {role} key; key {key.key_id} is {key.role}", 1002
            )
        return key

    def reader(request: Request) -> ApiKey | None:
        return authorize(request.url.path, request.headers.get("authorization", ""), "read")

    def admin(request: Request) -> ApiKey | None:
        return authorize(request.url.path, request.headers.get("authorization", ""), "admin")

    def checked_query(text: str, field: str) -> str:
        text = text.strip()
        if not text:
            raise ApiError(422, "invalid_request", f"{field}: must not be empty")
        if len(text) > settings.max_query_chars:
            raise ApiError(
                422,
                "query_too_long",
                f"{field}: {len(text)} characters; at most {settings.max_query_chars} (max_query_chars)",
            )
        return text

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request.url.path, exc.status, exc.code, exc.message, exc.dify_code)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        if first.get("type") == "json_invalid":
            return error_response(
                request.url.path,
                400,
                "invalid_json",
                f"request body is not valid JSON ({first.get('msg')})",
                400,
            )
        return error_response(request.url.path, 422, "invalid_request", f"{where}: {first.get('msg')}", 422)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(request.url.path, exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(IndexStateError)
    async def on_index(request: Request, exc: IndexStateError) -> JSONResponse:
        return error_response(request.url.path, 409, "index_busy_or_missing", str(exc), 409)

    @app.exception_handler(ValueError)
    async def on_value(request: Request, exc: ValueError) -> JSONResponse:
        return error_response(request.url.path, 422, "invalid_request", str(exc), 422)

    # --- REST ---------------------------------------------------------------------------------------

    @app.get(f"{API}/health", tags=["rest"], dependencies=[Depends(reader)])
    def health() -> dict[str, Any]:
        """Whether the index is open, and what it holds."""
        documents, chunks = kb.counts()
        return {
            "status": "ok",
            "documents": documents,
            "chunks": chunks,
            "generation": kb.retriever.generation.path.name,
            "memory_mb": _memory_mb(),
        }

    @app.get(f"{API}/info", tags=["rest"], dependencies=[Depends(reader)])
    def info() -> dict[str, Any]:
        """Version, model, retrieval settings, limits and what the index holds (no secrets)."""
        manifest = dict(live_manifest(settings) or {})
        manifest.pop("documents", None)
        documents, chunks = kb.counts()
        return {
            "name": settings.kb_name,
            "version": version("zhiwen"),
            "documents": documents,
            "chunks": chunks,
            "embed_model": manifest.get("embed_model"),
            "chunker": manifest.get("chunker"),
            "strategy": settings.strategy,
            "fusion": settings.fusion,
            "top_k": settings.top_k,
            "llm": kb.llm_configured,
            "follow_ups": True,
            "auth": {"keys_required": keys.active() or login_required},
            "limits": {
                "max_query_chars": settings.max_query_chars,
                "max_body_kb": settings.max_body_kb,
                "max_upload_mb": settings.max_upload_mb,
                "max_file_mb": settings.max_file_mb,
            },
            "filters": list(FILTER_KEYS),
            "strategies": list(STRATEGIES),
            "index": manifest,
        }

    @app.post(f"{API}/search", tags=["rest"], dependencies=[Depends(reader)])
    def search(body: SearchRequest) -> dict[str, Any]:
        """Ranked passages; each hit has the fields of `zhiwen search --json` and text == source[start:end]."""
        query = checked_query(body.query, "query")
        hits = kb.retriever.search(query, k=body.k, strategy=body.strategy, filters=_filters(body.filters))
        return {"query": query, "hits": [h.to_dict() for h in hits]}

    @app.post(f"{API}/ask", tags=["rest"], dependencies=[Depends(reader)])
    def ask(body: AskRequest) -> Any:
        """An answer with numbered citations; with `stream: true`, server-sent events `delta` (LLM text as
        it arrives) then one `answer` (the checked Answer, which replaces the streamed text)."""
        question = checked_query(body.question, "question")
        if body.llm and not kb.llm_configured:
            raise ApiError(
                422,
                "llm_not_configured",
                "llm: no LLM is configured (set ZHIWEN_LLM_BASE_URL or ZHIWEN_LLM_GGUF)",
            )
        events = kb.answer_events(
            question,
            use_llm=body.llm,
            filters=_filters(body.filters),
            history=_history(body.history),
            k=body.k,
        )
        if not body.stream:
            *_, final = events
            return final.answer.to_dict()

        def sse() -> Iterator[str]:
            for event in events:
                if isinstance(event, TextDelta):
                    yield _sse("delta", {"text": event.text})
                else:
                    yield _sse("answer", event.answer.to_dict())

        return StreamingResponse(sse(), media_type="text/event-stream")

    @app.get(f"{API}/documents", tags=["rest"], dependencies=[Depends(reader)])
    def list_documents() -> dict[str, Any]:
        """Every indexed document with its chunk count and metadata."""
        return {"documents": kb.documents()}

    @app.post(f"{API}/documents", tags=["rest"], dependencies=[Depends(admin)])
    async def upload(files: list[UploadFile]) -> dict[str, Any]:
        """Add or update documents (multipart field `files`, one or more): ingested incrementally; each
        file gets its own result, and its document id is its file name."""
        names = [Path(file.filename or "").name for file in files]
        for file, name in zip(files, names, strict=True):
            if not name or name.startswith("."):
                raise ApiError(
                    422, "invalid_file_name", f"files: {file.filename!r} is not a usable file name"
                )
        staging = kb.staging_dir()
        staged = []
        for file, name in zip(files, names, strict=True):
            target = staging / name
            with target.open("wb") as out:
                while block := await file.read(1 << 20):
                    out.write(block)
            staged.append(target)
        results, report = await run_in_threadpool(kb.add_files, staged)
        documents, chunks = kb.counts()
        return {
            "results": [r.to_dict() for r in results],
            "summary": report.summary() if report else "",
            "documents": documents,
            "chunks": chunks,
        }

    @app.get(API + "/documents/{doc_id:path}", tags=["rest"], dependencies=[Depends(reader)])
    def get_document(doc_id: str) -> dict[str, Any]:
        """A document's metadata, full text, and its chunks' ids and offsets."""
        found = kb.document(doc_id)
        if found is None:
            raise ApiError(
                404, "document_not_found", f"doc_id: no document {doc_id!r}; GET {API}/documents lists them"
            )
        doc, chunks = found
        return {
            "doc_id": doc.doc_id,
            "title": doc.title,
            "meta": doc.meta,
            "text": doc.text,
            "chunks": [
                {"chunk_id": c.chunk_id, "start": c.start, "end": c.end, "kind": c.kind} for c in chunks
            ],
        }

    @app.delete(API + "/documents/{doc_id:path}", tags=["rest"], dependencies=[Depends(admin)])
    def delete_document(doc_id: str) -> dict[str, Any]:
        """Remove a document from the index (and its uploaded file)."""
        report = kb.delete(doc_id)
        if report.failed:
            raise ApiError(404, "document_not_found", f"doc_id: no document {doc_id!r} in the index")
        return {"deleted": doc_id, "documents": report.documents, "chunks": report.chunks}

    @app.get(API + "/passages/{chunk_id:path}", tags=["rest"], dependencies=[Depends(reader)])
    def get_passage(chunk_id: str) -> dict[str, Any]:
        """One chunk by id (URL-encode it: ids hold `#`), with its context and metadata."""
        chunk = kb.passage(chunk_id)
        if chunk is None:
            raise ApiError(404, "passage_not_found", f"chunk_id: no passage {chunk_id!r} in the index")
        return chunk.to_dict()

    # --- OpenAI-compatible chat --------------------------------------------------------------------

    @app.get("/v1/models", tags=["openai"], dependencies=[Depends(reader)])
    def models() -> dict[str, Any]:
        """The knowledge base, as the one model."""
        return {
            "object": "list",
            "data": [{"id": settings.kb_name, "object": "model", "created": 0, "owned_by": "zhiwen"}],
        }

    @app.post("/v1/chat/completions", tags=["openai"], dependencies=[Depends(reader)])
    def chat(body: ChatRequest) -> Any:
        """Answer the last user message; the reply carries [n] markers, a sources block at the end, and
        the citations (doc_id, title, start, end, text) in the extra field `citations`."""
        if body.model != settings.kb_name:
            raise ApiError(
                404, "model_not_found", f"model: {body.model!r} is not served here; use {settings.kb_name!r}"
            )
        users = [i for i, m in enumerate(body.messages) if m.role == "user"]
        if not users:
            raise ApiError(422, "invalid_request", "messages: no user message to answer")
        question = checked_query(body.messages[users[-1]].text(), f"messages[{users[-1]}].content")
        history = _history(body.messages[: users[-1]])
        answer = kb.answer(
            question, use_llm=kb.llm_configured, filters=_filters(body.filters), history=history
        )
        reply = answer.answer + sources_block(answer)
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        extra = {"citations": [c.to_dict() for c in answer.citations], "refused": answer.refused}
        if not body.stream:
            return {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": settings.kb_name,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                **extra,
            }

        def chunks() -> Iterator[str]:
            head = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": settings.kb_name,
            }
            for i, piece in enumerate(_pieces(reply)):
                delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                yield _data(head | {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            yield _data(head | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]} | extra)
            yield "data: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    # --- Dify external knowledge -------------------------------------------------------------------

    @app.post(DIFY_PATH, tags=["dify"], dependencies=[Depends(reader)])
    def retrieval(body: RetrievalRequest) -> dict[str, Any]:
        """Dify's External Knowledge API: records {content, score (0-1), title, metadata}."""
        if body.knowledge_id != settings.kb_name:
            raise ApiError(
                404,
                "knowledge_not_found",
                f"The knowledge does not exist: {body.knowledge_id!r} (this one is {settings.kb_name!r})",
                2001,
            )
        query = checked_query(body.query, "query")
        setting = body.retrieval_setting
        hits = kb.retriever.search(query, k=setting.top_k, filters=dify_filters(body.metadata_condition))
        records = []
        for hit in hits:
            score = relevance_score(hit, settings.refusal_threshold)
            if score >= setting.score_threshold:
                records.append(
                    {"content": hit.text, "score": score, "title": hit.title, "metadata": _dify_metadata(hit)}
                )
        return {"records": records}

    if mcp is not None:
        app.router.routes.extend(mcp.streamable_http_app(host=settings.host).routes)
        app.add_middleware(KeyGate, prefix="/mcp", authorize=authorize)

    def limit_for(path: str, method: str) -> int | None:
        if path == f"{API}/documents" and method == "POST":
            return int(settings.max_upload_mb * 1024 * 1024)
        if path.startswith((API, "/v1/", "/mcp")) or path == DIFY_PATH:
            return settings.max_body_kb * 1024
        return None

    app.add_middleware(BodyLimit, limit_for=limit_for)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["*"],
        )
    return app


def relevance_score(hit: Hit, threshold: float) -> float:
    """The hit's relevance in 0-1 (see ``RELEVANCE_SLOPE``): 0.5 at the refusal threshold."""
    return round(1 / (1 + math.exp(-RELEVANCE_SLOPE * (relevance(hit) - threshold))), 4)


def sources_block(answer: Answer) -> str:
    """The citations as text after the answer, for chat clients that show only the message content."""
    if answer.citations:
        lines = [f"[{c.n}] 《{c.title}》 {c.doc_id} [{c.start}:{c.end}]：{c.text}" for c in answer.citations]
        return "\n\n来源：\n" + "\n".join(lines)
    if answer.related:
        lines = [f"- 《{h.title}》 {h.doc_id} [{h.start}:{h.end}]：{h.text}" for h in answer.related]
        return "\n\n可能相关：\n" + "\n".join(lines)
    return ""


# Dify metadata names Zhiwen can filter on: its own keys, plus the names Dify's built-in metadata uses.
_DIFY_NAMES = {
    **{k: k for k in FILTER_KEYS},
    "document_name": "doc_id",
    "source": "doc_id",
    "title": "doc_id",
}


def dify_filters(condition: MetadataCondition | None) -> dict[str, Any] | None:
    """Dify's ``metadata_condition`` as Zhiwen filters.

    Zhiwen filters are an AND of equalities (a list means any of its values), so it takes ``is``, ``=``
    and ``in`` joined by ``and``; anything else is refused with a message rather than silently ignored.
    """
    if condition is None or not condition.conditions:
        return None
    if condition.logical_operator == "or" and len(condition.conditions) > 1:
        raise ApiError(422, "unsupported_condition", "metadata_condition: only 'and' can be applied", 422)
    filters: dict[str, Any] = {}
    for i, cond in enumerate(condition.conditions):
        names = cond.name if isinstance(cond.name, list) else [cond.name]
        if cond.comparison_operator not in ("is", "=", "in") or cond.value in (None, "", []):
            raise ApiError(
                422,
                "unsupported_condition",
                f"metadata_condition.conditions[{i}]: use 'is', '=' or 'in' with a value; "
                f"got {cond.comparison_operator!r}",
                422,
            )
        for name in names:
            if name not in _DIFY_NAMES:
                raise ApiError(
                    422,
                    "unsupported_condition",
                    f"metadata_condition.conditions[{i}].name: {name!r} is not one of {', '.join(_DIFY_NAMES)}",
                    422,
                )
            value = cond.value if isinstance(cond.value, list) else str(cond.value)
            filters[_DIFY_NAMES[name]] = value
    return filters


def _dify_metadata(hit: Hit) -> dict[str, Any]:
    """A record's metadata: always an object (Dify fails on null), with where the passage sits; the
    server's own file path (``source``) stays on the server."""
    meta = {k: v for k, v in hit.meta.items() if isinstance(v, (str, int, float, bool)) and k != "source"}
    return meta | {"doc_id": hit.doc_id, "chunk_id": hit.chunk_id, "start": hit.start, "end": hit.end}


def _filters(filters: Filters | None) -> dict[str, Any] | None:
    return filters.model_dump(exclude_none=True) if filters else None


def _history(messages: list[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.text()} for m in messages if m.role in ("user", "assistant")]


def _memory_mb() -> dict[str, float]:
    """This process's resident memory now and at its peak (Linux /proc), in MB: for load measurements."""
    status = Path("/proc/self/status")
    if not status.exists():
        return {}
    fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
    return {
        name: round(int(fields[key].split()[0]) / 1024, 1)
        for name, key in (("rss", "VmRSS"), ("peak", "VmHWM"))
        if key in fields
    }


def _sse(event: str, data: Mapping[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _data(payload: Mapping[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _pieces(text: str) -> list[str]:
    """``text`` cut after sentence ends and line breaks, for a streamed reply."""
    pieces, start = [], 0
    for i, ch in enumerate(text):
        if ch in "。！？；\n":
            pieces.append(text[start : i + 1])
            start = i + 1
    return [*pieces, text[start:]] if start < len(text) else pieces


EndpointCall = Callable[..., Awaitable[Any]]
