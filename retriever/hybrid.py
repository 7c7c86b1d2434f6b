"""Score fusion: how BM25 and dense scores of the same candidates combine into one ranking.

Each fusion is a function from the two score maps (chunk row -> score) to fused scores. They are named
in ``FUSIONS`` and chosen from settings in one place (``fuse``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Scores = dict[int, float]


@dataclass(frozen=True)
class FusionParams:
    """Weights found on the dev sets (see ``eval/`` and the README's retrieval table)."""

    dense_weight: float = 0.7
    rrf_k: int = 60


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


FUSIONS: dict[str, Callable[[Scores, Scores, FusionParams], Scores]] = {"rrf": rrf, "minmax": minmax}


def fuse(method: str, bm25: Scores, dense: Scores, params: FusionParams) -> Scores:
    try:
        return FUSIONS[method](bm25, dense, params)
    except KeyError:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {method!r}") from None
