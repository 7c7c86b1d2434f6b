"""Sweep hybrid fusions over dev sets: search each question once, re-rank its candidates many ways.

    zhiwen eval tune --dataset golden --dataset ncpqa --dataset msgabench

For every dataset the BM25 and dense candidates of every question are computed once (through the same
``Retriever`` the product uses), then each fusion configuration ranks them (``Retriever.rank``) and is
scored with the eval metrics. Prints one table per configuration with BM25 and dense alongside, and the
configurations whose recall@1 and recall@5 are at least the best single method's on every set.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

import click
from tqdm import tqdm
from zhiwen.core.embed import Embedder
from zhiwen.core.settings import Settings
from zhiwen.core.vocab import CHUNKERS
from zhiwen.retriever import Retriever
from zhiwen.retriever.hybrid import FUSIONS, FusionParams
from zhiwen.retriever.search import Candidates

from .datasets import Dataset, load_dataset
from .harness import build_index
from .metrics import evaluate, ranked_units, to_qrels


@dataclass(frozen=True)
class Config:
    """A ranking to score: a single strategy, or a fusion with its parameters."""

    strategy: str
    fusion: str = ""
    params: FusionParams = field(default_factory=FusionParams)

    @property
    def name(self) -> str:
        if self.strategy != "hybrid":
            return self.strategy
        return f"{self.fusion}(w={self.params.dense_weight:g})"


def default_configs() -> list[Config]:
    configs = [Config("bm25"), Config("dense")]
    for fusion in FUSIONS:
        for weight in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
            configs.append(Config("hybrid", fusion, FusionParams(dense_weight=weight)))
    return configs


def sweep(
    dataset: Dataset,
    settings: Settings,
    configs: list[Config],
    embedder: Embedder,
    chunker: str = "structure",
    k: int = 10,
) -> dict[str, dict[str, float]]:
    """Metrics of every configuration on ``dataset`` (first level that has gold: span or document)."""
    indexed, _ = build_index(dataset, settings, chunker, settings.cache_dir / "eval", embedder, progress=True)
    retriever = Retriever(indexed, embedder=embedder)
    level = next(lv for lv in dataset.levels if to_qrels(dataset.queries, lv))
    qrels = to_qrels(dataset.queries, level)
    asked = [q for q in dataset.queries if q.qid in qrels]
    found = cached_candidates(
        dataset, retriever, asked, indexed.index_dir.parent / f"{chunker}-candidates.json"
    )
    results = {}
    for config in tqdm(configs, desc=f"{dataset.name}: ranking", file=sys.stderr):
        positions = {
            q.qid: ranked_units(
                retriever.rank(
                    q.query,
                    found[q.qid],
                    k,
                    config.strategy,
                    fusion=config.fusion or None,
                    params=config.params,
                ),
                q.gold[level],
                level,
            )
            for q in asked
        }
        results[config.name] = evaluate(qrels, positions, k)
    return results


def cached_candidates(dataset: Dataset, retriever: Retriever, asked: list, path) -> dict[str, Candidates]:
    """Each question's BM25 and dense candidates, kept in a JSON file next to the index while it is unchanged."""
    generation = retriever.generation.path.name
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("generation") == generation and set(data["queries"]) >= {q.qid for q in asked}:
            return {
                qid: Candidates(
                    {int(r): s for r, s in c["bm25"].items()}, {int(r): s for r, s in c["dense"].items()}
                )
                for qid, c in data["queries"].items()
            }
    found = {
        q.qid: retriever.candidates(q.query, "hybrid")
        for q in tqdm(asked, desc=f"{dataset.name}: searching", file=sys.stderr)
    }
    data = {
        "generation": generation,
        "queries": {qid: {"bm25": c.bm25, "dense": c.dense} for qid, c in found.items()},
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return found


def earned(results: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Fusions whose recall@1 and recall@5 reach the best single method's on every set, better on average."""
    names = next(iter(results.values())).keys()
    winners = []
    for name in names:
        if name in ("bm25", "dense"):
            continue
        ok, gain = True, 0.0
        for table in results.values():
            for metric in ("recall@1", "recall@5"):
                best = max(table["bm25"][metric], table["dense"][metric])
                ok &= table[name][metric] >= best
                gain += table[name][metric] - best
        if ok and gain > 0:
            winners.append(name)
    return winners


@click.command("tune")
@click.option("--dataset", "datasets", multiple=True, default=["golden"], show_default=True)
@click.option("--chunker", type=click.Choice(CHUNKERS), default="structure", show_default=True)
@click.option("--limit", type=int, default=None, help="Only the first N questions of each set.")
def tune_command(datasets: tuple[str, ...], chunker: str, limit: int | None) -> None:
    """Sweep hybrid fusions over dev sets and print which beat both single methods on every set."""
    settings = Settings.load()
    embedder = Embedder(settings)
    configs = default_configs()
    results = {}
    for name in datasets:
        dataset = load_dataset(name, limit=limit)
        results[name] = sweep(dataset, settings, configs, embedder, chunker)
    columns = ("recall@1", "recall@3", "recall@5", "recall@10", "mrr@10")
    for name, table in results.items():
        click.echo(f"\n{name} ({chunker})\n{'config':<18}" + "".join(f"{c:>10}" for c in columns))
        for config, metrics in table.items():
            click.echo(f"{config:<18}" + "".join(f"{metrics[c]:>10.3f}" for c in columns))
    click.echo(f"\nearned on every set: {', '.join(earned(results)) or 'none'}")
