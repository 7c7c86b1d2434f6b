"""The Milvus backend against Milvus Lite (embedded, no server): parity with FAISS on the golden set,
incremental update and delete without ghost hits, filters, migration both ways, the model check, and
kill -9 after each step of an ingest.

One Milvus Lite file serves the whole module (Lite serves a file to one process); each test that writes
uses its own collection. The kill -9 test's writers are child processes forked from one server process
that has imported Zhiwen and pymilvus once, so each starts in a second or two instead of ten.
"""

from __future__ import annotations

import multiprocessing
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CORPUS, make_settings

pytest.importorskip(
    "pymilvus", reason="the Milvus backend needs the milvus extra: pip install -e '.[milvus]'"
)

import milvus_crash
from zhiwen.core.index import IndexStateError, live_manifest, open_live
from zhiwen.core.milvus import connect
from zhiwen.eval.datasets import load_golden
from zhiwen.eval.metrics import ranked_units
from zhiwen.ingest.migrate import migrate
from zhiwen.ingest.pipeline import ingest_paths, remove_documents
from zhiwen.retriever import Retriever
from zhiwen.ui.cli import main

pytestmark = pytest.mark.slow
FORKSERVER = multiprocessing.get_context("forkserver")
FORKSERVER.set_forkserver_preload(["milvus_crash", "pymilvus", "milvus_lite"])
NEW_CITIZENS = "银保监局-主题教育与金融促进消费工作.txt"  # the only document about 新市民


@pytest.fixture(scope="module")
def lite(tmp_path_factory) -> Path:
    """The module's Milvus Lite file."""
    return tmp_path_factory.mktemp("milvus") / "milvus.db"


def milvus_settings(lite: Path, collection: str, tmp: Path):
    return make_settings(tmp / "index", backend="milvus", milvus_uri=str(lite), milvus_collection=collection)


@pytest.fixture(scope="module")
def milvus_corpus(lite, tmp_path_factory, embedder):
    """corpus/ ingested into collection ``corpus`` (do not modify it in tests)."""
    settings = milvus_settings(lite, "corpus", tmp_path_factory.mktemp("m-corpus"))
    report = ingest_paths([CORPUS], settings, progress=False, embedder=embedder)
    assert report.summary().startswith("added 5, updated 0")
    return settings


def found_at(hits, query, k: int) -> bool:
    """Whether the top ``k`` hits deliver a gold span of ``query``."""
    units = ranked_units(hits[:k], query.gold["span"], "span")
    return any(not unit.startswith("chunk:") for position in units for unit in position)


def test_golden_parity_with_faiss(milvus_corpus, corpus_settings, embedder):
    golden = [q for q in load_golden().queries if q.gold.get("span")]
    faiss_reader = Retriever(corpus_settings, embedder=embedder)
    milvus_reader = Retriever(milvus_corpus, embedder=embedder)
    recall = {"faiss": [0, 0], "milvus": [0, 0]}
    agree = 0
    for query in golden:
        ours = faiss_reader.search(query.query, k=5)
        theirs = milvus_reader.search(query.query, k=5)
        agree += [h.chunk_id for h in ours] == [h.chunk_id for h in theirs]
        for name, hits in (("faiss", ours), ("milvus", theirs)):
            recall[name][0] += found_at(hits, query, 1)
            recall[name][1] += found_at(hits, query, 5)
    assert all(abs(a - b) <= 1 for a, b in zip(recall["faiss"], recall["milvus"])), recall
    assert agree >= 0.9 * len(golden), f"top 5 agree on {agree} of {len(golden)} questions"


