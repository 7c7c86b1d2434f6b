"""Benchmarks that print figures (not timed tests): search and answer latency, LLM throughput.

    zhiwen eval bench search  [--index DIR] [--corpus corpus/ | --reports]   query latency p50/p95
    zhiwen eval bench answer  [--index DIR]                                  offline answer latency
    zhiwen eval bench llm     [--gguf FILE] [--questions 3]                  tokens/s, end-to-end
    zhiwen eval bench backends [--corpus corpus/ | --reports]               FAISS vs Milvus Lite

``--reports`` indexes the 52+ State Council government work reports from ../shared/evaldata first.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np
from zhiwen.core.embed import Embedder
from zhiwen.core.options import index_option
from zhiwen.core.settings import Settings
from zhiwen.core.types import Document, FinalAnswer, TextDelta
from zhiwen.ingest.pipeline import ingest_documents, ingest_paths, load_paths
from zhiwen.retriever import Retriever
from zhiwen.retriever.answer import ask, extractive_answer, refusal_threshold

from .datasets import default_evaldata, load_golden


def percentiles(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return f"p50 {np.percentile(ms, 50):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, n={len(ms)}"


def strategy_latencies(retriever: Retriever, questions: list[str]) -> dict[str, str]:
    """Search latency percentiles of each strategy over ``questions`` (top 5)."""
    figures = {}
    for strategy in ("bm25", "dense", "hybrid"):
        samples = []
        for question in questions:
            started = time.perf_counter()
            retriever.search(question, k=5, strategy=strategy)
            samples.append(time.perf_counter() - started)
        figures[strategy] = percentiles(samples)
    return figures


def report_documents() -> list[Document]:
    path = default_evaldata() / "corpora" / "government_work_reports.jsonl"
    docs = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        row = json.loads(line)
        docs.append(Document(f"gwr-{i:03d}", row["title"], row["content"], {"year": row.get("year")}))
    return docs


@click.group("bench")
def bench_group() -> None:
    """Print latency and throughput figures (benchmarks, not tests)."""


@bench_group.command()
@click.option("--corpus", type=click.Path(path_type=Path), default=Path("corpus"))
@click.option("--reports", is_flag=True, help="Index the government work reports instead of --corpus.")
@index_option
def search(index_dir: Path | None, corpus: Path, reports: bool) -> None:
    """Query latency p50/p95 per strategy, using the golden questions, after one warm-up query."""
    settings = Settings.load(index_dir=index_dir)
    if index_dir is None:
        settings = settings.replace(
            index_dir=settings.cache_dir / "bench" / ("reports" if reports else "corpus")
        )
    embedder = Embedder(settings)
    if reports:
        ingest_documents(report_documents(), settings, prune=True, embedder=embedder)
    else:
        ingest_paths([corpus], settings, embedder=embedder)
    retriever = Retriever(settings, embedder=embedder)
    questions = [q.query for q in load_golden().queries]
    retriever.search(questions[0])
    counts = retriever.generation.manifest["counts"]
    click.echo(f"index {settings.index_dir}: {counts['documents']} documents, {counts['chunks']} chunks")
    for strategy, figures in strategy_latencies(retriever, questions).items():
        click.echo(f"{strategy:<7} {figures}")


@bench_group.command()
@index_option
def answer(index_dir: Path | None) -> None:
    """Offline answer latency: retrieval, and building the answer (topic check included) beyond it.

    The topic check's lookups are cached per index generation, so the first pass over the questions is
    timed apart from the warm passes that follow.
    """
    settings = Settings.load(index_dir=index_dir)
    retriever = Retriever(settings)
    questions = [q.query for q in load_golden().queries]
    retriever.search(questions[0])
    search_times, cold_times, build_times = [], [], []
    for rounds in (cold_times, build_times, build_times):
        for question in questions:
            started = time.perf_counter()
            hits = retriever.search(question, k=settings.top_k)
            searched = time.perf_counter()
            extractive_answer(
                question,
                hits,
                refusal_threshold(question, settings),
                retriever.gaps(question),
                retriever.generation,
            )
            search_times.append(searched - started)
            rounds.append(time.perf_counter() - searched)
    click.echo(f"retrieval                 {percentiles(search_times)}")
    click.echo(f"answer beyond it, cold    {percentiles(cold_times)}")
    click.echo(f"answer beyond it, warm    {percentiles(build_times)}")


@bench_group.command()
@index_option
@click.option("--gguf", type=click.Path(path_type=Path, exists=True), default=None)
@click.option("--questions", type=int, default=3)
def llm(index_dir: Path | None, gguf: Path | None, questions: int) -> None:
    """LLM mode through the local GGUF: time to first token, tokens/s and end-to-end latency."""
    from zhiwen.retriever.llamacpp import LlamaCppChat

    settings = Settings.load(index_dir=index_dir)
    path = gguf or Path(
        settings.llm_gguf or settings.cache_dir / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    )
    started = time.perf_counter()
    model = LlamaCppChat.from_path(str(path))
    click.echo(f"model load {time.perf_counter() - started:.1f} s")
    retriever = Retriever(settings)
    for question in ["如何支持新市民金融？", "金融促进消费有哪些措施？", "小微企业融资难主要难在哪里？"][
        :questions
    ]:
        started = time.perf_counter()
        first, pieces = None, []
        final = None
        for event in ask(question, retriever, use_llm=True, chat_model=model):
            match event:
                case TextDelta(text):
                    first = first or time.perf_counter()
                    pieces.append(text)
                case FinalAnswer(answer):
                    final = answer
        total = time.perf_counter() - started
        tokens = len(model.llama.tokenize("".join(pieces).encode("utf-8"), add_bos=False))
        rate = tokens / (total - (first - started)) if first else 0.0
        click.echo(
            f"\n{question}\n  first token {((first or started) - started):.2f} s, {tokens} tokens, "
            f"{rate:.1f} tokens/s, end to end {total:.1f} s, refused={final.refused}"
        )
        click.echo(f"  answer: {final.answer}")
        for warning in final.warnings:
            click.echo(f"  ! {warning}")


def _rss_mb() -> float:
    """This process's resident memory in MB (Milvus Lite 3 serves its file from inside the process)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@bench_group.command()
