"""Run an evaluation: index a dataset once per chunker, ask every question with every strategy, score.

Indexes live in ``<settings.cache_dir>/eval/<dataset>/<chunker>`` and are updated incrementally, with the
embeddings cached by content, so a second run of the same set only pays for the searches. One embedder
(one model load) serves every index and strategy of a run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm
from zhiwen.core.embed import Embedder
from zhiwen.core.settings import Settings
from zhiwen.core.types import Hit
from zhiwen.core.vocab import CHUNKERS, STRATEGIES
from zhiwen.ingest.pipeline import IngestReport, ingest_documents
from zhiwen.retriever import Retriever
from zhiwen.retriever.hybrid import FusionParams

from .datasets import Dataset
from .metrics import Positions, evaluate, ranked_units, to_qrels


@dataclass
class Run:
    """The hits of one chunker x strategy for every question, and the time the searches took."""

    chunker: str
    strategy: str
    hits: dict[str, list[Hit]]
    seconds: float

    @property
    def name(self) -> str:
        return f"{self.chunker}-{self.strategy}"

    def positions(self, dataset: Dataset, level: str) -> dict[str, Positions]:
        """Per scored question, the relevance units each rank delivered (see ``metrics.ranked_units``)."""
        return {
            q.qid: ranked_units(self.hits[q.qid], q.gold[level], level)
            for q in dataset.queries
            if q.gold.get(level)
        }


@dataclass
class Row:
    """One line of the results table."""

    level: str
    chunker: str
    strategy: str
    metrics: dict[str, float]
    ms_per_query: float


@dataclass
class EvalResult:
    """Everything a run measured, ready for the table, JSON, TREC files and the report page."""

    dataset: Dataset
    k: int
    fusion: str
    params: FusionParams
    runs: list[Run]
    rows: list[Row] = field(default_factory=list)
    index_summaries: dict[str, str] = field(default_factory=dict)

    def scored(self, level: str) -> int:
        """How many questions have gold at ``level``."""
        return sum(1 for q in self.dataset.queries if q.gold.get(level))

    @property
    def negatives(self) -> int:
        return sum(1 for q in self.dataset.queries if q.negative)


def build_index(
    dataset: Dataset, settings: Settings, chunker: str, index_root: Path, embedder: Embedder, progress: bool
) -> tuple[Settings, IngestReport]:
    """Bring ``index_root/<dataset>/<chunker>`` in line with the dataset; returns its settings and report."""
    indexed = settings.replace(chunker=chunker, index_dir=index_root / dataset.name / chunker)
    report = ingest_documents(dataset.documents, indexed, prune=True, progress=progress, embedder=embedder)
    return indexed, report


def run_eval(
    dataset: Dataset,
    settings: Settings,
    strategies: Sequence[str] = STRATEGIES,
    chunkers: Sequence[str] = CHUNKERS,
    k: int = 10,
    fusion: str | None = None,
    params: FusionParams | None = None,
    embedder: Embedder | None = None,
    index_root: Path | None = None,
    progress: bool = True,
) -> EvalResult:
    """Evaluate ``strategies`` x ``chunkers`` on ``dataset``, searching ``k`` chunks per question.

    ``fusion`` and ``params`` (default: the settings' fusion and dense_weight) are passed to the
    retriever's hybrid strategy, so fusions can be swept from Python. ``index_root`` defaults to ``settings.cache_dir / "eval"``; ``embedder`` is created once
    when not given.
    """
    fusion = fusion or settings.fusion
    params = params or FusionParams(dense_weight=settings.dense_weight)
    embedder = embedder or Embedder(settings)
    index_root = index_root or Path(settings.cache_dir) / "eval"
    result = EvalResult(dataset, k, fusion, params, runs=[])
    for chunker in chunkers:
        indexed, report = build_index(dataset, settings, chunker, index_root, embedder, progress)
        result.index_summaries[chunker] = report.summary()
        retriever = Retriever(indexed, embedder=embedder, fusion=fusion, params=params)
        for strategy in strategies:
            hits: dict[str, list[Hit]] = {}
            started = time.perf_counter()
            questions = tqdm(
                dataset.queries, desc=f"{chunker}/{strategy}", unit="q", disable=not progress, file=sys.stderr
            )
            for query in questions:
                hits[query.qid] = retriever.search(query.query, k=k, strategy=strategy)
            result.runs.append(Run(chunker, strategy, hits, time.perf_counter() - started))
    result.rows = score(result)
    return result


def score(result: EvalResult) -> list[Row]:
    """The metric rows of every level x run, in the order the runs were made.

    A set with several kinds of answerable question (golden: direct and paraphrase) also gets a row per
    kind, as ``level:kind`` (``span:direct``): wording close to the reports favours BM25, paraphrases favour
    dense search, and a fusion must serve both.
    """
    rows: list[Row] = []
    asked = max(1, len(result.dataset.queries))
    kinds = sorted({q.kind for q in result.dataset.queries if not q.negative})
    for level in result.dataset.levels:
        groups = [(level, result.dataset.queries)]
        if len(kinds) > 1:
            groups += [
                (f"{level}:{kind}", [q for q in result.dataset.queries if q.kind == kind]) for kind in kinds
            ]
        for name, queries in groups:
            qrels = to_qrels(queries, level)
            if not qrels:
                continue
            for run in result.runs:
                metrics = evaluate(qrels, run.positions(result.dataset, level), result.k)
                rows.append(Row(name, run.chunker, run.strategy, metrics, 1000 * run.seconds / asked))
    return rows