def test_hits_are_exact_slices_and_filters_run_in_milvus(milvus_corpus, corpus_settings, embedder):
    reader = Retriever(milvus_corpus, embedder=embedder)
    gen = open_live(milvus_corpus)
    for strategy in ("bm25", "dense", "hybrid"):
        hits = reader.search("新市民金融服务有哪些举措？", k=3, strategy=strategy)
        assert hits and hits[0].doc_id == NEW_CITIZENS
        assert all(h.text == gen.document(h.doc_id).text[h.start : h.end] for h in hits)
    filters = {"role": "plan", "year": 2022, "issuer": ["市局", "银保监局"]}
    plans = reader.search("下一步工作打算", k=5, filters=filters)
    assert plans and all(h.meta["role"] == "plan" and h.doc_id.startswith("市局-") for h in plans)
    faiss_plans = Retriever(corpus_settings, embedder=embedder).search("下一步工作打算", k=5, filters=filters)
    assert [h.chunk_id for h in plans] == [h.chunk_id for h in faiss_plans]
    assert reader.search("新市民", k=5, filters={"year": "1999"}) == []
    assert gen.mentions("新市民") and not gen.mentions("量子计算机")
    assert gen.outline(NEW_CITIZENS), "outlines are stored with the documents"


def test_another_model_or_chunker_is_refused_with_the_reingest_message(milvus_corpus, embedder):
    with pytest.raises(IndexStateError, match=r"chunker=.*re-ingest with `zhiwen ingest --rebuild`"):
        Retriever(milvus_corpus.replace(chunker="window"), embedder=embedder).search("新市民")


