"""The HTTP API against a live server on a free port, with real clients: httpx, the openai SDK, the mcp SDK.

Two servers per module: ``open_api`` over the shared corpus index with no keys (read-only tests), and
``keyed_api`` over its own index with a read key and an admin key (auth, uploads and deletes).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from conftest import CORPUS, make_settings
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from zhiwen.core.embed import Embedder
from zhiwen.core.settings import Settings
from zhiwen.ingest.pipeline import ingest_paths
from zhiwen.retriever import Retriever
from zhiwen.ui.api import create_api
from zhiwen.ui.app import launch
from zhiwen.ui.kb import KnowledgeBase
from zhiwen.ui.keys import KeyStore, keys_path
from zhiwen.ui.mcp_server import build_mcp
from zhiwen.ui.server import Served

pytestmark = pytest.mark.slow
QUESTION = "如何支持新市民金融？"
UNIQUE_FACT = "星河渔业互助基金由云杉县农商行于今年设立，首期规模为七千万元。"
# Dify's published example request body (External Knowledge API, "Request Syntax"), verbatim.
DIFY_EXAMPLE = {
    "knowledge_id": "your-knowledge-id",
    "query": "your question",
    "retrieval_setting": {"top_k": 2, "score_threshold": 0.5},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Live:
    """A running API server and what a test needs to talk to it."""

    url: str
    settings: Settings
    served: Served
    read_key: str = ""
    admin_key: str = ""

    def client(self, key: str = "") -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def start(settings: Settings, embedder: Embedder) -> Live:
    kb = KnowledgeBase(settings, Retriever(settings, embedder=embedder))
    app = create_api(kb, KeyStore(keys_path(settings)), mcp=build_mcp(kb))
    served = Served(app, "127.0.0.1", free_port()).start()
    return Live(served.url, settings, served)


@pytest.fixture(scope="module")
def open_api(corpus_settings: Settings, embedder: Embedder) -> Iterator[Live]:
    live = start(
        corpus_settings.replace(api_keys_file=str(Path(corpus_settings.index_dir).parent / "none.json")),
        embedder,
    )
    yield live
    live.served.close()


@pytest.fixture(scope="module")
def keyed_api(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("api")
    shutil.copytree(CORPUS, root / "docs")
    settings = make_settings(root / "data" / "index", max_upload_mb=0.05, max_body_kb=8, max_query_chars=200)
    ingest_paths([root / "docs"], settings, progress=False, embedder=embedder)
    store = KeyStore(keys_path(settings))
    _, read_key = store.create("read", "tests")
    _, admin_key = store.create("admin", "tests")
    live = start(settings, embedder)
    live.read_key, live.admin_key = read_key, admin_key
    yield live
    live.served.close()


def source_text(client: httpx.Client, doc_id: str) -> str:
    return client.get(f"/api/v1/documents/{urllib.parse.quote(doc_id)}").json()["text"]


# --- REST ------------------------------------------------------------------------------------------


def test_search_returns_hits_that_are_exact_slices_with_the_cli_fields(open_api: Live) -> None:
    with open_api.client() as client:
        reply = client.post("/api/v1/search", json={"query": "新市民金融服务有哪些举措？", "k": 3})
        assert reply.status_code == 200
        hits = reply.json()["hits"]
        assert len(hits) == 3 and [h["rank"] for h in hits] == [1, 2, 3]
        fields = {
            "rank",
            "chunk_id",
            "doc_id",
            "title",
            "text",
            "start",
            "end",
            "score",
            "context",
            "kind",
            "scores",
            "meta",
        }
        assert all(fields <= set(h) for h in hits)
        for hit in hits:
            assert source_text(client, hit["doc_id"])[hit["start"] : hit["end"]] == hit["text"]
        filtered = client.post(
            "/api/v1/search",
            json={"query": "金融", "k": 5, "strategy": "bm25", "filters": {"issuer": "银保监局"}},
        ).json()["hits"]
        assert filtered and all(h["meta"]["issuer"] == "银保监局" for h in filtered)


def test_ask_answers_as_json_and_as_server_sent_events(open_api: Live) -> None:
    with open_api.client() as client:
        answer = client.post("/api/v1/ask", json={"question": QUESTION, "history": []}).json()
        assert not answer["refused"] and "[1]" in answer["answer"] and answer["mode"] == "extractive"
        cited = answer["citations"][0]
        assert source_text(client, cited["doc_id"])[cited["start"] : cited["end"]] == cited["text"]
        with client.stream("POST", "/api/v1/ask", json={"question": QUESTION, "stream": True}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = [block for block in stream.read().decode().split("\n\n") if block]
        name, data = events[-1].split("\n", 1)
        assert name == "event: answer" and json.loads(data.removeprefix("data: ")) == answer
        refused = client.post("/api/v1/ask", json={"question": "火星基地的氧气供应靠什么？"}).json()
        assert refused["refused"] and refused["refusal"]["rule"] in ("topic", "subject", "scope", "relevance")
        no_llm = client.post("/api/v1/ask", json={"question": QUESTION, "llm": True})
        assert no_llm.status_code == 422 and "no LLM is configured" in no_llm.json()["error"]["message"]


def test_documents_passages_health_and_info(open_api: Live) -> None:
    with open_api.client() as client:
        documents = client.get("/api/v1/documents").json()["documents"]
        assert len(documents) == 5 and all(d["chunks"] > 0 for d in documents)
        doc = client.get(f"/api/v1/documents/{urllib.parse.quote(documents[0]['doc_id'])}").json()
        assert doc["title"] == documents[0]["title"] and len(doc["text"]) > 100
        first = doc["chunks"][0]
        passage = client.get(f"/api/v1/passages/{urllib.parse.quote(first['chunk_id'], safe='')}").json()
        assert passage["text"] == doc["text"][first["start"] : first["end"]]
        health = client.get("/api/v1/health").json()
        assert health["status"] == "ok" and health["documents"] == 5
        assert health["chunks"] == sum(d["chunks"] for d in documents)
        info = client.get("/api/v1/info").json()
        assert info["name"] == "zhiwen" and info["auth"] == {"keys_required": False}
        assert "llm_api_key" not in json.dumps(info)
        assert client.get("/openapi.json").json()["paths"].keys() >= {
            "/api/v1/search",
            "/retrieval",
            "/v1/chat/completions",
        }
        assert client.get("/docs").status_code == 200


def test_unknown_ids_bad_json_and_bad_fields_get_one_clear_line(keyed_api: Live) -> None:
    with keyed_api.client(keyed_api.read_key) as client:
        missing = client.get("/api/v1/documents/nope.txt")
        assert missing.status_code == 404 and "no document 'nope.txt'" in missing.json()["error"]["message"]
        assert client.get("/api/v1/passages/nope%23123").status_code == 404
        bad = client.post(
            "/api/v1/search", content=b'{"query": ', headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
        wrong = client.post("/api/v1/search", json={"query": "金融", "k": 0})
        assert wrong.status_code == 422 and wrong.json()["error"]["message"].startswith("k: ")
        unknown = client.post("/api/v1/search", json={"query": "金融", "filters": {"color": "red"}})
        assert unknown.status_code == 422 and "filters.color" in unknown.json()["error"]["message"]
        long = client.post("/api/v1/search", json={"query": "金" * 201})
        assert long.status_code == 422 and "at most 200" in long.json()["error"]["message"]
        huge = client.post("/api/v1/search", json={"query": "金融", "pad": "x" * 9000})
        assert huge.status_code == 413 and "8 KB" in huge.json()["error"]["message"]


# --- keys and limits -------------------------------------------------------------------------------


def test_keys_are_required_checked_by_role_and_revocable(keyed_api: Live) -> None:
    store = KeyStore(keys_path(keyed_api.settings))
    stored = keys_path(keyed_api.settings).read_text(encoding="utf-8")
    secrets = [key.partition("_")[2].partition("_")[2] for key in (keyed_api.read_key, keyed_api.admin_key)]
    assert all(len(secret) > 40 and secret not in stored for secret in secrets)
    with keyed_api.client() as anonymous:
        denied = anonymous.get("/api/v1/health")
        assert denied.status_code == 401 and "Bearer" in denied.json()["error"]["message"]
    with keyed_api.client("zw_deadbeef_wrong") as wrong:
        assert wrong.post("/api/v1/search", json={"query": "金融"}).status_code == 401
    with keyed_api.client(keyed_api.read_key) as reader:
        assert reader.get("/api/v1/health").status_code == 200
        forbidden = reader.delete("/api/v1/documents/anything.txt")
        assert forbidden.status_code == 403 and "admin" in forbidden.json()["error"]["message"]
    record, temporary = store.create("read")
    with keyed_api.client(temporary) as client:
        assert client.get("/api/v1/documents").status_code == 200
        store.revoke(record.key_id)
        assert client.get("/api/v1/documents").status_code == 401


def test_upload_then_search_then_delete(keyed_api: Live, tmp_path: Path) -> None:
    with keyed_api.client(keyed_api.admin_key) as admin:
        files = [
            ("files", ("星河基金.txt", f"星河基金简报\n{UNIQUE_FACT}\n".encode(), "text/plain")),
            ("files", ("坏文件.pdf", b"this is not a pdf at all", "application/pdf")),
            ("files", ("程序.exe", b"MZ\x00\x01", "application/octet-stream")),
        ]
        uploaded = admin.post("/api/v1/documents", files=files)
        assert uploaded.status_code == 200
        results = {r["name"]: r for r in uploaded.json()["results"]}
        assert (
            results["星河基金.txt"]["status"] == "added"
            and results["星河基金.txt"]["doc_id"] == "星河基金.txt"
        )
        assert results["坏文件.pdf"]["status"] == "failed" and results["坏文件.pdf"]["reason"]
        assert results["程序.exe"]["status"] == "unsupported"
        hits = admin.post(
            "/api/v1/search", json={"query": "星河渔业互助基金的首期规模是多少？", "k": 1}
        ).json()["hits"]
        assert hits[0]["doc_id"] == "星河基金.txt" and UNIQUE_FACT in hits[0]["text"]
        assert (
            admin.delete(f"/api/v1/documents/{urllib.parse.quote('星河基金.txt')}").json()["deleted"]
            == "星河基金.txt"
        )
        after = admin.post(
            "/api/v1/search", json={"query": "星河渔业互助基金的首期规模是多少？", "k": 3}
        ).json()["hits"]
        assert all(h["doc_id"] != "星河基金.txt" for h in after)
        assert admin.delete(f"/api/v1/documents/{urllib.parse.quote('星河基金.txt')}").status_code == 404
        oversize = admin.post(
            "/api/v1/documents", files=[("files", ("big.txt", "金融".encode() * 20000, "text/plain"))]
        )
        assert oversize.status_code == 413


def test_searches_during_ingest_always_see_a_whole_index(keyed_api: Live) -> None:
    """Readers on other threads while a document is added and removed: every hit is an exact slice of a
    document of the generation it came from, and no request fails."""
    failures: list[str] = []
    stop = threading.Event()
    added = f"并发\n{UNIQUE_FACT}\n"
    with keyed_api.client(keyed_api.read_key) as client:
        texts = {
            d["doc_id"]: source_text(client, d["doc_id"])
            for d in client.get("/api/v1/documents").json()["documents"]
        }
    texts["并发.txt"] = added

    def search_loop() -> None:
        with keyed_api.client(keyed_api.read_key) as client:
            while not stop.is_set():
                reply = client.post(
                    "/api/v1/search", json={"query": "星河渔业互助基金", "k": 5, "strategy": "bm25"}
                )
                if reply.status_code != 200:
                    failures.append(reply.text)
                for hit in reply.json().get("hits", []):
                    if texts.get(hit["doc_id"], "")[hit["start"] : hit["end"]] != hit["text"]:
                        failures.append(
                            f"{hit['doc_id']} [{hit['start']}:{hit['end']}] is not {hit['text']!r}"
                        )

    readers = [threading.Thread(target=search_loop) for _ in range(3)]
    for thread in readers:
        thread.start()
    with keyed_api.client(keyed_api.admin_key) as admin:
        for _ in range(2):
            admin.post("/api/v1/documents", files=[("files", ("并发.txt", added.encode(), "text/plain"))])
            admin.delete(f"/api/v1/documents/{urllib.parse.quote('并发.txt')}")
    stop.set()
    for thread in readers:
        thread.join()
    assert failures == []


# --- OpenAI-compatible chat ------------------------------------------------------------------------


def test_openai_client_chat_with_citations_and_a_sources_block(open_api: Live) -> None:
    client = openai.OpenAI(base_url=f"{open_api.url}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["zhiwen"]
    messages = [
        {"role": "system", "content": "你是助手"},
        {"role": "user", "content": "金融促进消费有哪些措施？"},
        {"role": "assistant", "content": "……"},
        {"role": "user", "content": QUESTION},
    ]
    completion = client.chat.completions.create(model="zhiwen", messages=messages)
    content = completion.choices[0].message.content
    citations = completion.model_extra["citations"]
    assert "[1]" in content and "\n\n来源：\n[1] 《" in content
    assert citations[0]["n"] == 1 and {"doc_id", "title", "start", "end", "text"} <= set(citations[0])
    assert citations[0]["text"] in content

    chunks = list(client.chat.completions.create(model="zhiwen", messages=messages, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert len(chunks) > 2 and streamed == content
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].model_extra["citations"] == citations
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="gpt-4o", messages=messages)


def test_follow_ups_read_the_conversation_in_rest_openai_chat_and_mcp(open_api: Live) -> None:
    earlier = [
        {"role": "user", "content": "银行业对新市民提供了哪些金融支持？"},
        {"role": "assistant", "content": "……"},
    ]
    understood = "保险业对新市民提供了哪些金融支持？"
    with open_api.client() as client:
        assert client.get("/api/v1/info").json()["follow_ups"] is True
        answer = client.post("/api/v1/ask", json={"question": "那保险业呢？", "history": earlier}).json()
        assert answer["understood"] == understood and not answer["refused"]
        assert answer["answer"].startswith(f"理解为：{understood}")
        alone = client.post("/api/v1/ask", json={"question": "那保险业呢？"}).json()
        assert alone["understood"] == ""
    chat = openai.OpenAI(base_url=f"{open_api.url}/v1", api_key="unused", max_retries=0)
    messages = [*earlier, {"role": "user", "content": "那保险业呢？"}]
    reply = chat.chat.completions.create(model="zhiwen", messages=messages).choices[0].message.content
    assert reply.startswith(f"理解为：{understood}")

    async def run() -> dict:
        http = create_mcp_http_client()
        async with (
            http,
            streamable_http_client(f"{open_api.url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            found = await session.call_tool("ask", {"question": "那保险业呢？", "history": earlier})
            return found.structured_content

    assert asyncio.run(run())["understood"] == understood


# --- Dify external knowledge API -------------------------------------------------------------------


def test_dify_retrieval_follows_the_published_contract(keyed_api: Live) -> None:
    with keyed_api.client(keyed_api.read_key) as client:
        unknown = client.post("/retrieval", json=DIFY_EXAMPLE)
        assert unknown.status_code == 404 and unknown.json()["error_code"] == 2001
        body = DIFY_EXAMPLE | {"knowledge_id": "zhiwen", "query": QUESTION}
        records = client.post("/retrieval", json=body).json()["records"]
        assert 1 <= len(records) <= 2
        for record in records:
            assert set(record) == {"content", "score", "title", "metadata"}
            assert 0.5 <= record["score"] <= 1 and isinstance(record["metadata"], dict)
            assert "source" not in record["metadata"] and record["metadata"]["doc_id"]
        everything = client.post(
            "/retrieval", json=body | {"retrieval_setting": {"top_k": 5, "score_threshold": 0.0}}
        )
        scores = [r["score"] for r in everything.json()["records"]]
        assert len(scores) == 5 and all(0 <= s <= 1 for s in scores)
        condition = {
            "logical_operator": "and",
            "conditions": [{"name": ["issuer"], "comparison_operator": "is", "value": "银保监局"}],
        }
        scoped = client.post(
            "/retrieval",
            json=body
            | {"metadata_condition": condition, "retrieval_setting": {"top_k": 5, "score_threshold": 0}},
        )
        assert all(r["metadata"]["issuer"] == "银保监局" for r in scoped.json()["records"])
        odd = {"conditions": [{"name": "issuer", "comparison_operator": "start with", "value": "银"}]}
        assert client.post("/retrieval", json=body | {"metadata_condition": odd}).status_code == 422
    with keyed_api.client() as anonymous:
        assert anonymous.post("/retrieval", json=body).json()["error_code"] == 1001
    with keyed_api.client("zw_00000000_nope") as wrong:
        assert wrong.post("/retrieval", json=body).json() == {
            "error_code": 1002,
            "error_msg": "Authorization failed: unknown or revoked API key",
        }


# --- MCP -------------------------------------------------------------------------------------------


async def _use_tools(session: ClientSession, strategy: str = "hybrid") -> tuple[set[str], list[dict], dict]:
    await session.initialize()
    names = {t.name for t in (await session.list_tools()).tools}
    found = await session.call_tool("search", {"query": "新市民金融", "k": 2, "strategy": strategy})
    hits = found.structured_content["result"]
    passage = await session.call_tool("get_passage", {"chunk_id": hits[0]["chunk_id"]})
    return names, hits, passage.structured_content


def test_mcp_over_streamable_http_with_a_key(keyed_api: Live) -> None:
    async def run(key: str) -> tuple[set[str], list[dict], dict]:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
        async with (
            http,
            streamable_http_client(f"{keyed_api.url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            return await _use_tools(session)

    names, hits, passage = asyncio.run(run(keyed_api.read_key))
    assert names == {"search", "ask", "list_documents", "get_passage"}
    assert len(hits) == 2 and passage["text"] == hits[0]["text"]
    assert httpx.post(f"{keyed_api.url}/mcp", json={}).status_code == 401


def test_mcp_over_stdio(corpus_settings: Settings) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "zhiwen.ui.cli", "mcp", "--index", str(corpus_settings.index_dir)],
        env=dict(os.environ),  # the test run's own cache and data folders (the SDK passes only a few)
    )

    async def run() -> tuple[set[str], list[dict], dict]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            return await _use_tools(session, "bm25")  # BM25 answers before the model has loaded

    names, hits, passage = asyncio.run(run())
    assert "ask" in names and hits[0]["rank"] == 1 and passage["chunk_id"] == hits[0]["chunk_id"]


# --- the chat window and the API on one port --------------------------------------------------------


def test_serve_puts_the_chat_window_and_the_api_on_one_port_without_weakening_either(
    corpus_settings: Settings, tmp_path: Path
) -> None:
    settings = corpus_settings.replace(
        port=free_port(), auth="admin:s3cret", api_keys_file=str(tmp_path / "keys.json")
    )
    served = launch(settings, corpus=None, block=False)
    try:
        with httpx.Client(base_url=served.url, timeout=30) as client:
            assert client.get("/config").status_code == 401
            refused = client.get("/api/v1/health")
            assert refused.status_code == 401 and "zhiwen apikey create" in refused.json()["error"]["message"]
            assert client.post("/login", data={"username": "admin", "password": "s3cret"}).json() == {
                "success": True
            }
            assert client.get("/api/v1/health").status_code == 401, (
                "a chat-window login must not open the API"
            )
            _, key = KeyStore(tmp_path / "keys.json").create("read")
            assert client.get("/api/v1/health", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        with httpx.Client(
            base_url=served.url, timeout=30, headers={"Authorization": f"Bearer {key}"}
        ) as keyed:
            assert keyed.get("/config").status_code == 401, "an API key must not open the chat window"
    finally:
        served.close()


def test_cors_is_off_unless_origins_are_configured(
    open_api: Live, corpus_settings: Settings, embedder: Embedder
) -> None:
    preflight = {"Origin": "https://oa.example", "Access-Control-Request-Method": "POST"}
    with open_api.client() as client:
        assert (
            "access-control-allow-origin" not in client.options("/api/v1/search", headers=preflight).headers
        )
    live = start(corpus_settings.replace(cors_origins="https://oa.example"), embedder)
    try:
        with live.client() as client:
            allowed = client.options("/api/v1/search", headers=preflight)
            assert allowed.headers["access-control-allow-origin"] == "https://oa.example"
            other = client.options("/api/v1/search", headers=preflight | {"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers
    finally:
        live.served.close()


def test_apikey_commands_create_list_and_revoke(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from zhiwen.ui.cli import main

    index = ["--index", str(tmp_path / "index")]
    created = CliRunner().invoke(main, ["apikey", "create", "--role", "admin", "--name", "OA 门户", *index])
    assert created.exit_code == 0 and created.stdout.startswith("zw_")
    key_id = created.stdout.split("_")[1]
    listed = CliRunner().invoke(main, ["apikey", "list", *index])
    assert key_id in listed.output and "admin" in listed.output and "active" in listed.output
    assert created.stdout.strip() not in (tmp_path / "api_keys.json").read_text(encoding="utf-8")
    assert CliRunner().invoke(main, ["apikey", "revoke", key_id, *index]).exit_code == 0
    assert "revoked" in CliRunner().invoke(main, ["apikey", "list", *index]).output
    unknown = CliRunner().invoke(main, ["apikey", "revoke", "nope", *index])
    assert unknown.exit_code != 0 and "no API key with id 'nope'" in unknown.output
