"""``zhiwen bench``: start-up, embedding throughput, recall per encoder, scale and a LangChain baseline.

One run prints one table of figures and ratios (``--quick`` is a smoke test that takes a minute or two):

- start-up: ``zhiwen search`` from process start to printed result, with the ONNX int8 encoder and with
  the fp32 torch encoder (sentence-transformers, what every command paid before), and ``zhiwen serve``
  until its chat page and a first search through its API have answered;
- embedding: passages/s of torch fp32, ONNX fp32 and ONNX int8 on the same chunks of the government work
  reports, ingest overall against the raw encoder, and recall@5 of each encoder on the golden set (and on
  the NCPQA and MSGABench dev sets with ``--dev-sets``);
- scale: hybrid query latency (query vectors already computed) at each ``--sizes``, on real statute
  articles from ``lawrefbook_articles.jsonl.gz`` for BM25 and the stored text; the first
  ``--real-vectors`` are real embeddings, the rest synthetic (a real vector plus noise, renormalised), and
  articles repeat beyond 147,288. Exact (flat) and approximate (IVF with 8-bit codes, HNSW) FAISS indexes
  are compared: recall@10 against exact search, latency, bytes per 1M chunks;
- baseline: LangChain's ``FAISS`` plus a jieba ``BM25Retriever`` in an ``EnsembleRetriever``, as
  Langchain-Chatchat builds it, with the same model (torch) and vectors: build time, end-to-end query
  latency and golden recall@5 as ratios (needs ``pip install -e '.[bench]'``).

Run it in the background with ``OMP_NUM_THREADS=1`` on a shared machine.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import click
import numpy as np
from zhiwen.core.embed import Embedder, EmbeddingCache
from zhiwen.core.encoders import load_encoder
from zhiwen.core.index import index_signature, open_generation
from zhiwen.core.options import settings_options
from zhiwen.core.settings import Settings
from zhiwen.core.types import Chunk, Document
from zhiwen.ingest.pipeline import ingest_documents, ingest_paths
from zhiwen.ingest.split import split_document
from zhiwen.ingest.store import build_dense, write_generation
from zhiwen.retriever import Retriever

from .bench import report_documents
from .datasets import default_evaldata, load_dataset, load_golden
from .harness import run_eval
from .metrics import evaluate, ranked_units, to_qrels

QUESTION = "如何防范非法集资？"
ENCODERS = ("torch", "onnx", "onnx-int8")
REPO = Path(__file__).resolve().parents[1]


class Table:
    """Rows of (section, measure, Zhiwen, reference, ratio), printed as they come and as Markdown at the end."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str]] = []

    def add(
        self, section: str, measure: str, ours: float | str, ref: float | str = "", better: str = ""
    ) -> None:
        """``better`` is ``lower`` or ``higher``: the ratio is then reference/ours or ours/reference."""
        ratio = ""
        if better and isinstance(ours, float) and isinstance(ref, float) and ours and ref:
            ratio = f"{(ref / ours) if better == 'lower' else (ours / ref):.1f}×"
        row = (section, measure, _fmt(ours), _fmt(ref), ratio)
        self.rows.append(row)
        click.echo("  ".join(x for x in row if x), err=True)

    def markdown(self) -> str:
        lines = ["| section | measure | Zhiwen | reference | ratio |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def _fmt(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.1f}"


def _pct(samples: Sequence[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1000, q))


def _zhiwen_command() -> list[str]:
    script = Path(sys.executable).with_name("zhiwen")
    return [str(script)] if script.exists() else [sys.executable, "-m", "zhiwen.ui.cli"]


def _timed_run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock seconds and CPU seconds (user + system) of one run of ``args``.

    On a shared machine the CPU time is the steadier figure: the wall clock waits for other jobs.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far, all its threads (from ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve_ready(index_dir: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from starting ``zhiwen serve`` until the chat page answers HTTP 200 and a first search
    through its API has answered, and the server's CPU seconds by then."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    args = [*_zhiwen_command(), "serve", "--port", str(port), "--index", str(index_dir)]
    search = json.dumps({"query": QUESTION, "k": 3}).encode()
    started = time.perf_counter()
    server = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < 300:
            try:
                with urllib.request.urlopen(f"{url}/", timeout=5) as page:
                    page.read()
                asked = urllib.request.Request(
                    f"{url}/api/v1/search", search, {"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(asked, timeout=60) as reply:
                    if page.status == 200 and json.loads(reply.read())["hits"]:
                        return time.perf_counter() - started, _cpu_seconds(server.pid)
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("zhiwen serve did not answer within 300 s")
    finally:
        server.terminate()
        server.wait(timeout=30)


def bench_startup(settings: Settings, work: Path, runs: int, serve: bool, table: Table) -> None:
    """``zhiwen search`` (and ``serve``) from process start, with the int8 and the torch encoder."""
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    ready: dict[str, tuple[float, float]] = {}
    for encoder in ("onnx-int8", "torch"):
        indexed = settings.replace(encoder=encoder, index_dir=work / f"startup-{encoder}")
        ingest_paths([REPO / "corpus"], indexed, progress=False)
        env = {**os.environ, "ZHIWEN_ENCODER": encoder, "ZHIWEN_CACHE_DIR": str(settings.cache_dir)}
        args = [*_zhiwen_command(), "search", QUESTION, "-k", "3", "--index", str(indexed.index_dir)]
        _timed_run(args, env)  # the first run warms the page cache
        runs_done = [_timed_run(args, env) for _ in range(runs)]
        seconds[encoder] = statistics.median(wall for wall, _ in runs_done)
        cpu[encoder] = statistics.median(used for _, used in runs_done)
        if serve:
            _serve_ready(indexed.index_dir, env)  # warms the page cache, as the first search run does
            ready[encoder] = _serve_ready(indexed.index_dir, env)
    table.add(
        "start-up",
        "zhiwen search, start to result (s; vs torch)",
        seconds["onnx-int8"],
        seconds["torch"],
        "lower",
    )
    table.add(
        "start-up",
        "zhiwen search, CPU user + system (s; vs torch)",
        cpu["onnx-int8"],
        cpu["torch"],
        "lower",
    )
    if serve:
        for at, label in ((0, "start to page and first search answered (s"), (1, "CPU by then (s")):
            table.add(
                "start-up",
                f"zhiwen serve, {label}; vs torch)",
                ready["onnx-int8"][at],
                ready["torch"][at],
                "lower",
            )


def _throughput(work: Callable[[], object], items: int) -> tuple[float, float]:
    """Items per wall-clock second and per CPU second (this process, all threads) of one call of ``work``.

    With one thread per job, CPU seconds are what the work costs whatever else the machine runs.
    """
    started, cpu = time.perf_counter(), time.process_time()
    work()
    return items / (time.perf_counter() - started), items / (time.process_time() - cpu)


def _report_chunks(passages: int) -> tuple[list[Document], list[Chunk]]:
    """Whole government work reports, in order, until they hold at least ``passages`` chunks."""
    docs: list[Document] = []
    chunks: list[Chunk] = []
    for doc in report_documents():
        docs.append(doc)
        chunks += split_document(doc, "structure", 360, 24)
        if len(chunks) >= passages:
            break
    return docs, chunks


def bench_embedding(settings: Settings, work: Path, passages: int, dev_sets: bool, table: Table) -> None:
    """Passages/s per encoder on the same chunks, ingest overall against the encoder, recall per encoder.

    Every encoder embeds the distinct texts of the chunks, which are exactly what ingest embeds (a text
    that repeats is embedded once), so ingest's rate over those texts, against the raw encoder's, is the
    share of its time spent embedding: splitting, outlines, tokenising and writing take the rest.
    """
    docs, chunks = _report_chunks(passages)
    texts = list(dict.fromkeys(settings.passage_prompt + c.indexed_text for c in chunks))
    rate: dict[str, float] = {}
    cpu_rate: dict[str, float] = {}
    for encoder in ENCODERS:
        model = load_encoder(settings.replace(encoder=encoder))
        model.encode(texts[:8], settings.embed_batch_size)  # warm-up
        rate[encoder], cpu_rate[encoder] = _throughput(
            lambda m=model: m.encode(texts, settings.embed_batch_size), len(texts)
        )
    for encoder in ("onnx", "onnx-int8"):
        for label, rates in (("passages/s", rate), ("passages per CPU s", cpu_rate)):
            table.add(
                "embedding",
                f"{encoder} {label} ({len(texts)} chunks; vs torch fp32)",
                rates[encoder],
                rates["torch"],
                "higher",
            )
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Embedder(settings, cache=EmbeddingCache(Path(tmp) / "embeddings.sqlite"))
        fresh.encode_queries(["预热"])
        index = settings.replace(index_dir=Path(tmp) / "index")
        overall, cpu_overall = _throughput(
            lambda: ingest_documents(docs, index, progress=False, embedder=fresh), len(texts)
        )
    for label, ours, raw in (
        ("passages/s", overall, rate[settings.encoder]),
        ("passages per CPU s", cpu_overall, cpu_rate[settings.encoder]),
    ):
        table.add(
            "embedding",
            f"ingest overall {label} ({len(docs)} reports, {len(chunks)} chunks; vs raw {settings.encoder} "
            "encoder on the same texts)",
            ours,
            raw,
            "higher",
        )
    sets = ["golden"] + (["ncpqa", "msgabench"] if dev_sets else [])
    for name in sets:
        dataset = load_golden() if name == "golden" else load_dataset(name)
        recall: dict[str, dict[str, float]] = {}
        for encoder in ("torch", "onnx-int8"):
            result = run_eval(
                dataset,
                settings.replace(encoder=encoder),
                strategies=("dense", "hybrid"),
                chunkers=("structure",),
                index_root=work / "eval" / encoder,
                progress=False,
            )
            for row in result.rows:
                recall.setdefault(f"{row.level} {row.strategy}", {})[encoder] = row.metrics["recall@5"]
        for measure, by_encoder in recall.items():
            table.add(
                "recall@5",
                f"{name} {measure}: int8 (vs torch fp32)",
                by_encoder["onnx-int8"],
                by_encoder["torch"],
            )


def _articles(limit: int) -> list[dict]:
    path = default_evaldata() / "corpora" / "lawrefbook_articles.jsonl.gz"
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            rows.append(json.loads(line))
            if len(rows) >= limit:
                break
    return rows


def _scale_vectors(real: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """The real vectors, then synthetic ones: a random real vector plus noise (cosine about 0.9), renormalised."""
    rng = np.random.default_rng(seed)
    extra = size - len(real)
    if extra <= 0:
        return real[:size]
    base = real[rng.integers(0, len(real), extra)]
    noisy = base + rng.standard_normal(base.shape, dtype=np.float32) * (0.45 / np.sqrt(real.shape[1]))
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    return np.vstack([real, noisy.astype(np.float32)])


def _latencies(search: Callable[[str], object], queries: Sequence[str]) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds (this thread) of ``search`` for each query.

    On a loaded machine a query's wall time is mostly waiting for a core; its CPU time is what it costs.
    """
    walls, cpus = [], []
    for query in queries:
        started, cpu = time.perf_counter(), time.thread_time()
        search(query)
        walls.append(time.perf_counter() - started)
        cpus.append(time.thread_time() - cpu)
    return walls, cpus


def _percentiles(samples: Sequence[float]) -> str:
    return " / ".join(f"{_pct(samples, q):.1f}" for q in (50, 95, 99))


def bench_scale(
    settings: Settings,
    work: Path,
    sizes: Sequence[int],
    real_vectors: int,
    n_queries: int,
    baseline_up_to: int,
    table: Table,
) -> None:
    """Hybrid latency, ANN recall and memory at each size; the LangChain baseline up to ``baseline_up_to``."""
    import faiss

    rows = _articles(max(sizes))
    embedder = Embedder(settings)
    real = embedder.encode_passages([r["text"] for r in rows[:real_vectors]])
    queries = [q["query"] for q in _read_queries(n_queries)]
    query_vectors = np.stack([embedder.encode_query(q) for q in queries])  # remembered by the embedder
    for size in sizes:
        picked = [rows[i % len(rows)] for i in range(size)]
        documents = list(
            {r["doc_id"]: Document(r["doc_id"], r["title"], r["text"], {}) for r in picked}.values()
        )
        chunks = [
            Chunk(
                f"{r['doc_id']}#{i}", r["doc_id"], r["title"], r["text"], 0, len(r["text"]), "", "article", {}
            )
            for i, r in enumerate(picked)
        ]
        vectors = _scale_vectors(real, size)
        exact = faiss.IndexFlatIP(vectors.shape[1])
        exact.add(vectors)
        _, truth = exact.search(query_vectors, 10)
        del exact
        indexed = settings.replace(index_dir=work / f"scale-{size}")
        started = time.perf_counter()
        write_generation(indexed.index_dir, documents, chunks, vectors, index_signature(settings), "flat")
        built = time.perf_counter() - started
        if size <= baseline_up_to:
            _baseline_scale(settings, indexed, picked, vectors, queries, built, table)
        for kind in ("flat", "ivf-sq8", "hnsw") if size >= 50_000 else ("flat",):
            gen_path = open_generation(indexed.index_dir).path
            if kind != "flat":  # the same generation (texts, BM25) with this kind of dense index
                started = time.perf_counter()
                faiss.write_index(build_dense(vectors, kind, 0)[0], str(gen_path / "dense.tmp"))
                built = time.perf_counter() - started
                os.replace(gen_path / "dense.tmp", gen_path / "dense.faiss")  # open maps keep the old file
            retriever = Retriever(indexed, embedder=embedder)
            retriever.search(queries[0])
            walls, cpus = _latencies(lambda q, r=retriever: r.search(q, k=10, strategy="hybrid"), queries)
            gen = open_generation(indexed.index_dir)
            _, found = gen.dense.search(query_vectors, 10)
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)]))
            per_million = (gen.path / "dense.faiss").stat().st_size / size * 1_000_000 / 2**20
            gen.close()
            del retriever
            label = f"{size:,} chunks, {kind}"
            table.add("scale", f"{label}: hybrid p50 / p95 / p99 ms, wall", _percentiles(walls))
            table.add("scale", f"{label}: hybrid p50 / p95 / p99 ms, CPU", _percentiles(cpus))
            what = "whole index" if kind == "flat" else "dense index"
            table.add(
                "scale",
                f"{label}: dense recall@10 vs exact, MB per 1M chunks, {what} build s",
                f"{recall:.3f}, {per_million:,.0f} MB, {built:.0f} s",
            )
        shutil.rmtree(indexed.index_dir, ignore_errors=True)


def _read_queries(limit: int) -> list[dict]:
    path = default_evaldata() / "stard_statutes" / "queries.dev.jsonl"
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line, _ in zip(lines, range(limit), strict=False)]


class _TorchEmbeddings:
    """The same e5 model through sentence-transformers, as a LangChain ``Embeddings`` (what Chatchat uses)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model = load_encoder(settings.replace(encoder="torch"))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        prompted = [self.settings.passage_prompt + t for t in texts]
        return self.model.encode(prompted, self.settings.embed_batch_size).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.model.encode([self.settings.query_prompt + text], 1)[0].tolist()


def langchain_ensemble(
    texts: list[str], metadatas: list[dict], vectors: np.ndarray, settings: Settings, k: int
):
    """LangChain FAISS plus a jieba BM25Retriever, fused by an EnsembleRetriever (weights 0.5/0.5)."""
    import jieba
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_community.vectorstores import FAISS
    from langchain_core.embeddings import Embeddings

    class TorchEmbeddings(_TorchEmbeddings, Embeddings):
        pass

    store = FAISS.from_embeddings(
        list(zip(texts, vectors.tolist(), strict=True)), TorchEmbeddings(settings), metadatas=metadatas
    )
    bm25 = BM25Retriever.from_texts(texts, metadatas=metadatas, preprocess_func=jieba.lcut, k=k)
    return EnsembleRetriever(
        retrievers=[bm25, store.as_retriever(search_kwargs={"k": k})], weights=[0.5, 0.5]
    )


def _baseline_scale(
    settings: Settings,
    indexed: Settings,
    picked: list[dict],
    vectors: np.ndarray,
    queries: Sequence[str],
    built: float,
    table: Table,
) -> None:
    """Build time and end-to-end query latency (query embedding included) against the LangChain ensemble."""
    texts = [r["text"] for r in picked]
    started = time.perf_counter()
    ensemble = langchain_ensemble(texts, [{"row": i} for i in range(len(texts))], vectors, settings, 10)
    baseline_built = time.perf_counter() - started
    ensemble.invoke(queries[0])
    theirs, theirs_cpu = _latencies(ensemble.invoke, queries)
    retriever = Retriever(indexed, embedder=Embedder(settings))  # a fresh embedder: queries are embedded
    retriever.search("预热")
    ours, ours_cpu = _latencies(lambda q: retriever.search(q, k=10, strategy="hybrid"), queries)
    size = f"{len(texts):,} chunks"
    table.add(
        "baseline", f"{size}: index build s, vectors given (vs LangChain)", built, baseline_built, "lower"
    )
    for q in (50, 95):
        for clock, mine, other in (("wall", ours, theirs), ("CPU", ours_cpu, theirs_cpu)):
            table.add(
                "baseline",
                f"{size}: query p{q} ms incl. embedding, {clock} (vs LangChain)",
                _pct(mine, q),
                _pct(other, q),
                "lower",
            )


def bench_baseline_recall(settings: Settings, work: Path, table: Table) -> None:
    """Golden recall@5 of Zhiwen's hybrid search against the LangChain ensemble over the same chunks."""
    dataset = load_golden()
    indexed = settings.replace(index_dir=work / "baseline-golden")
    ingest_documents(dataset.documents, indexed, prune=True, progress=False)
    chunks = open_generation(indexed.index_dir, index_signature(indexed)).chunks()
    texts = [c.indexed_text for c in chunks]
    torch_vectors = Embedder(settings.replace(encoder="torch")).encode_passages(texts)
    metadatas = [{"chunk_id": c.chunk_id, "doc_id": c.doc_id, "start": c.start, "end": c.end} for c in chunks]
    ensemble = langchain_ensemble(texts, metadatas, torch_vectors, settings, 5)
    retriever = Retriever(indexed)
    ours, theirs = {}, {}
    for q in dataset.queries:
        if not q.gold.get("span"):
            continue
        ours[q.qid] = ranked_units(retriever.search(q.query, k=5), q.gold["span"], "span")
        found = [_Ranked(**d.metadata) for d in ensemble.invoke(q.query)[:5]]
        theirs[q.qid] = ranked_units(found, q.gold["span"], "span")
    qrels = to_qrels(dataset.queries, "span")
    table.add(
        "baseline",
        "golden recall@5, span (vs LangChain)",
        evaluate(qrels, ours, 5)["recall@5"],
        evaluate(qrels, theirs, 5)["recall@5"],
        "higher",
    )


class _Ranked:
    def __init__(self, chunk_id: str, doc_id: str, start: int, end: int) -> None:
        self.chunk_id, self.doc_id, self.start, self.end = chunk_id, doc_id, start, end


@click.command("bench")
@click.option(
    "--quick", is_flag=True, help="A smoke test: tiny sizes, few passages and queries (a minute or two)."
)
@click.option(
    "--sizes", default="10000,100000,1000000", show_default=True, help="Chunk counts for the scale section."
)
@click.option("--passages", type=int, default=512, show_default=True, help="Chunks embedded per encoder.")
@click.option(
    "--queries", "n_queries", type=int, default=200, show_default=True, help="STARD dev questions per size."
)
@click.option(
    "--real-vectors", type=int, default=2000, show_default=True, help="Real embeddings before synthetic ones."
)
@click.option(
    "--baseline-up-to", type=int, default=100_000, show_default=True, help="Largest size for LangChain."
)
@click.option("--dev-sets", is_flag=True, help="Also recall@5 on the NCPQA and MSGABench dev sets (slow).")
@click.option(
    "--only",
    type=click.Choice(["startup", "embedding", "scale", "baseline"]),
    multiple=True,
    help="Run only these sections (repeatable).",
)
@settings_options
def bench_command(
    settings: Settings,
    quick: bool,
    sizes: str,
    passages: int,
    n_queries: int,
    real_vectors: int,
    baseline_up_to: int,
    dev_sets: bool,
    only: tuple[str, ...],
) -> None:
    """Print start-up, embedding, recall, scale and LangChain-baseline figures as one table (benchmarks)."""
    if quick:
        sizes, passages, n_queries, real_vectors, baseline_up_to = "2000", 24, 10, 200, 2000
    wanted = set(only or ("startup", "embedding", "scale", "baseline"))
    work = Path(settings.cache_dir) / "bench" / "speed"
    work.mkdir(parents=True, exist_ok=True)
    table = Table()
    click.echo(f"load average at start: {Path('/proc/loadavg').read_text().split()[:3]}", err=True)
    if "startup" in wanted:
        bench_startup(settings, work, 1 if quick else 3, serve=not quick, table=table)
    if "embedding" in wanted:
        bench_embedding(settings, work, passages, dev_sets, table)
    if "baseline" in wanted:
        bench_baseline_recall(settings, work, table)
    if "scale" in wanted:
        size_list = [int(s) for s in sizes.split(",") if s.strip()]
        limit = baseline_up_to if "baseline" in wanted else 0
        bench_scale(settings, work, size_list, real_vectors, n_queries, limit, table)
    click.echo(table.markdown())
