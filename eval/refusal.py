"""Refusal: calibrate the answer threshold on a question set's negatives, and measure it.

A question is refused when no retrieved passage is in its scope (year, issuing body) or the best
in-scope passage's relevance is below the threshold (``zhiwen.retriever.answer.answerable``). The
calibration sweeps the threshold over the relevances seen and keeps the one with the best F1 of
refusing the negatives, among those that refuse at most ``max_false_refusals`` of the answerable ones.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from tqdm import tqdm
from zhiwen.retriever import Retriever
from zhiwen.retriever.answer import Scope, answerable, relevance

from .datasets import Dataset


@dataclass(frozen=True)
class Calibration:
    threshold: float
    precision: float
    recall: float
    false_refusals: int
    negatives: int
    positives: int


def question_features(dataset: Dataset, retriever: Retriever, k: int = 5) -> list[tuple[bool, float]]:
    """Per question: (is negative, relevance of the best in-scope hit; -1 when none is in scope)."""
    features = []
    for query in tqdm(dataset.queries, desc="refusal", file=sys.stderr, disable=not sys.stderr.isatty()):
        scope = Scope.of(query.query)
        in_scope = [h for h in retriever.search(query.query, k=k) if scope.admits(h)]
        features.append((query.negative, max((relevance(h) for h in in_scope), default=-1.0)))
    return features


def score_threshold(features: list[tuple[bool, float]], threshold: float) -> Calibration:
    negatives = sum(1 for negative, _ in features if negative)
    refused = [(negative, best < threshold) for negative, best in features]
    tp = sum(1 for negative, r in refused if negative and r)
    fp = sum(1 for negative, r in refused if not negative and r)
    return Calibration(
        threshold=threshold,
        precision=tp / (tp + fp) if tp + fp else 0.0,
        recall=tp / negatives if negatives else 0.0,
        false_refusals=fp,
        negatives=negatives,
        positives=len(features) - negatives,
    )


def calibrate(features: list[tuple[bool, float]], max_false_refusals: float = 0.1) -> Calibration:
    """The threshold with the best refusal F1 that refuses at most that share of answerable questions."""
    candidates = sorted({round(best, 3) + 0.0005 for _, best in features if best > 0} | {0.0})
    best: Calibration | None = None
    for threshold in candidates:
        cal = score_threshold(features, threshold)
        if cal.false_refusals > max_false_refusals * max(1, cal.positives):
            continue
        f1 = (
            2 * cal.precision * cal.recall / (cal.precision + cal.recall)
            if cal.precision + cal.recall
            else 0.0
        )
        best_f1 = (
            2 * best.precision * best.recall / (best.precision + best.recall)
            if best and best.precision + best.recall
            else -1.0
        )
        if f1 > best_f1:
            best = cal
    assert best is not None  # threshold 0.0 refuses only out-of-scope questions and always qualifies
    return best


def refuses(question: str, retriever: Retriever, threshold: float, k: int = 5) -> bool:
    """Whether the answer path refuses ``question`` (the same rule ``ask`` applies)."""
    return not answerable(question, retriever.search(question, k=k), threshold)
