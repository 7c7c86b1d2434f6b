"""Benchmarks that print figures (not timed tests): search and answer latency, LLM throughput.

    zhiwen eval bench search  [--index DIR] [--corpus corpus/ | --reports]   query latency p50/p95
    zhiwen eval bench answer  [--index DIR]                                  offline answer latency
    zhiwen eval bench llm     [--gguf FILE] [--questions 3]                  tokens/s, end-to-end
    zhiwen eval bench backends [--corpus corpus/ | --reports] [--out DIR]   FAISS vs Milvus Lite
    zhiwen eval bench milvus-index [--corpus corpus/ | --reports]           dense index types in Lite
    zhiwen eval bench memory  [--index DIR]                                 resident memory, stage by stage

``--reports`` indexes the 52+ State Council government work reports from ../shared/evaldata first.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click
import numpy as np
from zhiwen.core.embed import Embedder
from zhiwen.core.index import live_manifest
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


def strategy_latencies(
    retriever: Retriever, questions: list[str], strategies: tuple[str, ...] = ("bm25", "dense", "hybrid")
) -> dict[str, str]:
    """Search latency percentiles of each of ``strategies`` over ``questions`` (top 5)."""
    figures = {}
    for strategy in strategies:
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


def _rss_mb(pid: int | str = "self") -> float:
    """Resident memory of process ``pid`` (this one by default) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _children() -> list[int]:
    """The ids of this process's child processes (Milvus Lite 3 starts none: it serves from threads)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


def _wait_for_lite(settings: Settings) -> float:
    """Wait until Milvus Lite has built the indexes of the segments a flush sealed; the seconds waited.

    Lite builds them in a background thread after ``flush`` returns, and searches segments without one
    unindexed meanwhile; a bench waits so that it times indexed searches. This reaches into Lite's
    internals (a benchmark's privilege; Zhiwen itself never does); a server is not waited for.
    """
    from milvus_lite import server_manager_instance

    started = time.perf_counter()
    found = server_manager_instance._servers.get(os.path.abspath(settings.milvus_address))
    if found:
        for collection in list(found[1]._collections.values()):
            collection._wait_for_bg()
    return time.perf_counter() - started


def _memory() -> str:
    """This process's resident memory and its children's, as printed by the backend benchmarks."""
    children = _children()
    held = sum(_rss_mb(pid) for pid in children)
    return f"{_rss_mb():.0f} MB resident, {len(children)} child processes ({held:.0f} MB)"


max_docs_option = click.option(
    "--max-docs", type=click.IntRange(1), default=None, help="Only the first N documents."
)
out_option = click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for the fresh indexes (emptied first) [default: under cache_dir/bench].",
)


def _bench_documents(settings: Settings, corpus: Path, reports: bool, max_docs: int | None) -> list[Document]:
    """The documents a backend benchmark indexes: the government work reports or ``corpus``, the first
    ``max_docs`` of them."""
    documents = report_documents() if reports else load_paths([corpus], settings, progress=False)[0]
    return documents[:max_docs]


@bench_group.command()
@click.option("--corpus", type=click.Path(path_type=Path), default=Path("corpus"))
@click.option("--reports", is_flag=True, help="Index the government work reports instead of --corpus.")
@click.option(
    "--updates", type=click.IntRange(1), default=5, show_default=True, help="One-document updates timed."
)
@max_docs_option
@out_option
def backends(corpus: Path, reports: bool, updates: int, max_docs: int | None, out: Path | None) -> None:
    """Ingest, update and query latency of FAISS and Milvus Lite on the same documents, and memory.

    Every passage is embedded once, by a warm-up ingest into the embedding cache, and every question
    once beforehand, so both backends receive the same vectors and the times compare the stores. An
    update appends one sentence to one document (one new chunk to embed). Queries are the golden
    questions, searched again (hybrid) after the updates. Milvus Lite 3 serves its file from threads of
    this process (the child-process count printed shows it), so its memory is this process's growth.
    """
    import shutil
    from dataclasses import replace

    base = Settings.load()
    embedder = Embedder(base)
    root = out or base.cache_dir / "bench" / "backends" / ("reports" if reports else "corpus")
    shutil.rmtree(root, ignore_errors=True)
    documents = _bench_documents(base, corpus, reports, max_docs)
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

    embedded = embedder.embedded_count
    seconds = ingest(base.replace(index_dir=root / "warm-up"), documents)
    update(base.replace(index_dir=root / "warm-up"))  # the appended sentences' embeddings, cached too
    click.echo(
        f"warm-up: {seconds:.1f} s, {embedder.embedded_count - embedded} passages embedded "
        f"(the rest were in the embedding cache)"
    )
    for question in questions:
        embedder.encode_query(question)
    for backend in ("faiss", "milvus"):
        settings = base.replace(index_dir=root / backend, backend=backend)
        click.echo(f"{backend}: before ingest, {_memory()}")
        seconds = ingest(settings, documents)
        counts = live_manifest(settings)["counts"]
        click.echo(f"  ingest {seconds:.1f} s for {counts['documents']} documents, {counts['chunks']} chunks")
        if backend == "milvus":
            click.echo(f"  then Lite's background index build: {_wait_for_lite(settings):.1f} s")
        retriever = Retriever(settings, embedder=embedder)
        retriever.search(questions[0])
        for strategy, figures in strategy_latencies(retriever, questions).items():
            click.echo(f"  {strategy:<7} {figures}")
        click.echo(f"  after ingest and searches, {_memory()}")
        click.echo(f"  update one document: {percentiles(update(settings))}")
        if backend == "milvus":
            click.echo(f"  then Lite's background index build: {_wait_for_lite(settings):.1f} s")
        again = strategy_latencies(retriever, questions, strategies=("hybrid",))["hybrid"]
        click.echo(f"  hybrid after the updates: {again}")
        click.echo(f"  after the updates, {_memory()}")


def _folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


SWEEP = {  # search parameters tried per Milvus index type (ef at least the retriever's depth of 100)
    "FLAT": [{}],
    "HNSW": [{"ef": ef} for ef in (128, 256, 512)],
    "HNSW_SQ": [{"ef": ef} for ef in (128, 256, 512)],
    "IVF_FLAT": [{"nprobe": n} for n in (16, 64, 256)],
    "IVF_SQ8": [{"nprobe": n} for n in (16, 64, 256)],
}


@bench_group.command("milvus-index")
@click.option("--corpus", type=click.Path(path_type=Path), default=Path("corpus"))
@click.option("--reports", is_flag=True, help="Index the government work reports instead of --corpus.")
@max_docs_option
@out_option
def milvus_index(corpus: Path, reports: bool, max_docs: int | None, out: Path | None) -> None:
    """Dense index types in Milvus Lite: build time, recall@10 against exact search, latency, files.

    The documents are ingested once into FAISS (exact, embeddings cached), then copied into one Milvus
    Lite collection per index type with the same vectors, as ``zhiwen migrate`` does. Each golden
    question's dense search (the retriever's depth, 100 hits, all rows visible) is timed, and its top 10
    compared with the exact top 10 over the stored vectors (a hit as close as the exact 10th counts).
    """
    import shutil

    from zhiwen.core.index import open_live
    from zhiwen.core.milvus import MILVUS_INDEXES, connect
    from zhiwen.core.tokenize import tokenize
    from zhiwen.ingest.migrate import SIGNATURE_KEYS, stored_vectors
    from zhiwen.ingest.milvus_store import write_milvus

    base = Settings.load()
    embedder = Embedder(base)
    root = out or base.cache_dir / "bench" / "milvus-index" / ("reports" if reports else "corpus")
    shutil.rmtree(root, ignore_errors=True)
    source = base.replace(index_dir=root / "faiss", dense_index="flat")
    ingest_documents(
        _bench_documents(base, corpus, reports, max_docs), source, progress=False, embedder=embedder
    )
    gen = open_live(source)
    docs, chunks = gen.documents(), gen.chunks()
    outlines = {d.doc_id: gen.outline(d.doc_id) for d in docs}
    vectors = stored_vectors(gen)
    signature = {key: gen.manifest[key] for key in SIGNATURE_KEYS}
    queries = np.stack([embedder.encode_query(q.query) for q in load_golden().queries])
    similarity = queries @ vectors.T
    tenth = -np.sort(-similarity, axis=1)[:, 9]  # a hit counts when it is as close as the exact 10th (ties)
    terms = [len(set(tokenize(c.indexed_text))) for c in chunks]
    click.echo(
        f"{len(docs)} documents, {len(chunks)} chunks ({np.mean([len(c.indexed_text) for c in chunks]):.0f} "
        f"characters indexed, {np.mean(terms):.0f} distinct BM25 terms a chunk); "
        f"{len(queries)} golden questions, top 10"
    )
    lite = root / "lite.db"
    connect(base.replace(milvus_uri=str(lite)))  # Lite's server starts here, not in the first build timed
    for index_type in MILVUS_INDEXES:
        settings = base.replace(
            backend="milvus", index_dir=root, milvus_uri=str(lite), milvus_collection=index_type.lower()
        )
        started = time.perf_counter()
        write_milvus(settings, signature, docs, chunks, outlines, lambda _: vectors, dense_index=index_type)
        built = time.perf_counter() - started
        built += _wait_for_lite(settings)
        segments = lite / "collections" / settings.collection / "partitions" / "_default"
        dense_bytes = sum(f.stat().st_size for f in segments.glob("indexes/*.dense.*"))
        data_bytes = sum(f.stat().st_size for f in segments.glob("data/*.parquet"))
        click.echo(
            f"{index_type}: dense index files {dense_bytes / len(chunks):.0f} bytes a chunk; "
            f"row data (parquet) {data_bytes / len(chunks):.0f} bytes a chunk"
        )
        reader = open_live(settings, signature)
        for params in SWEEP[index_type]:
            reader.dense_params = params
            samples, recall = [], []
            for query, exact, least in zip(queries, similarity, tenth, strict=True):
                started = time.perf_counter()
                _, dense = reader.candidates([], query, 100)
                samples.append(time.perf_counter() - started)
                top = sorted(dense, key=dense.get, reverse=True)[:10]
                recall.append(sum(exact[row] >= least - 1e-6 for row in top) / 10)
            click.echo(
                f"{index_type:<8} {json.dumps(params):<16} recall@10 {np.mean(recall):.3f}  "
                f"{percentiles(samples)}  (ingest and index build {built:.1f} s)"
            )
    click.echo(f"Milvus Lite files: {_folder_mb(lite):.0f} MB for {len(MILVUS_INDEXES)} collections ({lite})")


@bench_group.command("memory")
@index_option
def memory(index_dir: Path | None) -> None:
    """Resident memory of a fresh process searching the configured index (``backend = "milvus"``: Milvus
    Lite inside this process), stage by stage: imports, the model and the golden questions' vectors, the
    first search (Lite's server started, the collections loaded), every golden question by each strategy.
    """
    settings = Settings.load(index_dir=index_dir)
    click.echo(f"{settings.backend}, {settings.milvus_address if settings.backend == 'milvus' else ''}")
    click.echo(f"  imports: {_memory()}")
    embedder = Embedder(settings)
    questions = [q.query for q in load_golden().queries]
    for question in questions:
        embedder.encode_query(question)
    click.echo(f"  model and {len(questions)} question vectors: {_memory()}")
    retriever = Retriever(settings, embedder=embedder)
    retriever.search(questions[0])
    counts = retriever.generation.manifest["counts"]
    click.echo(f"  first search ({counts['chunks']} chunks): {_memory()}")
    strategy_latencies(retriever, questions)
    peak = next(line for line in Path("/proc/self/status").read_text().splitlines() if "VmHWM" in line)
    click.echo(
        f"  after {3 * len(questions)} searches: {_memory()}; peak {int(peak.split()[1]) / 1024:.0f} MB"
    )
