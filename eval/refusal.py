"""Refusal: calibrate the answer threshold on a question set's negatives, and measure it.

A question is refused when it names a term of art the knowledge base never mentions
(``zhiwen.retriever.topics``), when no retrieved passage is in its scope (year, issuing body), or when
the best in-scope passage's relevance is below the threshold (``zhiwen.retriever.answer.answerable``).
The calibration sweeps the threshold over the relevances seen and keeps the one refusing the most
negatives among those that refuse at most ``max_false_refusals`` of the answerable ones.

    python -m zhiwen.eval.refusal --index DIR    share of off-topic questions (external sets) refused
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import click
from tqdm import tqdm
from zhiwen.retriever import Retriever
from zhiwen.retriever.answer import OUT_OF_SCOPE, UNKNOWN_TERM, refusal_signal, refused_at

from .datasets import EXTERNAL, Dataset, _read_jsonl, default_evaldata

RULES = {UNKNOWN_TERM: "topic", OUT_OF_SCOPE: "scope"}  # the rule behind each sentinel signal


@dataclass(frozen=True)
class Calibration:
    threshold: float
    precision: float
    recall: float
    false_refusals: int
    negatives: int
    positives: int


def question_signal(question: str, retriever: Retriever, k: int = 5) -> float:
    """The ``refusal_signal`` the answer path computes for ``question``."""
    return refusal_signal(question, retriever.search(question, k=k), retriever.uncovered_topics(question))


def question_features(dataset: Dataset, retriever: Retriever, k: int = 5) -> list[tuple[bool, float]]:
    """Per question: (is negative, its ``refusal_signal``: the best in-scope relevance or a sentinel)."""
    queries = tqdm(dataset.queries, desc="refusal", file=sys.stderr, disable=not sys.stderr.isatty())
    return [(query.negative, question_signal(query.query, retriever, k)) for query in queries]


def score_threshold(features: list[tuple[bool, float]], threshold: float) -> Calibration:
    negatives = sum(1 for negative, _ in features if negative)
    refused = [(negative, refused_at(signal, threshold)) for negative, signal in features]
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


def calibrate(features: list[tuple[bool, float]], max_false_refusals: float = 0.02) -> Calibration:
    """The threshold refusing the most negatives among those refusing at most that share of answerable ones.

    A false-refusal budget rather than F1: staff asking answerable questions must rarely be turned
    away. Among thresholds refusing as many negatives, the highest wins: the question set cannot tell
    them apart, and the stricter one also refuses off-topic questions the set rarely contains.
    """
    seen = sorted({best for _, best in features if best > 0})
    # midway between neighbouring relevances: the widest margin on both sides
    candidates = [0.0, *((a + b) / 2 for a, b in pairwise(seen)), *seen[-1:]]
    floor = score_threshold(features, 0.0)  # the scope and topic rules alone: no threshold refuses less
    budget = max(floor.false_refusals, max_false_refusals * max(1, floor.positives))
    allowed = [
        cal for cal in (score_threshold(features, t) for t in candidates) if cal.false_refusals <= budget
    ]
    return max(allowed, key=lambda cal: (cal.recall, cal.threshold))


def refuses(question: str, retriever: Retriever, threshold: float, k: int = 5) -> bool:
    """Whether the answer path refuses ``question`` (the same rule ``ask`` applies)."""
    return refused_at(question_signal(question, retriever, k), threshold)


def off_topic_questions(per_set: int, seed: int = 0) -> dict[str, list[str]]:
    """Questions of the external dev sets, sampled: asked of ``corpus/`` they are off its topic.

    Government Q&A (MSGABench: residence permits, social insurance …) and 2020 policy questions (NCPQA)
    are outside the regulator reports; a few NCPQA questions touch financial support and may be partly
    answerable, so the share refused is a lower bound on what refusing them right would mean.
    """
    found = {}
    for name in ("msgabench", "ncpqa"):
        path = default_evaldata() / EXTERNAL[name][1]
        if path.exists():
            rows = [row for _, row in _read_jsonl(path)]
            found[name] = [r["query"] for r in random.Random(seed).sample(rows, min(per_set, len(rows)))]
    return found


@click.command()
@click.option(
    "--index",
    "index_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Index of corpus/ (default: the configured index).",
)
@click.option("--per-set", type=click.IntRange(1), default=150, show_default=True)
def main(index_dir: Path | None, per_set: int) -> None:
    """Share of off-topic questions (external dev sets) the answer path refuses, and by which rule."""
    from zhiwen.ingest.settings import Settings

    settings = Settings.load(index_dir=index_dir)
    retriever = Retriever(settings)
    sets = off_topic_questions(per_set)
    if not sets:
        raise click.ClickException(f"{default_evaldata()}: evaluation data not found; set ZHIWEN_EVALDATA")
    for name, questions in sets.items():
        rules = {"topic": 0, "scope": 0, "threshold": 0}
        for question in questions:
            signal = question_signal(question, retriever)
            if refused_at(signal, settings.refusal_threshold):
                rules[RULES.get(signal, "threshold")] += 1
        refused = sum(rules.values())
        click.echo(
            f"{name}: {refused} of {len(questions)} off-topic questions refused ({refused / len(questions):.0%}; "
            + ", ".join(f"{rule} {n}" for rule, n in rules.items())
            + f"; threshold {settings.refusal_threshold})"
        )


if __name__ == "__main__":
    main()