def test_update_delete_and_report_without_ghost_hits(lite, tmp_path, embedder):
    # IVF_SQ8 here (HNSW elsewhere), so its build and its search parameter (nprobe) are exercised too.
    settings = milvus_settings(lite, "edits", tmp_path).replace(dense_index="ivf-sq8")
    folder = tmp_path / "docs"
    folder.mkdir()
    for path in CORPUS.glob("*.txt"):
        (folder / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    ingest_paths([folder], settings, progress=False, embedder=embedder)
    assert open_live(settings).dense_params == {"nprobe": 64}
    described = connect(settings).describe_index("edits", "dense")  # the parameters reached Lite too
    assert (described["index_type"], described["params"]) == ("IVF_SQ8", {"nlist": 1024})
    reader = Retriever(settings, embedder=embedder)
    assert reader.search("新市民金融服务有哪些举措？", k=1, strategy="dense")[0].doc_id == NEW_CITIZENS
    assert reader.search("新市民", k=1, strategy="bm25")[0].doc_id == NEW_CITIZENS
    rows_before = set(open_live(settings).rows())

    edited = folder / "市局-能力作风建设年与金融重点工作推进情况.txt"
    edited.write_text(
        edited.read_text(encoding="utf-8") + "\n试点开展数字人民币跨境支付业务。", encoding="utf-8"
    )
    report = ingest_paths([folder], settings, progress=False, embedder=embedder)
    assert (len(report.added), len(report.updated), len(report.unchanged)) == (0, 1, 4)
    hit = reader.search("数字人民币跨境支付", k=1)[0]
    assert hit.doc_id == edited.name and "数字人民币" in hit.text
    rows_after = set(open_live(settings).rows())
    assert len(rows_before & rows_after) > len(rows_after) // 2, "unchanged documents keep their rows"

    report = remove_documents([NEW_CITIZENS], settings, embedder=embedder)
    assert report.removed == [NEW_CITIZENS] and report.documents == 4
    assert all(h.doc_id != NEW_CITIZENS for h in reader.search("新市民金融服务", k=10))
    assert not open_live(settings).mentions("新市民"), "no ghost: the document's rows are gone"
    (folder / NEW_CITIZENS).unlink()
    report = ingest_paths([folder], settings, progress=False, embedder=embedder, prune=True)
    assert not report.changed and report.summary().startswith("added 0, updated 0, unchanged 4, removed 0")
    assert live_manifest(settings)["counts"] == {"documents": 4, "chunks": report.chunks}
    kept = set(open_live(settings).rows())
    report = ingest_paths([], settings, progress=False, embedder=embedder, rebuild=True)
    assert report.rebuilt and report.documents == 4 and not kept & set(open_live(settings).rows())
    assert reader.search("数字人民币跨境支付", k=1)[0].doc_id == edited.name


def test_migrate_both_ways_keeps_every_ranking(lite, corpus_settings, tmp_path, embedder):
    settings = corpus_settings.replace(
        backend="faiss",
        milvus_uri=str(lite),
        milvus_collection="migrated",
        index_dir=corpus_settings.index_dir,
    )
    env = {
        "ZHIWEN_INDEX_DIR": str(settings.index_dir),
        "ZHIWEN_CACHE_DIR": str(settings.cache_dir),
        "ZHIWEN_MILVUS_URI": str(lite),
        "ZHIWEN_MILVUS_COLLECTION": "migrated",
    }
    result = CliRunner().invoke(main, ["migrate", "--to", "milvus"], env=env)
    chunks = live_manifest(corpus_settings)["counts"]["chunks"]
    assert result.exit_code == 0 and f"copied 5 documents, {chunks} chunks" in result.output, result.output
    back = settings.replace(index_dir=tmp_path / "back")
    migrate(back, "faiss")
    readers = [
        Retriever(settings, embedder=embedder),
        Retriever(settings.replace(backend="milvus"), embedder=embedder),
        Retriever(back, embedder=embedder),
    ]
    for query in load_golden().queries:
        ranked = [[(h.chunk_id, h.start, h.end) for h in r.search(query.query, k=5)] for r in readers]
        assert ranked[0] == ranked[2], f"{query.qid}: FAISS -> Milvus -> FAISS changed the ranking"
        assert ranked[0] == ranked[1], f"{query.qid}: Milvus ranks otherwise than FAISS"


def test_info_and_doctor_name_the_backend(milvus_corpus):
    env = {
        "ZHIWEN_BACKEND": "milvus",
        "ZHIWEN_MILVUS_URI": milvus_corpus.milvus_uri,
        "ZHIWEN_MILVUS_COLLECTION": "corpus",
        "ZHIWEN_INDEX_DIR": str(milvus_corpus.index_dir),
    }
    info = CliRunner().invoke(main, ["info"], env=env)
    assert info.exit_code == 0 and f"Milvus collection corpus at {milvus_corpus.milvus_uri}" in info.output
    doctor = CliRunner().invoke(main, ["doctor"], env=env)
    assert (
        doctor.exit_code == 0
        and "is healthy" in doctor.output
        and "Milvus collection corpus" in doctor.output
    )
    memory = CliRunner().invoke(main, ["eval", "bench", "memory"], env=env, catch_exceptions=False)
    assert memory.exit_code == 0, memory.output
    assert memory.output.startswith(f"milvus, {milvus_corpus.milvus_uri}")
    assert "first search (87 chunks): " in memory.output and "peak" in memory.output


def crash(db: Path, step: str) -> dict:
    """Run ``milvus_crash.run`` on ``db`` in a child process; returns the check it sent (empty for a new
    DB). Children fork from a server that has imported Zhiwen and pymilvus, not from this process, whose
    gRPC threads (its own Milvus Lite) a fork would not carry."""
    received, send = FORKSERVER.Pipe(duplex=False)
    child = FORKSERVER.Process(target=milvus_crash.run, args=(str(db), step, send))
    child.start()
    send.close()
    try:
        report = received.recv()  # EOF: the child sent nothing (a new DB) before it died
    except EOFError:
        report = {}
    child.join(300)
    assert child.exitcode == (0 if step == "check" else -signal.SIGKILL), f"{step}: exit {child.exitcode}"
    return report


def test_kill_9_after_each_step_of_an_ingest(tmp_path):
    db = tmp_path / "crash.db"
    old = {"live": 1, "documents": {"a.txt": "推进绿色金融改革创新。", "b.txt": "加强普惠金融服务。"}}
    assert crash(db, "add") == {}, "a new file gets a finished ingest, then one killed after step 1"
    for step in ("retire", "switch"):  # the last one was killed before its switch: repair undoes it
        seen = crash(db, step)
        assert seen["before"] == {**old, "green_hits": ["a.txt"]}, step
        assert seen["repaired"] and seen["after"] == seen["before"], step
    seen = crash(db, "check")  # killed after the switch: the new generation, no ghost of the old a.txt
    new = {"a.txt": "推进科技金融改革。", "b.txt": "加强普惠金融服务。", "c.txt": "新增绿色金融专项行动。"}
    assert seen["before"] == {"live": 2, "documents": new, "green_hits": ["c.txt"]}
    assert any("replaced rows" in line for line in seen["repaired"]) and seen["after"] == seen["before"]
