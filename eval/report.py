"""Present an ``EvalResult``: an aligned text table, JSON, TREC files, and a Markdown page with plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zhiwen.core.types import Hit

from .datasets import Query
from .harness import EvalResult, Run
from .metrics import first_ranks, ranked_units, recall_curve, to_qrels, to_run

SNIPPET = 60


def describe(result: EvalResult) -> list[str]:
    """The lines saying what was measured: set, sizes, levels, subsets, fusion."""
    data = result.dataset
    scored = ", ".join(f"{level} level: {result.scored(level)} questions" for level in data.levels)
    lines = [
        (
            f"dataset {data.name}: {len(data.queries)} questions, {len(data.documents)} documents; {scored}; "
            f"{result.negatives} negatives (excluded from recall)"
        ),
        (
            f"search: top {result.k} chunks; hybrid fusion {result.fusion} "
            f"(dense_weight {result.params.dense_weight}, rrf_k {result.params.rrf_k})"
        ),
    ]
    return lines + [f"note: {note}" for note in data.notes]


def metrics_table(result: EvalResult) -> str:
    """The results as an aligned text table, preceded by ``describe``."""
    return "\n".join([*describe(result), "", *_table_lines(result)])


def _table_lines(result: EvalResult) -> list[str]:
    """The metric rows as aligned columns under a header."""
    names = list(result.rows[0].metrics) if result.rows else []
    header = ["level", "chunker", "strategy", *names, "ms/q"]
    body = [
        [
            row.level,
            row.chunker,
            row.strategy,
            *(f"{row.metrics[n]:.3f}" for n in names),
            f"{row.ms_per_query:.0f}",
        ]
        for row in result.rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
        for line in [header, *body]
    ]


def to_json(result: EvalResult) -> dict[str, Any]:
    """The results as plain JSON-ready data."""
    data = result.dataset
    return {
        "dataset": data.name,
        "questions": len(data.queries),
        "documents": len(data.documents),
        "scored": {level: result.scored(level) for level in data.levels},
        "negatives": result.negatives,
        "notes": list(data.notes),
        "k": result.k,
        "fusion": result.fusion,
        "params": {"dense_weight": result.params.dense_weight, "rrf_k": result.params.rrf_k},
        "indexes": dict(result.index_summaries),
        "rows": [
            {
                "level": r.level,
                "chunker": r.chunker,
                "strategy": r.strategy,
                **r.metrics,
                "ms_per_query": r.ms_per_query,
            }
            for r in result.rows
        ],
    }


def write_trec(result: EvalResult, folder: Path) -> list[Path]:
    """Per level, ``<dataset>.<level>.qrels`` and one ``<dataset>.<level>.<chunker>-<strategy>.run``.

    The run files list relevance units (see ``metrics``) from the top k positions, so ``trec_eval`` gives
    the same MRR and nDCG; its recall@k counts units, not chunks, and differs when a chunk hits two spans.
    """
    from ranx import Qrels
    from ranx import Run as RanxRun

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for level in result.dataset.levels:
        qrels = to_qrels(result.dataset.queries, level)
        if not qrels:
            continue
        path = folder / f"{result.dataset.name}.{level}.qrels"
        Qrels(qrels).save(str(path), kind="trec")
        written.append(path)
        for run in result.runs:
            path = folder / f"{result.dataset.name}.{level}.{run.name}.run"
            RanxRun(to_run(run.positions(result.dataset, level), result.k), name=run.name).save(
                str(path), kind="trec"
            )
            written.append(path)
    return written


def write_report(result: EvalResult, folder: Path) -> Path:
    """``report.md`` with the table, ``recall_at_k.png``, ``table.png`` and the per-question ranks."""
    folder.mkdir(parents=True, exist_ok=True)
    plot_recall(result, folder / "recall_at_k.png")
    plot_table(result, folder / "table.png")
    lines = [
        f"# Retrieval evaluation: {result.dataset.name}",
        "",
        *(f"- {line}" for line in describe(result)),
        "",
        "```",
        *_table_lines(result),
        "```",
        "",
        "![recall@k per strategy](recall_at_k.png)",
        "",
        "## Per question",
        "",
        (
            "Rank (1-based) at which each gold unit was first hit, per run; `-` when not in the top "
            f"{result.k}. Under each run, the chunks ranked above the last hit (or all, when one was missed)."
        ),
        "",
    ]
    for query in result.dataset.queries:
        lines += question_section(result, query)
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def question_section(result: EvalResult, query: Query) -> list[str]:
    """One question's Markdown: gold units, their rank in each run, and what ranked above them."""
    level = next((lv for lv in result.dataset.levels if query.gold.get(lv)), result.dataset.levels[0])
    gold = query.gold.get(level, ())
    lines = [f"### {query.qid} ({query.kind}): {query.query}", ""]
    if gold:
        lines += [f"- `{g.unit_id}` {g.doc_id}: {_snippet(g.text) or '(whole document)'}" for g in gold]
        lines += ["", "| run | " + " | ".join(g.unit_id for g in gold) + " |", "|---" * (len(gold) + 1) + "|"]
        for run in result.runs:
            ranks = first_ranks(ranked_units(run.hits[query.qid], gold, level), gold)
            lines.append(f"| {run.name} | " + " | ".join(str(r or "-") for r in ranks.values()) + " |")
    else:
        lines.append("Negative: the corpus does not answer it. Top hits per run:")
    lines.append("")
    for run in result.runs:
        rows = _ranked_above(run, query, level)
        lines += [f"<details><summary>{run.name}</summary>", "", *rows, "", "</details>", ""]
    return lines


