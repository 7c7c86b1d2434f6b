"""``zhiwen eval``: measure from outside. Registered with the ``zhiwen`` command as a plugin (pyproject's
``zhiwen.commands`` entry points), so the command line never imports this package unless asked.

    zhiwen eval [run] …     recall@k, MRR, nDCG per strategy and chunker (``run`` is the default)
    zhiwen eval tune …      sweep hybrid fusions over dev sets
    zhiwen eval bench …     latency and throughput figures
    zhiwen eval refusal …   share of off-topic questions refused
    zhiwen eval load …      concurrent clients against a running API (``zhiwen api``)
    zhiwen eval answers …   answers scored on required and forbidden phrases (also ``zhiwen eval --answers``)
    zhiwen eval followups … follow-up questions answered with and without the conversation
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from zhiwen.core.index import IndexStateError
from zhiwen.core.options import config_option
from zhiwen.core.settings import Settings, SettingsError
from zhiwen.core.vocab import CHUNKERS, FUSIONS, STRATEGIES

from .datasets import DATASETS, DatasetError, load_common, load_dataset


class DefaultGroup(click.Group):
    """A group whose first argument, when it is not a subcommand, goes to ``default`` (``zhiwen eval --dataset x``)."""

    def __init__(self, *args, default: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.default = default

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


@click.group("eval", cls=DefaultGroup, default="run")
def eval_group() -> None:
    """Measure retrieval, refusal and speed from outside (default subcommand: run)."""


def _folder_option(flag: str, dest: str, help_text: str):
    """An option naming a folder (created when written to)."""
    return click.option(
        flag, dest, type=click.Path(path_type=Path, file_okay=False), default=None, help=help_text
    )


def _file_option(flag: str, dest: str, help_text: str):
    """An option naming an input file."""
    return click.option(
        flag, dest, type=click.Path(path_type=Path, dir_okay=False), default=None, help=help_text
    )


def _names_option(flag: str, allowed: tuple[str, ...], help_text: str):
    """An option taking a comma list of ``allowed`` names (all of them by default), as a checked tuple."""

    def parse(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in value.split(",") if n.strip())
        unknown = [n for n in names if n not in allowed]
        if unknown or not names:
            raise click.BadParameter(f"use a comma list of {', '.join(allowed)}; got {value!r}")
        return names

    return click.option(flag, default=",".join(allowed), show_default=True, callback=parse, help=help_text)


@eval_group.command("run")
@click.option(
    "--dataset",
    type=click.Choice(DATASETS),
    default="golden",
    show_default=True,
    help="Named set: our golden spans, the held-out set (never tune on it), or an external dev set from $ZHIWEN_EVALDATA.",
)
@_file_option(
    "--corpus", "corpus_path", "Any set in the common format: corpus.jsonl[.gz] (use with --queries)."
)
@_file_option("--queries", "queries_path", "Questions in the common format (use with --corpus).")
@_names_option("--strategies", STRATEGIES, "Comma list of search strategies.")
@_names_option("--chunkers", CHUNKERS, "Comma list; one index each.")
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
    help=f"Hybrid fusion: {', '.join(FUSIONS)} (default: the fusion setting).",
)
@click.option(
    "--dense-weight", type=click.FloatRange(0, 1), default=None, help="Weight of dense scores in fusion."
)
@click.option("--rrf-k", type=click.IntRange(1), default=None, help="k of reciprocal-rank fusion.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@_folder_option("--trec", "trec_dir", "Write TREC qrels and one run file per chunker-strategy here.")
@_folder_option("--report", "report_dir", "Write report.md with plots and per-question ranks here.")
@_folder_option(
    "--index-root", "index_root", "Where the evaluation indexes live (default: <cache_dir>/eval)."
)
@config_option
@click.option(
    "--calibrate-refusal",
    is_flag=True,
    help="Also find the refusal threshold that refuses the most negatives while refusing at most 2% of the answerable questions (set it as refusal_threshold).",
)
@click.option(
    "--judge",
    is_flag=True,
    help="Also ask the configured LLM (llm_base_url or llm_gguf) to judge every question the offline "
    "refusal rules let through, as `zhiwen ask --llm` does, and print the refusal table with and without it.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option(
    "--answers",
    "answers",
    is_flag=True,
    help="Score answers instead of retrieval: the same as `zhiwen eval answers` (uses --json, --report, "
    "--limit, --index-root, --config, --quiet).",
)
@click.pass_context
def run_command(
    ctx: click.Context,
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
    judge: bool,
    quiet: bool,
    answers: bool,
) -> None:
    """Measure retrieval: recall@1/3/5/10, MRR@10 and nDCG@10 of every strategy x chunker.

    \b
    Examples:
      zhiwen eval                                   golden set over corpus/, span level
      zhiwen eval --dataset ncpqa --limit 100       an external dev set (document and answer level)
      zhiwen eval --dataset holdout --calibrate-refusal  the held-out set: check, never tune
      zhiwen eval --dataset stard --max-docs 3000   statutes: gold articles, their laws, then random ones
      zhiwen eval --strategies hybrid --fusion rrf --dense-weight 0.5 --report out/
      zhiwen eval --dataset refusal4 --chunkers structure --strategies hybrid --judge   with the LLM judge
    """
    if answers:
        ctx.invoke(
            answers_command,
            as_json=as_json,
            report_dir=report_dir,
            limit=limit,
            english=False,
            index_root=index_root,
            config_file=config_file,
            quiet=quiet,
        )
        return
    from zhiwen.retriever.hybrid import FusionParams

    from .harness import run_eval
    from .report import metrics_table, to_json, write_report, write_trec

    if fusion is not None and fusion not in FUSIONS:
        raise click.BadParameter(f"use one of {', '.join(FUSIONS)}", param_hint="--fusion")
    if (corpus_path is None) != (queries_path is None):
        raise click.UsageError("--corpus and --queries go together")
    try:
        settings = Settings.load(config_file)
        model = _judge_model(settings) if judge else None
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
    from .refusal import (
        calibrate,
        judge_features,
        judge_lines,
        question_features,
        refusal_lines,
        score_threshold,
        verdict_counts,
    )

    # Every question of a set without negatives is answerable: each refusal there is a false one.
    retriever = Retriever(indexed)
    features = question_features(data, retriever)
    measured = [score_threshold(features, settings.refusal_threshold)]
    if calibrate_refusal and result.negatives:
        measured.append(calibrate(features))
    output["refusal"] = [vars(m) for m in measured]
    for label, m in zip(("refusal", "calibrated"), measured, strict=False):
        lines.append(
            f"{label} (threshold {m.threshold:.4f}, {chunkers[0]}): precision {m.precision:.3f}, "
            f"recall {m.recall:.3f} ({m.negatives} negatives; {m.false_refusals} of {m.positives} "
            f"answerable questions refused, {m.false_refusals / max(1, m.positives):.1%})"
        )
    if model is None:
        lines += refusal_lines(data, features, settings.refusal_threshold)
    else:
        judged, seconds = judge_features(
            data, features, retriever, model, settings.refusal_threshold, progress=not quiet
        )
        output["judge"] = {
            **vars(score_threshold(judged, settings.refusal_threshold)),
            "seconds_per_judged_question": seconds,
            "verdicts": verdict_counts(judged),
        }
        lines += judge_lines(data, features, judged, settings.refusal_threshold, seconds)
    click.echo(json.dumps(output, ensure_ascii=False, indent=2) if as_json else "\n".join(lines))
    written = write_trec(result, trec_dir) if trec_dir else []
    if report_dir:
        written.append(write_report(result, report_dir))
    for path in written:
        click.echo(f"wrote {path}", err=as_json)


def _judge_model(settings: Settings):
    """The chat model ``--judge`` asks, or a one-line error saying how to configure one."""
    from zhiwen.retriever.llm import LLMError, chat_model_from_settings

    try:
        return chat_model_from_settings(settings)
    except LLMError as exc:
        raise click.ClickException(f"--judge needs an LLM: {exc}") from None


@eval_group.command("answers")
@click.option("--json", "as_json", is_flag=True, help="Print the figures and every answer as JSON.")
@_folder_option(
    "--report", "report_dir", "Write answers.md here: every incomplete or wrong-facet answer in full."
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N questions.")
@click.option(
    "--english",
    is_flag=True,
    help="Also ask the English and mixed-language golden questions: refusals and span recall@5 beside "
    "their Chinese originals.",
)
@_folder_option("--index-root", "index_root", "Where the evaluation index lives (default: <cache_dir>/eval).")
@config_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def answers_command(
    as_json: bool,
    report_dir: Path | None,
    limit: int | None,
    english: bool,
    index_root: Path | None,
    config_file: Path | None,
    quiet: bool,
) -> None:
    """Score answers: required phrases said (completeness), forbidden ones not (wrong facet), length.

    Asks every question of eval/data/answers.jsonl through the offline answer path over an index of
    corpus/ (kept in <cache_dir>/eval/answers/<chunker>).

    \b
    Examples:
      zhiwen eval answers                        the figures, overall and per intent
      zhiwen eval answers --english --report out/   plus the English check; out/answers.md lists failures
    """
    from .answers import run_answers, summary_lines, write_answers_report

    try:
        settings = Settings.load(config_file)
        result = run_answers(settings, limit, english, index_root, progress=not quiet)
    except (DatasetError, SettingsError, IndexStateError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo("\n".join(summary_lines(result)))
    if report_dir:
        click.echo(f"wrote {write_answers_report(result, report_dir)}", err=as_json)


@eval_group.command("followups")
@click.option("--json", "as_json", is_flag=True, help="Print the figures and every conversation as JSON.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N conversations.")
@_folder_option("--index-root", "index_root", "Where the evaluation index lives (default: <cache_dir>/eval).")
@config_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def followups_command(
    as_json: bool, limit: int | None, index_root: Path | None, config_file: Path | None, quiet: bool
) -> None:
    """Score follow-up questions: is the last turn of each conversation answered from its gold span?

    Plays every conversation of eval/data/followups.jsonl turn by turn (each turn asked with the earlier
    ones as history) over an index of corpus/, and asks each last turn alone for contrast; prints the
    success per kind (ordinal, anaphora, subject_swap, elliptical) and the conversations that failed.
    """
    from .followups import by_kind, run_followups, summary_lines

    try:
        settings = Settings.load(config_file)
        scores, summary = run_followups(settings, limit, index_root, progress=not quiet)
    except (DatasetError, SettingsError, IndexStateError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        output = {
            "index": summary,
            "by_kind": by_kind(scores),
            "conversations": [s.to_dict() for s in scores],
        }
        click.echo(json.dumps(output, ensure_ascii=False, indent=2))
    else:
        click.echo("\n".join(summary_lines(scores, summary)))


def _register_subcommands() -> None:
    """Add the subcommands that live in their own modules; each imports its heavy parts when run."""
    from .bench import bench_group
    from .load import load_command
    from .refusal import refusal_command
    from .tune import tune_command

    for command in (tune_command, bench_group, refusal_command, load_command):
        eval_group.add_command(command)


_register_subcommands()
