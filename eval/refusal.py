"""Refusal: calibrate the answer threshold on a question set's negatives, and measure it.

A question is refused when it names a term of art the knowledge base never mentions
(``zhiwen.retriever.topics``), when its subject word is nowhere in the knowledge base
(``zhiwen.retriever.answerability``: outright for a Latin word, else by a higher bar), when no retrieved
passage is in its scope (year, issuing body), when the best in-scope passage's relevance is below the
threshold, or when it asks for a date or a figure the passages about its subject do not give
(``zhiwen.retriever.answer.Evidence``). ``refusal_lines`` prints the table per rule and per
question category, with the hardest misses each way. With an LLM, ``judge_lines`` asks the LLM judge
about every question the offline rules let through and prints the table again (``zhiwen eval --judge``).
The calibration sweeps the threshold over the relevances seen and keeps the one refusing the most
negatives among those that refuse at most ``max_false_refusals`` of the answerable ones.

    zhiwen eval refusal --index DIR    share of off-topic questions (external sets) refused
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import click
from tqdm import tqdm
from zhiwen.core.options import index_option
from zhiwen.retriever import Retriever
from zhiwen.retriever.answer import Evidence, answer_resolved, evidence, judged
from zhiwen.retriever.followup import standalone
from zhiwen.retriever.judge import Verdict

from .datasets import EXTERNAL, Dataset, _read_jsonl, default_evaldata

if TYPE_CHECKING:  # langchain_core (and pydantic) load only when an LLM is used
    from langchain_core.language_models.chat_models import BaseChatModel

RULES = (
    "topic",
    "subject",
    "scope",
    "everyday",
    "relevance",
    "detail",
    "judge",
)  # the refusal rules, in the order they are checked (``judge``: the LLM judge, with ``--judge``)
Features = list[tuple[bool, Evidence]]  # per question: (is negative, what refusal rests on)


@dataclass(frozen=True)
class Calibration:
    threshold: float
    precision: float
    recall: float
    false_refusals: int
    negatives: int
    positives: int


def question_evidence(question: str, retriever: Retriever, k: int = 5) -> Evidence:
    """The ``Evidence`` the answer path weighs for ``question``."""
    hits = retriever.search(question, k=k)
    return evidence(question, hits, retriever.gaps(question))


def question_features(dataset: Dataset, retriever: Retriever, k: int = 5) -> Features:
    """Per question: (is negative, its ``Evidence``)."""
    queries = tqdm(dataset.queries, desc="refusal", file=sys.stderr, disable=not sys.stderr.isatty())
    return [(query.negative, question_evidence(query.query, retriever, k)) for query in queries]


def score_threshold(features: Features, threshold: float) -> Calibration:
    negatives = sum(1 for negative, _ in features if negative)
    refused = [(negative, found.refusal(threshold) is not None) for negative, found in features]
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


def calibrate(features: Features, max_false_refusals: float = 0.02) -> Calibration:
    """The threshold refusing the most negatives among those refusing at most that share of answerable ones.

    A false-refusal budget rather than F1: staff asking answerable questions must rarely be turned
    away. Among thresholds refusing as many negatives, the highest wins: the question set cannot tell
    them apart, and the stricter one also refuses off-topic questions the set rarely contains.
    """
    seen = sorted({found.relevance for _, found in features if found.ruled is None and found.relevance > 0})
    # midway between neighbouring relevances: the widest margin on both sides
    candidates = [0.0, *((a + b) / 2 for a, b in pairwise(seen)), *seen[-1:]]
    floor = score_threshold(features, 0.0)  # the scope and topic rules alone: no threshold refuses less
    budget = max(floor.false_refusals, max_false_refusals * max(1, floor.positives))
    allowed = [
        cal for cal in (score_threshold(features, t) for t in candidates) if cal.false_refusals <= budget
    ]
    return max(allowed, key=lambda cal: (cal.recall, cal.threshold))


def refusal_lines(dataset: Dataset, features: Features, threshold: float, hardest: int = 10) -> list[str]:
    """The refusal table of one set at ``threshold``: per rule and per question category, then the
    ``hardest`` misses each way (negatives answered, most relevant first; answerable ones refused)."""
    decided = [
        (q, found, found.refusal(threshold)) for q, (_, found) in zip(dataset.queries, features, strict=True)
    ]
    lines = ["refusals by rule at threshold " + f"{threshold:.4f} (negatives / answerable):"]
    asked = any(found.verdict is not None for _, found in features)
    for rule in RULES if asked else RULES[:-1]:
        negatives = sum(1 for q, _, r in decided if r and r.rule == rule and q.negative)
        answerable = sum(1 for q, _, r in decided if r and r.rule == rule and not q.negative)
        lines.append(f"  {rule:<10} {negatives:>4} / {answerable}")
    categories: dict[str, list[bool]] = {}
    for q, _, r in decided:
        category = q.meta.get("category") or ("negative" if q.negative else "answerable")
        categories.setdefault(category, []).append(r is not None)
    if asked:
        for verdict, meaning in (("partly", "partly (answered with a warning)"), ("unclear", "no verdict")):
            negatives = sum(1 for q, found, _ in decided if found.verdict == verdict and q.negative)
            answerable = sum(1 for q, found, _ in decided if found.verdict == verdict and not q.negative)
            lines.append(f"  judge said {meaning}: {negatives} / {answerable}")
    lines.append("refused by question category:")
    lines += [f"  {c:<12} {sum(v):>4} of {len(v):<4} ({sum(v) / len(v):.0%})" for c, v in categories.items()]
    missed = sorted((q for q in decided if q[0].negative and not q[2]), key=lambda d: -d[1].relevance)
    if missed:
        lines.append(f"hardest negatives answered (of {len(missed)}):")
        lines += [
            f"  {q.qid} {found.relevance:.3f}{_said(found)} {q.query}" for q, found, _ in missed[:hardest]
        ]
    wrong = sorted((q for q in decided if not q[0].negative and q[2]), key=lambda d: -d[1].relevance)
    if wrong:
        lines.append(f"hardest answerable questions refused (of {len(wrong)}):")
        lines += [
            f"  {q.qid} {found.relevance:.3f} {r.rule}:{r.detail} {q.query}"
            for q, found, r in wrong[:hardest]
            if r
        ]
    return lines


def _said(found: Evidence) -> str:
    """The judge's verdict on an answered question, when it was asked: " [partly]"."""
    return f" [{found.verdict}]" if found.verdict is not None else ""


