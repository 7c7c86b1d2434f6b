"""Load on a running API (``zhiwen eval load``): N concurrent clients for a while, as integrators would.

    zhiwen eval load --url http://127.0.0.1:8765 --clients 16 --seconds 120 [--endpoint search|ask|retrieval|chat]

Each client is a thread with its own HTTP connection, sending the golden questions in turn, one request
after another. Prints throughput, latency p50/p95/p99, errors by kind, and the server's memory (resident
now and at peak, from ``/api/v1/health``) before, during and after.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
import httpx
import numpy as np

GOLDEN = Path(__file__).parent / "data" / "golden.jsonl"


@dataclass
class LoadResult:
    """What the clients saw: one latency per successful request, errors by kind, server memory samples."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    memory: list[dict[str, float]] = field(default_factory=list)

    def summary(self, clients: int) -> str:
        ms = np.array(self.latencies) * 1000 if self.latencies else np.zeros(1)
        done, failed = len(self.latencies), sum(self.errors.values())
        peak = max((m.get("peak", 0.0) for m in self.memory), default=0.0)
        rss = [m.get("rss", 0.0) for m in self.memory]
        lines = [
            (
                f"{clients} clients, {self.seconds:.0f} s: {done} requests ok, {failed} errors "
                f"({', '.join(f'{k} {v}' for k, v in self.errors.items()) or 'none'})"
            ),
            (
                f"throughput {done / self.seconds:.1f} requests/s; latency p50 {np.percentile(ms, 50):.0f} ms, "
                f"p95 {np.percentile(ms, 95):.0f} ms, p99 {np.percentile(ms, 99):.0f} ms, max {ms.max():.0f} ms"
            ),
        ]
        if rss:
            lines.append(
                f"server memory: resident {rss[0]:.0f} MB before, {max(rss):.0f} MB at most during, "
                f"{rss[-1]:.0f} MB after; process peak {peak:.0f} MB"
            )
        return "\n".join(lines)


def request_body(endpoint: str, question: str) -> tuple[str, dict]:
    """The path and JSON body of one request to ``endpoint``."""
    if endpoint == "ask":
        return "/api/v1/ask", {"question": question}
    if endpoint == "retrieval":
        return "/retrieval", {
            "knowledge_id": "zhiwen",
            "query": question,
            "retrieval_setting": {"top_k": 5, "score_threshold": 0.0},
        }
    return "/api/v1/search", {"query": question, "k": 5}


def run_load(
    url: str,
    clients: int,
    seconds: float,
    endpoint: str = "search",
    key: str = "",
    distinct: bool = False,
    questions: list[str] | None = None,
) -> LoadResult:
    """Run ``clients`` threads against ``url`` for ``seconds``; sample the server's memory every second.

    With ``distinct``, each request's question ends with its own number, so no query vector comes from
    the server's cache of recent queries and every request runs the embedding model.
    """
    questions = questions or [
        json.loads(line)["query"] for line in GOLDEN.read_text(encoding="utf-8").splitlines()
    ]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    result = LoadResult()
    lock = threading.Lock()
    stop = threading.Event()

    def memory() -> dict[str, float]:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            return http.get("/api/v1/health").json().get("memory_mb", {})

    def send(offset: int, request: Callable[[str], str]) -> None:
        """Ask questions in turn through ``request`` (returns an error kind, "" on success) until stopped."""
        i = offset
        while not stop.is_set():
            question = questions[i % len(questions)]
            started = time.perf_counter()
            kind = request(f"{question} {i}" if distinct else question)
            elapsed = time.perf_counter() - started
            i += clients
            with lock:
                if kind:
                    result.errors[kind] = result.errors.get(kind, 0) + 1
                elif not stop.is_set():
                    result.latencies.append(elapsed)

    def client(offset: int) -> None:
        if endpoint == "chat":
            return chat_client(offset)
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:

            def post(question: str) -> str:
                path, body = request_body(endpoint, question)
                try:
                    reply = http.post(path, json=body)
                except httpx.HTTPError as exc:
                    return type(exc).__name__
                return "" if reply.status_code == 200 else f"HTTP {reply.status_code}"

            send(offset, post)

    def chat_client(offset: int) -> None:
        """Questions through the chat window's own queue, as a browser's chat does (Gradio's client)."""
        from gradio_client import Client

        window = Client(url, verbose=False)

        def chat(question: str) -> str:
            try:
                window.predict(question, [], [], [], [], api_name="/chat")  # no filters
            except Exception as exc:  # noqa: BLE001 - counted by kind, like HTTP errors
                return type(exc).__name__
            return ""

        send(offset, chat)

    result.memory.append(memory())
    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    while time.perf_counter() - started < seconds:
        time.sleep(min(1.0, max(0.0, seconds - (time.perf_counter() - started))))
        result.memory.append(memory())
    stop.set()
    result.seconds = time.perf_counter() - started
    for thread in threads:
        thread.join()
    result.memory.append(memory())
    return result


@click.command("load")
@click.option("--url", required=True, help="Where the API runs, e.g. http://127.0.0.1:8765 (`zhiwen api`).")
@click.option("--clients", type=click.IntRange(1, 256), default=16, show_default=True)
@click.option("--seconds", type=click.FloatRange(1), default=120, show_default=True)
@click.option(
    "--endpoint",
    type=click.Choice(["search", "ask", "retrieval", "chat"]),
    default="search",
    show_default=True,
    help="chat: answers through the chat window's queue (`zhiwen serve`), the others through the API.",
)
@click.option("--key", default="", envvar="ZHIWEN_API_KEY", help="API key, when the server requires one.")
@click.option(
    "--distinct", is_flag=True, help="Number every question, so the server embeds each one (no query cache)."
)
def load_command(url: str, clients: int, seconds: float, endpoint: str, key: str, distinct: bool) -> None:
    """Concurrent clients against a running API: throughput, p50/p95 latency, errors, server memory."""
    try:
        result = run_load(url.rstrip("/"), clients, seconds, endpoint, key, distinct)
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"{url}: cannot reach the API ({exc}); start it with `zhiwen api`"
        ) from None
    where = "the chat window" if endpoint == "chat" else f"POST {request_body(endpoint, '')[0]}"
    click.echo(f"{where} on {url}" + (", every question distinct" if distinct else ""))
    click.echo(result.summary(clients))