def _ranked_above(run: Run, query: Query, level: str) -> list[str]:
    """The run's ranked list down to its last gold hit (all of it after a miss; top 3 for negatives)."""
    hits = run.hits[query.qid]
    gold = query.gold.get(level, ())
    if not gold:
        return [f"{h.rank}. {h.doc_id} [{h.start}:{h.end}] {_snippet(h.text)}" for h in hits[:3]]
    positions = ranked_units(hits, gold, level)
    ranks = list(first_ranks(positions, gold).values())
    depth = len(positions) if None in ranks else max(ranks)
    if level == "document":
        gold_docs = {g.doc_id for g in gold}
        first_chunk: dict[str, Hit] = {}
        for h in hits:
            first_chunk.setdefault(h.doc_id, h)
        return [
            f"{i}. {'**gold** ' if doc in gold_docs else ''}{doc} {_snippet(first_chunk[doc].text)}"
            for i, (doc,) in enumerate(positions[:depth], 1)
        ]
    return [
        f"{h.rank}. {_mark(units)}{h.doc_id} [{h.start}:{h.end}] {_snippet(h.text)}"
        for h, units in zip(hits, positions[:depth])
    ]


def _mark(units: list[str]) -> str:
    """Bold names of the gold units a position delivered (misses stand for themselves as ``chunk:...``)."""
    found = [u for u in units if not u.startswith("chunk:")]
    return f"**{', '.join(found)}** " if found else ""


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET else flat[:SNIPPET] + "…"


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # CJK labels need a font that has them; fall back silently to the default when none is installed.
    plt.rcParams["font.sans-serif"] = ["Noto Sans CJK SC", "WenQuanYi Zen Hei", "SimHei", "DejaVu Sans"]
    return plt


def plot_recall(result: EvalResult, path: Path) -> Path:
    """recall@1..k curves, one line per chunker x strategy, one panel per level."""
    plt = _matplotlib()
    levels = [level for level in result.dataset.levels if to_qrels(result.dataset.queries, level)]
    fig, axes = plt.subplots(1, max(1, len(levels)), figsize=(6 * max(1, len(levels)), 4.5), squeeze=False)
    cutoffs = list(range(1, result.k + 1))
    for ax, level in zip(axes[0], levels):
        qrels = to_qrels(result.dataset.queries, level)
        for run in result.runs:
            ax.plot(
                cutoffs,
                recall_curve(qrels, run.positions(result.dataset, level), result.k),
                marker=".",
                label=run.name,
            )
        ax.set(title=f"{result.dataset.name}: {level} level", xlabel="k", ylabel="recall@k", ylim=(0, 1.02))
        ax.set_xticks(cutoffs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_table(result: EvalResult, path: Path) -> Path:
    """The metrics table rendered as an image, for slides and the README."""
    plt = _matplotlib()
    names = list(result.rows[0].metrics) if result.rows else []
    cells = [[r.level, r.chunker, r.strategy, *(f"{r.metrics[n]:.3f}" for n in names)] for r in result.rows]
    fig, ax = plt.subplots(figsize=(1.1 * (len(names) + 3), 0.32 * (len(cells) + 2)))
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=["level", "chunker", "strategy", *names], loc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    ax.set_title(f"{result.dataset.name} ({len(result.dataset.queries)} questions)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
