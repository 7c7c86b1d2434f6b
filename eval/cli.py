"""``zhiwen eval``: parse flags, call ``run_eval``, print the table (or JSON), write files on request."""

from __future__ import annotations

import json
from pathlib import Path

import click
from zhiwen.ingest.settings import Settings, SettingsError
from zhiwen.ingest.store import IndexStateError

from .datasets import DATASETS, DatasetError, load_common, load_dataset


def _names(allowed: tuple[str, ...]):
    """A click callback turning ``a,b`` into a checked tuple of names."""

    def parse(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in value.split(",") if n.strip())
        unknown = [n for n in names if n not in allowed]
        if unknown or not names:
            raise click.BadParameter(f"use a comma list of {', '.join(allowed)}; got {value!r}")
        return names

    return parse


@click.command("eval")
@click.option(
    "--dataset",
    type=click.Choice(DATASETS),
    default="golden",
    show_default=True,
    help="Named set: our golden spans, the held-out set (never tune on it), or an external dev set from $ZHIWEN_EVALDATA.",
)
@click.option(
    "--corpus",
    "corpus_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Any set in the common format: corpus.jsonl[.gz] (use with --queries).",
)
@click.option(
    "--queries",
    "queries_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Questions in the common format (use with --corpus).",
)
@click.option(
    "--strategies",
    default="bm25,dense,hybrid",
    show_default=True,
    callback=_names(("bm25", "dense", "hybrid")),
    help="Comma list of search strategies.",
)
@click.option(
    "--chunkers",
    default="structure,paragraph,window",
    show_default=True,
    callback=_names(("structure", "paragraph", "window")),
    help="Comma list; one index each.",
)
@click.option(
    "--k",
    "k",
    type=click.IntRange(1, 100),
    default=10,
    show_default=True,
    help="Chunks searched per question.",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N questions.")
@click.option(
    "--max-docs",
    type=click.IntRange(0),
    default=None,
    help="Index only the gold documents plus distractors, N documents in all (0: whole corpus). "
    "Default: whole corpus, except stard: 15000 (the cited laws in full, then random articles).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the --max-docs distractors.")
@click.option(
    "--fusion",
    default=None,
    help="Hybrid fusion (see retriever/hybrid.py FUSIONS; default: the fusion setting).",
)
@click.option(
    "--dense-weight", type=click.FloatRange(0, 1), default=None, help="Weight of dense scores in fusion."
)
@click.option("--rrf-k", type=click.IntRange(1), default=None, help="k of reciprocal-rank fusion.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option(
    "--trec",
    "trec_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Write TREC qrels and one run file per chunker-strategy here.",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Write report.md with plots and per-question ranks here.",
)
@click.option(
    "--index-root",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the evaluation indexes live (default: <cache_dir>/eval).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="TOML config file (default: $ZHIWEN_CONFIG or ~/.config/zhiwen/config.toml).",
)
@click.option(
    "--calibrate-refusal",
    is_flag=True,
    help="Also find the refusal threshold that refuses the most negatives while refusing at most 2% of the answerable questions (set it as refusal_threshold).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def eval_command(
    dataset: str,
    corpus_path: Path | None,
    queries_path: Path | None,
    strategies: tuple[str, ...],
    chunkers: tuple[str, ...],
    k: int,
    limit: int | None,
    max_docs: int | None,
    seed: int,
    fusion: str | None,
    dense_weight: float | None,
    rrf_k: int | None,
    as_json: bool,
    trec_dir: Path | None,
    report_dir: Path | None,
    index_root: Path | None,
    config_file: Path | None,
    calibrate_refusal: bool,
    quiet: bool,
) -> None:
    """Measure retrieval: recall@1/3/5/10, MRR@10 and nDCG@10 of every strategy x chunker.

    \b
    Examples:
      zhiwen eval                                   golden set over corpus/, span level
      zhiwen eval --dataset ncpqa --limit 100       an external dev set (document and answer level)
      zhiwen eval --dataset holdout --calibrate-refusal  the held-out set: check, never tune
      zhiwen eval --dataset stard --max-docs 3000   statutes: gold articles, their laws, then random ones
      zhiwen eval --strategies hybrid --fusion rrf --dense-weight 0.5 --report out/
    """
    from zhiwen.retriever.hybrid import FUSIONS, FusionParams

    from .harness import run_eval
    from .report import metrics_table, to_json, write_report, write_trec

    if fusion is not None and fusion not in FUSIONS:
        raise click.BadParameter(f"use one of {', '.join(FUSIONS)}", param_hint="--fusion")
    if (corpus_path is None) != (queries_path is None):
        raise click.UsageError("--corpus and --queries go together")
    try:
        settings = Settings.load(config_file)
        fusion = fusion or settings.fusion
        params = FusionParams(
            dense_weight=settings.dense_weight if dense_weight is None else dense_weight,
            rrf_k=FusionParams().rrf_k if rrf_k is None else rrf_k,
        )
        if queries_path is not None:
            data = load_common(corpus_path, queries_path, limit=limit, max_docs=max_docs or None, seed=seed)
        else:
            data = load_dataset(dataset, limit=limit, max_docs=max_docs, seed=seed)
        result = run_eval(
            data, settings, strategies, chunkers, k, fusion, params, index_root=index_root, progress=not quiet
        )
    except (DatasetError, SettingsError, IndexStateError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    output = to_json(result)
    lines = [metrics_table(result)]
    from zhiwen.retriever import Retriever

    indexed = settings.replace(
        chunker=chunkers[0], index_dir=(index_root or settings.cache_dir / "eval") / data.name / chunkers[0]
    )
    if not result.negatives and settings.glossary:
        # Every question of a set without negatives is answerable: the topic check must let them through.
        retriever = Retriever(indexed)
        flagged = [(q.qid, retriever.uncovered_topics(q.query)) for q in data.queries]
        flagged = [(qid, terms) for qid, terms in flagged if terms]
        output["topic_check"] = {"questions": len(data.queries), "refused": dict(flagged)}
        lines.append(
            f"topic check: {len(flagged)} of {len(data.queries)} answerable questions name a glossary term "
            f"the corpus never mentions (they would be refused)"
            + ("; e.g. " + ", ".join(f"{qid} {'/'.join(t)}" for qid, t in flagged[:5]) if flagged else "")
        )
    if result.negatives:
        from .refusal import RULES, calibrate, question_features, score_threshold

        features = question_features(data, Retriever(indexed))
        measured = [score_threshold(features, settings.refusal_threshold)]
        if calibrate_refusal:
            measured.append(calibrate(features))
        output["refusal"] = [vars(m) for m in measured]
        for label, m in zip(("refusal", "calibrated"), measured, strict=False):
            lines.append(
                f"{label} (threshold {m.threshold:.4f}, {chunkers[0]}): precision {m.precision:.3f}, "
                f"recall {m.recall:.3f} ({m.negatives} negatives; {m.false_refusals} of {m.positives} "
                "answerable questions refused)"
            )
        by_rule = {
            rule: (
                sum(1 for neg, signal in features if neg and signal == value),
                sum(1 for neg, signal in features if not neg and signal == value),
            )
            for value, rule in RULES.items()
        }
        output["refusal_rules"] = {
            rule: {"negatives": n, "answerable": p} for rule, (n, p) in by_rule.items()
        }
        lines.append(
            "refused regardless of threshold: "
            + "; ".join(f"{rule} {n} negatives, {p} answerable" for rule, (n, p) in by_rule.items())
        )
    click.echo(json.dumps(output, ensure_ascii=False, indent=2) if as_json else "\n".join(lines))
    written = write_trec(result, trec_dir) if trec_dir else []
    if report_dir:
        written.append(write_report(result, report_dir))
    for path in written:
        click.echo(f"wrote {path}", err=as_json)
