"""Benchmarks that print figures (not timed tests): search and answer latency, LLM throughput.

    zhiwen eval bench search  [--index DIR] [--corpus corpus/ | --reports]   query latency p50/p95
    zhiwen eval bench answer  [--index DIR]                                  offline answer latency
    zhiwen eval bench llm     [--gguf FILE] [--questions 3]                  tokens/s, end-to-end

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
from zhiwen.ingest.pipeline import ingest_documents, ingest_paths
from zhiwen.retriever import Retriever
from zhiwen.retriever.answer import ask, extractive_answer, refusal_threshold

from .datasets import default_evaldata, load_golden


def percentiles(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return f"p50 {np.percentile(ms, 50):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, n={len(ms)}"


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
    for strategy in ("bm25", "dense", "hybrid"):
        samples = []
        for question in questions:
            started = time.perf_counter()
            retriever.search(question, k=5, strategy=strategy)
            samples.append(time.perf_counter() - started)
        click.echo(f"{strategy:<7} {percentiles(samples)}")


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
    from zhiwen.retriever.llm import LlamaCppChat

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
