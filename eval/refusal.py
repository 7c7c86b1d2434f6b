"""Refusal: calibrate the answer threshold on a question set's negatives, and measure it.

A question is refused when it names a term of art the knowledge base never mentions
(``zhiwen.retriever.topics``), when no retrieved passage is in its scope (year, issuing body), or when
the best in-scope passage's relevance is below the threshold (``zhiwen.retriever.answer.answerable``).
The calibration sweeps the threshold over the relevances seen and keeps the one refusing the most
negatives among those that refuse at most ``max_false_refusals`` of the answerable ones.

    python -m zhiwen.eval.refusal --index DIR    share of off-topic questions (external sets) refused
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import click
from tqdm import tqdm
from zhiwen.retriever import Retriever
from zhiwen.retriever.answer import Scope, answerable, relevance

from .datasets import Dataset, default_evaldata


@dataclass(frozen=True)
class Calibration:
    threshold: float
    precision: float
    recall: float
    false_refusals: int
    negatives: int
    positives: int


def question_features(dataset: Dataset, retriever: Retriever, k: int = 5) -> list[tuple[bool, float]]:
    """Per question: (is negative, relevance of the best in-scope hit).

    The relevance is -1 when no hit is in scope, and -2 when the question names a term the knowledge
    base never mentions: both refuse at any threshold.
    """
    features = []
    for query in tqdm(dataset.queries, desc="refusal", file=sys.stderr, disable=not sys.stderr.isatty()):
        if retriever.uncovered_topics(query.query):
            features.append((query.negative, -2.0))
            continue
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
    hits = retriever.search(question, k=k)
    return not answerable(question, hits, threshold, retriever.uncovered_topics(question))


def off_topic_questions(per_set: int, seed: int = 0) -> dict[str, list[str]]:
    """Questions of the external dev sets, sampled: asked of ``corpus/`` they are off its topic.

    Government Q&A (MSGABench: residence permits, social insurance …) and 2020 policy questions (NCPQA)
    are outside the regulator reports; a few NCPQA questions touch financial support and may be partly
    answerable, so the share refused is a lower bound on what refusing them right would mean.
    """
    root = default_evaldata()
    sets = {"msgabench": "msgabench_gov_qa/queries.dev.jsonl", "ncpqa": "ncpqa_gov_policy/queries.dev.jsonl"}
    found = {}
    for name, rel in sets.items():
        path = root / rel
        if path.exists():
            rows = [
                json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
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
            if retriever.uncovered_topics(question):
                rules["topic"] += 1
                continue
            scope = Scope.of(question)
            in_scope = [h for h in retriever.search(question, k=5) if scope.admits(h)]
            if not in_scope:
                rules["scope"] += 1
            elif max(relevance(h) for h in in_scope) < settings.refusal_threshold:
                rules["threshold"] += 1
        refused = sum(rules.values())
        click.echo(
            f"{name}: {refused} of {len(questions)} off-topic questions refused ({refused / len(questions):.0%}; "
            + ", ".join(f"{rule} {n}" for rule, n in rules.items())
            + f"; threshold {settings.refusal_threshold})"
        )


if __name__ == "__main__":
    main()