@click.option("--corpus", type=click.Path(path_type=Path), default=Path("corpus"))
@click.option("--reports", is_flag=True, help="Index the government work reports instead of --corpus.")
@click.option(
    "--updates", type=click.IntRange(1), default=5, show_default=True, help="One-document updates timed."
)
@click.option("--max-docs", type=click.IntRange(1), default=None, help="Only the first N documents.")
def backends(corpus: Path, reports: bool, updates: int, max_docs: int | None) -> None:
    """Ingest, update and query latency of FAISS and Milvus Lite on the same documents, and memory.

    Passage and question embeddings are computed beforehand (a warm-up ingest, then every question
    once), so the times compare the stores; fresh indexes live under ``cache_dir/bench/backends``. An
    update appends one sentence to one document (one new chunk to embed). Queries are the golden
    questions. Milvus Lite 3 runs inside this process, so its memory is the growth of this process.
    """
    import shutil
    from dataclasses import replace

    base = Settings.load()
    embedder = Embedder(base)
    root = base.cache_dir / "bench" / "backends" / ("reports" if reports else "corpus")
    shutil.rmtree(root, ignore_errors=True)
    documents = report_documents() if reports else load_paths([corpus], base, progress=False)[0]
    documents = documents[:max_docs]
    questions = [q.query for q in load_golden().queries]
    edits = [
        replace(doc, text=f"{doc.text}\n第{i}次补充：持续推进金融风险防控。")
        for i, doc in enumerate(documents[:updates])
    ]

    def ingest(settings: Settings, docs: list[Document]) -> float:
        started = time.perf_counter()
        ingest_documents(docs, settings, progress=False, embedder=embedder)
        return time.perf_counter() - started

    def update(settings: Settings) -> list[float]:
        """Apply the edits one by one, each an incremental ingest; their times."""
        current = list(documents)
        times = []
        for i, edit in enumerate(edits):
            current[i] = edit
            times.append(ingest(settings, current))
        return times

    ingest(base.replace(index_dir=root / "warm-up"), documents)
    update(base.replace(index_dir=root / "warm-up"))  # the appended sentences' embeddings, cached too
    for question in questions:
        embedder.encode_query(question)
    for backend in ("faiss", "milvus"):
        settings = base.replace(index_dir=root / backend, backend=backend)
        before = _rss_mb()
        seconds = ingest(settings, documents)
        retriever = Retriever(settings, embedder=embedder)
        retriever.search(questions[0])
        counts = retriever.generation.manifest["counts"]
        click.echo(
            f"{backend}: ingest {seconds:.1f} s for {counts['documents']} documents, {counts['chunks']} chunks"
        )
        for strategy, figures in strategy_latencies(retriever, questions).items():
            click.echo(f"  {strategy:<7} {figures}")
        click.echo(f"  update one document: {percentiles(update(settings))}")
        click.echo(
            f"  process memory {before:.0f} -> {_rss_mb():.0f} MB (resident) across this backend's run"
        )
