"""Searches and answers while the index changes: one generation per search, closed when its last reader
leaves, and a new generation written by another process noticed at the next request (items 1, 5, 7).

``ZHIWEN_RACE_SECONDS`` sets how long the race runs (default 10; the fault probe's check is 60).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import CORPUS, make_settings
from zhiwen.core.index import open_generation
from zhiwen.ingest.pipeline import ingest_paths
from zhiwen.retriever import Retriever
from zhiwen.ui.kb import KnowledgeBase

pytestmark = pytest.mark.slow
RACE_SECONDS = float(os.environ.get("ZHIWEN_RACE_SECONDS", "10"))
QUESTIONS = [
    "如何支持新市民金融？",
    "金融促进消费有哪些措施？",
    "防范化解金融风险",
    "主题教育取得了哪些成效？",
]


@pytest.fixture
def kb(tmp_path, embedder) -> KnowledgeBase:
    settings = make_settings(tmp_path / "data" / "index")
    ingest_paths([CORPUS], settings, progress=False, embedder=embedder)
    return KnowledgeBase(settings, Retriever(settings, embedder=embedder))


def stored_texts(index_dir: Path) -> dict[str, str]:
    gen = open_generation(index_dir)
    try:
        return {d.doc_id: d.text for d in gen.documents()}
    finally:
        gen.close()


def test_searches_and_answers_while_documents_come_and_go(kb, tmp_path):
    """Readers search and answer in a loop while a writer adds and deletes documents: no errors, and
    every hit and citation is ``source[start:end]`` of the document it names."""
    texts = {p.name: p.read_text(encoding="utf-8") for p in CORPUS.glob("*.txt")}
    extra = {
        f"临时{i}.txt": "\n".join(
            f"第{i}号临时材料第{j}段：推进新市民金融服务和消费金融，加强风险防范。" for j in range(12)
        )
        for i in range(3)
    }
    known = {**texts, **extra}
    errors: list[str] = []
    wrong: list[str] = []
    counts = {"searches": 0, "answers": 0, "writes": 0}
    stop = time.monotonic() + RACE_SECONDS

    def check(doc_id: str, start: int, end: int, text: str) -> None:
        if known[doc_id][start:end] != text:
            wrong.append(f"{doc_id}[{start}:{end}]")

    def reader(n: int) -> None:
        i = n
        while time.monotonic() < stop:
            question = QUESTIONS[i % len(QUESTIONS)]
            i += 1
            try:
                if i % 2:
                    for hit in kb.retriever.search(question, k=8):
                        check(hit.doc_id, hit.start, hit.end, hit.text)
                    counts["searches"] += 1
                else:
                    answer = kb.answer(question)
                    for c in answer.citations:
                        check(c.doc_id, c.start, c.end, c.text)
                    counts["answers"] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is what the test counts
                errors.append(f"{type(exc).__name__}: {exc}")

    def writer() -> None:
        i = 0
        while time.monotonic() < stop:
            name = f"临时{i % 3}.txt"
            i += 1
            try:
                staged = kb.staging_dir() / name
                staged.write_text(extra[name], encoding="utf-8")
                kb.add_files([staged])
                kb.delete(name)
                counts["writes"] += 2
            except Exception as exc:  # noqa: BLE001
                errors.append(f"writer {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(3)] + [
        threading.Thread(target=writer)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"race over {RACE_SECONDS:g} s: {counts}, {len(errors)} errors, {len(wrong)} wrong offsets")
    assert not errors, errors[:5]
    assert not wrong, wrong[:5]
    assert counts["writes"] >= 2 and counts["searches"] and counts["answers"]


def open_index_files(index_dir: Path) -> set[str]:
    """Files under ``index_dir`` this process holds open or mapped (what `lsof` would list)."""
    held = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            held.add(os.readlink(fd))
        except OSError:
            continue
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6:
            held.add(parts[5])
    root = str(index_dir.resolve())
    return {h for h in held if h.startswith(root)}


def test_no_handles_stay_on_old_generations(kb):
    index_dir = Path(kb.settings.index_dir)
    for i in range(6):
        staged = kb.staging_dir() / f"doc{i}.txt"
        staged.write_text(f"第{i}份材料：推进新市民金融服务。", encoding="utf-8")
        kb.add_files([staged])
        kb.retriever.search("新市民金融服务", k=3)
        kb.answer("如何支持新市民金融？")
        kb.delete(staged.name)
        kb.retriever.search("新市民金融服务", k=3)
    live = kb.retriever.generation.path.name
    stale = {h for h in open_index_files(index_dir) if "(deleted)" in h or f"/{live}/" not in h}
    assert not stale, sorted(stale)


def test_a_command_line_ingest_is_seen_by_a_running_retriever(kb, tmp_path):
    retriever = kb.retriever
    assert kb.counts()[0] == 5
    extra = tmp_path / "命令行.txt"
    extra.write_text("命令行写入的独特词语：蓝鲸湾数字金融示范区。", encoding="utf-8")
    env = {
        **os.environ,
        "ZHIWEN_INDEX_DIR": str(kb.settings.index_dir),
        "ZHIWEN_CACHE_DIR": str(kb.settings.cache_dir),
    }
    subprocess.run([sys.executable, "-m", "zhiwen.ui.cli", "ingest", str(extra), "-q"], env=env, check=True)
    assert kb.counts()[0] == 6
    hits = retriever.search("蓝鲸湾数字金融示范区", k=1)
    assert hits[0].doc_id == "命令行.txt"
    assert stored_texts(kb.settings.index_dir)["命令行.txt"][hits[0].start : hits[0].end] == hits[0].text
