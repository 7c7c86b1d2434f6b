"""An answer or a whole conversation as Markdown or Word, for staff to paste into their own reports.

Citations are numbered once for the whole export: the same passage cited by two answers keeps one
number, and each answer's ``[n]`` markers are renumbered to match. The source list at the end gives each
passage's document title, position and id, and the passage itself, exactly as cited (``*``/``**``
anonymisation marks included; Markdown escapes them so they show as written).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

_MARKER = re.compile(r"\[(\d+)\]")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_<>#|~])")
FILTER_NAMES = {"issuer": "发布机构", "year": "年份", "doc_type": "类型", "doc_id": "文档"}


@dataclass(frozen=True)
class Source:
    """One cited passage in an export, under its export-wide number."""

    number: int
    title: str
    doc_id: str
    position: str
    text: str


@dataclass(frozen=True)
class ExportTurn:
    """One question and its answer text with markers renumbered for the export."""

    question: str
    answer: str
    filters: str


def number_sources(records: Sequence[dict[str, Any]]) -> tuple[list[ExportTurn], list[Source]]:
    """The turns of ``records`` (conversation answer records) with one numbering of their citations."""
    numbers: dict[tuple[str, int, int], int] = {}
    sources: list[Source] = []
    turns = []
    for record in records:
        answer = record["answer"]
        local: dict[int, int] = {}
        for c in answer.get("citations", []):
            key = (c["doc_id"], c["start"], c["end"])
            if key not in numbers:
                numbers[key] = len(numbers) + 1
                position = record.get("positions", {}).get(str(c["n"]), f"字符 {c['start']}–{c['end']}")
                sources.append(Source(numbers[key], c["title"], c["doc_id"], position, c["text"]))
            local[c["n"]] = numbers[key]
        text = renumber(answer["answer"], local)
        turns.append(ExportTurn(record["question"], text, filters_label(record.get("filters") or {})))
    return turns, sources


def renumber(text: str, numbers: dict[int, int]) -> str:
    """``text`` with each marker ``[n]`` of a known citation changed to ``[numbers[n]]``."""
    return _MARKER.sub(
        lambda m: f"[{numbers[int(m.group(1))]}]" if int(m.group(1)) in numbers else m.group(0), text
    )


def filters_label(filters: dict[str, Any]) -> str:
    """The filters a question was asked with, for a reader ("" when none)."""
    parts = [
        f"{FILTER_NAMES.get(key, key)}：{'、'.join(map(str, value if isinstance(value, list) else [value]))}"
        for key, value in filters.items()
        if value not in (None, "", [])
    ]
    return "；".join(parts)


def md_escape(text: str) -> str:
    """``text`` as Markdown that shows it as written (``*`` stays ``*``, not emphasis)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _md_lines(text: str) -> str:
    return "  \n".join(md_escape(line) for line in text.split("\n"))


def to_markdown(title: str, records: Sequence[dict[str, Any]], when: datetime | None = None) -> str:
    """The Markdown export of ``records`` under the heading ``title``."""
    turns, sources = number_sources(records)
    when = when or datetime.now()
    out = [f"# {md_escape(title)}", "", f"导出自知问 · {when:%Y-%m-%d %H:%M}", ""]
    for turn in turns:
        out += [f"## 问：{md_escape(turn.question)}", ""]
        if turn.filters:
            out += [f"（筛选：{md_escape(turn.filters)}）", ""]
        out += [_md_lines(turn.answer), ""]
    if sources:
        out += ["---", "", "## 引用来源", ""]
        for s in sources:
            out += [
                f"**[{s.number}]** 《{md_escape(s.title)}》 · {md_escape(s.position)} · {md_escape(s.doc_id)}",
                "",
            ]
            out += ["\n".join(f"> {md_escape(line)}" for line in s.text.split("\n")), ""]
    return "\n".join(out)


def write_docx(
    path: Path, title: str, records: Sequence[dict[str, Any]], when: datetime | None = None
) -> Path:
    """Write the Word export of ``records`` to ``path`` and return it."""
    from docx import Document as WordDocument  # with lxml: loaded when a Word file is asked for

    turns, sources = number_sources(records)
    when = when or datetime.now()
    doc = WordDocument()
    doc.add_heading(title, level=1)
    doc.add_paragraph(f"导出自知问 · {when:%Y-%m-%d %H:%M}")
    for turn in turns:
        doc.add_heading(f"问：{turn.question}", level=2)
        if turn.filters:
            doc.add_paragraph(f"（筛选：{turn.filters}）")
        for line in turn.answer.split("\n"):
            doc.add_paragraph(line)
    if sources:
        doc.add_heading("引用来源", level=2)
        for s in sources:
            head = doc.add_paragraph()
            head.add_run(f"[{s.number}] ").bold = True
            head.add_run(f"《{s.title}》 · {s.position} · {s.doc_id}")
            doc.add_paragraph(s.text, style="Quote")
    doc.save(str(path))
    return path