def question_verdict(question: str, retriever: Retriever, model: BaseChatModel, k: int = 5) -> Verdict | None:
    """What the LLM judge says of ``question``, shown the passages ``ask`` would show it (the offline
    answer's cited hits, ``answer.judged``); None when the offline answer path refuses it."""
    with retriever.pinned():
        answer, hits = answer_resolved(standalone(question), retriever, k)
    return None if answer.refused else judged(question, answer, hits, model)[0]


def judge_features(
    dataset: Dataset,
    features: Features,
    retriever: Retriever,
    model: BaseChatModel,
    threshold: float,
    k: int = 5,
    progress: bool = True,
) -> tuple[Features, float]:
    """``features`` with the judge's verdict on every question the offline rules let through at
    ``threshold`` (the others are never asked), and the seconds spent per judged question."""
    pairs = list(zip(dataset.queries, features, strict=True))
    through = [i for i, (_, (_, found)) in enumerate(pairs) if found.refusal(threshold) is None]
    judged_features = list(features)
    started = time.perf_counter()
    for i in tqdm(through, desc="judge", file=sys.stderr, disable=not progress):
        query, (negative, found) = pairs[i]
        judged_features[i] = (
            negative,
            replace(found, verdict=question_verdict(query.query, retriever, model, k)),
        )
    seconds = (time.perf_counter() - started) / max(1, len(through))
    return judged_features, seconds


def verdict_counts(features: Features) -> dict[str, dict[str, int]]:
    """How many negatives and answerable questions got each verdict of the judge (not asked: left out)."""
    return {
        kind: {
            verdict: sum(1 for negative, found in features if found.verdict == verdict and negative == wanted)
            for verdict in ("yes", "partly", "no", "unclear")
        }
        for kind, wanted in (("negatives", True), ("answerable", False))
    }


def judge_lines(
    dataset: Dataset, features: Features, judged_features: Features, threshold: float, seconds: float
) -> list[str]:
    """The refusal table twice, offline rules alone and offline rules + the LLM judge (``--judge``;
    ``judged_features`` from ``judge_features``), then both in one line each, how many questions were
    judged and the ``seconds`` each took."""
    lines = ["offline rules alone:", *refusal_lines(dataset, features, threshold)]
    lines += ["offline rules + LLM judge:", *refusal_lines(dataset, judged_features, threshold)]
    for label, found in (("offline", features), ("offline + judge", judged_features)):
        refused = [(negative, f.refusal(threshold) is not None) for negative, f in found]
        negatives = sum(1 for negative, _ in refused if negative)
        caught = sum(1 for negative, r in refused if negative and r)
        wrong = sum(1 for negative, r in refused if not negative and r)
        positives = len(refused) - negatives
        lines.append(
            f"{label:<16} negatives refused {caught} of {negatives}, answerable refused {wrong} of "
            f"{positives} ({wrong / max(1, positives):.1%})"
        )
    asked = sum(1 for _, found in judged_features if found.verdict is not None)
    lines.append(
        f"judged {asked} of {len(features)} questions (the offline rules refused the rest), "
        f"{seconds:.1f} s per judged question"
    )
    return lines


def refuses(question: str, retriever: Retriever, threshold: float, k: int = 5) -> bool:
    """Whether the answer path refuses ``question`` (the same rule ``ask`` applies)."""
    return question_evidence(question, retriever, k).refusal(threshold) is not None


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


@click.command("refusal")
@index_option
@click.option("--per-set", type=click.IntRange(1), default=150, show_default=True)
def refusal_command(index_dir: Path | None, per_set: int) -> None:
    """Share of off-topic questions (external dev sets) the answer path refuses, and by which rule."""
    from zhiwen.core.settings import Settings

    settings = Settings.load(index_dir=index_dir)
    retriever = Retriever(settings)
    sets = off_topic_questions(per_set)
    if not sets:
        raise click.ClickException(f"{default_evaldata()}: evaluation data not found; set ZHIWEN_EVALDATA")
    for name, questions in sets.items():
        rules = dict.fromkeys(RULES, 0)
        for question in questions:
            refusal = question_evidence(question, retriever).refusal(settings.refusal_threshold)
            if refusal:
                rules[refusal.rule] += 1
        refused = sum(rules.values())
        click.echo(
            f"{name}: {refused} of {len(questions)} off-topic questions refused ({refused / len(questions):.0%}; "
            + ", ".join(f"{rule} {n}" for rule, n in rules.items())
            + f"; threshold {settings.refusal_threshold})"
        )
