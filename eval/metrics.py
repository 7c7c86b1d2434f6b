"""Retrieval metrics: from ranked chunks to recall@k, MRR@10 and nDCG@10, computed by ranx.

Why ranx: it is the standard, tested implementation of these metrics (numba-compiled, so fast) and it
reads and writes TREC qrels and run files, so our runs can be checked with ``trec_eval`` or compared
across systems with its statistical tests instead of trusting a home-grown formula.

ranx scores a ranked list of ids against relevant ids, so a run of chunks is first turned into a run of
relevance units (``ranked_units``):

- span and answer level: each chunk, in rank order, delivers the gold units it hits that no higher chunk
  hit yet, else it stands for itself (a miss). A chunk hitting two spans delivers both.
- document level: the documents of the retrieved chunks in order of first appearance (duplicates
  dropped), each relevant when it is a gold document. The documents come from the top k chunks, so a
  question may rank fewer than k documents.

Cut-offs count chunks (documents at document level): recall@k is ranx ``recall`` over what the top k
positions delivered, so a chunk delivering two spans at rank 5 counts both for recall@5. MRR@10 is the
reciprocal rank of the first hit. nDCG@10 (binary gains) is computed over the units the top 10 positions
delivered, a chunk's extra units taking the following places; it therefore equals the usual nDCG@10
when no chunk hits two units. Negative questions (no gold) are not scored here: see ``refusal.score_threshold``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from .datasets import Gold, Query, chunk_hits

CUTOFFS = (1, 3, 5, 10)
Positions = list[list[str]]


class RankedChunk(Protocol):
    """What scoring needs of a retrieved chunk; ``zhiwen.retriever.Hit`` has these attributes."""

    chunk_id: str
    doc_id: str
    start: int
    end: int


def ranked_units(hits: Sequence[RankedChunk], gold: Sequence[Gold], level: str) -> Positions:
    """The relevance units each rank position delivers (see the module docstring)."""
    if level == "document":
        seen: dict[str, None] = {}
        for hit in hits:
            seen.setdefault(hit.doc_id)
        return [[doc_id] for doc_id in seen]
    found: set[str] = set()
    positions: Positions = []
    for hit in hits:
        new = [
            g.unit_id
            for g in gold
            if g.unit_id not in found and chunk_hits(hit.doc_id, hit.start, hit.end, g)
        ]
        found.update(new)
        positions.append(new or [f"chunk:{hit.chunk_id}"])
    return positions


def first_ranks(positions: Positions, gold: Sequence[Gold]) -> dict[str, int | None]:
    """The 1-based position at which each gold unit was delivered, ``None`` when never."""
    where = {unit: rank for rank, units in enumerate(positions, 1) for unit in units}
    return {g.unit_id: where.get(g.unit_id) for g in gold}


def to_run(positions: Mapping[str, Positions], depth: int | None = None) -> dict[str, dict[str, float]]:
    """A ranx/TREC run: each query's units from its top ``depth`` positions, scored by place (1, 1/2, ...)."""
    run: dict[str, dict[str, float]] = {}
    for qid, ranked in positions.items():
        units = [u for units in ranked[:depth] for u in units]
        if units:
            run[qid] = {unit: 1.0 / place for place, unit in enumerate(units, 1)}
    return run


def to_qrels(queries: Iterable[Query], level: str) -> dict[str, dict[str, int]]:
    """ranx/TREC qrels: every gold unit of ``level`` is relevant (1); questions without gold are left out."""
    return {q.qid: {g.unit_id: 1 for g in q.gold[level]} for q in queries if q.gold.get(level)}


def evaluate(
    qrels: Mapping[str, Mapping[str, int]], positions: Mapping[str, Positions], k: int = 10
) -> dict[str, float]:
    """recall@1/3/5/10 (cut-offs up to ``k``), MRR@k and nDCG@k, averaged over the questions in ``qrels``."""
    scores = {f"recall@{c}": _mean(qrels, to_run(positions, c), "recall") for c in CUTOFFS if c <= k}
    top = to_run(positions, k)
    scores[f"mrr@{k}"] = _mean(qrels, top, "mrr")
    scores[f"ndcg@{k}"] = _mean(qrels, top, "ndcg")
    return scores


def recall_curve(
    qrels: Mapping[str, Mapping[str, int]], positions: Mapping[str, Positions], k: int
) -> list[float]:
    """recall@1 .. recall@k, for plotting."""
    return [_mean(qrels, to_run(positions, depth), "recall") for depth in range(1, k + 1)]


def _mean(qrels: Mapping[str, Mapping[str, int]], run: dict[str, dict[str, float]], metric: str) -> float:
    """ranx's mean of ``metric``; ranx is imported here because it takes seconds to load."""
    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    # make_comparable scores a question with nothing retrieved as 0 instead of failing.
    qrels = Qrels({qid: dict(units) for qid, units in qrels.items()})
    return float(ranx_evaluate(qrels, Run(run), metric, make_comparable=True))
