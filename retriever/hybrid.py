"""Score fusion: how BM25 and dense scores of the same candidates combine into one ranking.

Each fusion is a function from the two score maps (chunk row -> score) to fused scores. They are named
in ``FUSIONS`` and chosen from settings in one place (``fuse``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

Scores = dict[int, float]


@dataclass(frozen=True)
class FusionParams:
    """Fusion parameters; the product's defaults come from settings (``fusion``, ``dense_weight``)."""

    dense_weight: float = 0.6
    rrf_k: int = 60
    confident_dense_weight: float = 0.5  # adaptive: dense weight when BM25's best hit clearly leads
    confidence_gap: float = 0.2  # adaptive: BM25 leads when (top1 - top2) / top1 reaches this
    bm25_coverage: float = 0.0  # coverage: share of the question's words in BM25's best passage (per query)
    coverage_threshold: float = 0.5  # coverage: at or above it the question uses the reports' own words
    covered_dense_weight: float = 0.1  # coverage: the dense weight then
    verbatim: frozenset[int] = frozenset()  # verbatim: candidates repeating the question (per query)
    verbatim_bonus: float = 1.5  # verbatim: added to their z-score sum (chosen on golden + MSGABench, int8)


def rrf(bm25: Scores, dense: Scores, params: FusionParams) -> Scores:
    """Weighted reciprocal-rank fusion."""
    fused: Scores = {}
    for weight, scores in ((1 - params.dense_weight, bm25), (params.dense_weight, dense)):
        for rank, row in enumerate(sorted(scores, key=scores.__getitem__, reverse=True)):
            fused[row] = fused.get(row, 0.0) + weight / (params.rrf_k + rank + 1)
    return fused


def _minmax(scores: Scores, rows: list[int]) -> np.ndarray:
    values = np.array([scores.get(r, np.nan) for r in rows], dtype=np.float64)
    present = values[~np.isnan(values)]
    if present.size == 0:
        return np.zeros(len(rows))
    low, high = present.min(), present.max()
    scaled = (values - low) / (high - low) if high > low else np.where(np.isnan(values), 0.0, 1.0)
    return np.nan_to_num(scaled, nan=0.0)


def minmax(bm25: Scores, dense: Scores, params: FusionParams) -> Scores:
    """Weighted sum of per-query min-max normalised scores; a missing score counts as the minimum."""
    rows = sorted(set(bm25) | set(dense))
    fused = (1 - params.dense_weight) * _minmax(bm25, rows) + params.dense_weight * _minmax(dense, rows)
    return dict(zip(rows, fused.tolist()))


def _zscore(scores: Scores, rows: list[int]) -> np.ndarray:
    values = np.array([scores.get(r, np.nan) for r in rows], dtype=np.float64)
    present = values[~np.isnan(values)]
    if present.size < 2 or present.std() == 0:
        return np.where(np.isnan(values), 0.0, 1.0)
    standard = (values - present.mean()) / present.std()
    return np.nan_to_num(standard, nan=float((present.min() - present.mean()) / present.std()))


def zscore(bm25: Scores, dense: Scores, params: FusionParams) -> Scores:
    """Weighted sum of per-query standardised scores; a missing score counts as that signal's minimum."""
    rows = sorted(set(bm25) | set(dense))
    fused = (1 - params.dense_weight) * _zscore(bm25, rows) + params.dense_weight * _zscore(dense, rows)
    return dict(zip(rows, fused.tolist()))


def bm25_confidence(bm25: Scores) -> float:
    """How far BM25's best candidate leads the second, relative to its score (0 when it does not)."""
    top = sorted(bm25.values(), reverse=True)[:2]
    if not top or top[0] <= 0:
        return 0.0
    return 1.0 if len(top) == 1 else (top[0] - top[1]) / top[0]


def adaptive(bm25: Scores, dense: Scores, params: FusionParams) -> Scores:
    """Min-max fusion with a query-dependent weight.

    Names, figures and rare terms make one passage stand out in BM25; then BM25 gets more say
    (``confident_dense_weight``). Paraphrased questions give flat BM25 scores; then dense search leads
    (``dense_weight``).
    """
    confident = bm25_confidence(bm25) >= params.confidence_gap
    weight = params.confident_dense_weight if confident else params.dense_weight
    return minmax(bm25, dense, replace(params, dense_weight=weight))


def coverage(bm25: Scores, dense: Scores, params: FusionParams) -> Scores:
    """Z-score fusion with a weight chosen by how much of the question BM25's best passage contains.

    A question in the reports' own words ("新市民金融服务有哪些举措？") finds most of its words in one
    passage, and BM25 ranks it best: dense search then only breaks ties (``covered_dense_weight``). A
    paraphrase ("刚进城安家的人能申请什么专门的贷款？") shares few words with any passage: dense search
    leads (``dense_weight``). The retriever measures the coverage and passes it in ``params``.
    """
    covered = params.bm25_coverage >= params.coverage_threshold
    weight = params.covered_dense_weight if covered else params.dense_weight
    return zscore(bm25, dense, replace(params, dense_weight=weight))


def verbatim(bm25: Scores, dense: Scores, params: FusionParams) -> Scores:
    """Z-score fusion, plus ``verbatim_bonus`` for each passage that repeats the question verbatim.

    A question in the reports' own words copies a long run of its passage ("高标准高质量推动主题教育…"),
    and BM25 finds it; z-score fusion can still let dense search rank a near neighbour above it. A bonus
    on the passages that repeat half the question (``Retriever.verbatim_rows`` decides) restores them,
    while a paraphrase, or a citizen's long question that copies only a policy's name, gets none and
    ranks as before. Measured on golden and MSGABench (see the README's retrieval table).
    """
    fused = zscore(bm25, dense, params)
    return {
        row: score + (params.verbatim_bonus if row in params.verbatim else 0.0)
        for row, score in fused.items()
    }


FUSIONS: dict[str, Callable[[Scores, Scores, FusionParams], Scores]] = {
    "rrf": rrf,
    "minmax": minmax,
    "zscore": zscore,
    "adaptive": adaptive,
    "coverage": coverage,
    "verbatim": verbatim,
}


def fuse(method: str, bm25: Scores, dense: Scores, params: FusionParams) -> Scores:
    try:
        return FUSIONS[method](bm25, dense, params)
    except KeyError:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {method!r}") from None
