"""A writer of a Milvus Lite knowledge base that kills itself (SIGKILL) after one step of an ingest.

``test_milvus.py`` runs ``run(DB, STEP, report)`` in a child process (Milvus Lite serves a file to one
process), forked from a server process that imported this module, and with it Zhiwen and pymilvus,
once: each child then starts in a second or two rather than ten. A new DB first gets a finished ingest
of two documents; an existing one is checked first (what a reader sees, then ``repair``, then what it
sees again, sent through ``report`` as one dict). Then STEP ``add``, ``retire`` or ``switch`` runs an
ingest that replaces one document and adds one, killed right after that step; ``check`` stops after
the check. The vectors are random unit vectors: what is tested is the generation switch, not the model.
"""

from __future__ import annotations

import os
import signal
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
from zhiwen.core.index import index_signature, open_live
from zhiwen.core.settings import Settings
from zhiwen.core.tokenize import tokenize
from zhiwen.core.types import Chunk, Document
from zhiwen.ingest.milvus_store import MilvusWriter, write_milvus

DIM = 8


def document(doc_id: str, sentence: str) -> tuple[Document, list[Chunk]]:
    doc = Document(doc_id, doc_id, sentence, {"issuer": "银保监局"})
    return doc, [Chunk(f"{doc_id}#0", doc_id, doc_id, sentence, 0, len(sentence), meta={"role": "done"})]


def vectors(count: int) -> np.ndarray:
    found = np.random.default_rng(count).normal(size=(count, DIM)).astype(np.float32)
    return found / np.linalg.norm(found, axis=1, keepdims=True)


def seen(settings: Settings) -> dict:
    gen = open_live(settings, index_signature(settings))
    bm25, _ = gen.candidates(tokenize("绿色"), None, 10)
    return {
        "live": gen.live,
        "documents": {d.doc_id: d.text for d in gen.documents()},
        "green_hits": sorted(gen.chunk(r).doc_id for r in bm25),
    }


def run(db: str, step: str, report: Connection) -> None:
    settings = Settings(index_dir=Path(db).parent / "index", backend="milvus", milvus_uri=db)
    signature = index_signature(settings)
    old = [document("a.txt", "推进绿色金融改革创新。"), document("b.txt", "加强普惠金融服务。")]
    if not Path(db).exists():
        docs = [d for d, _ in old]
        chunks = [c for _, cs in old for c in cs]
        write_milvus(settings, signature, docs, chunks, {}, lambda cs: vectors(len(cs)))
    else:
        before = seen(settings)
        repaired = MilvusWriter(settings).repair()
        report.send({"before": before, "repaired": repaired, "after": seen(settings)})
    if step == "check":
        os._exit(0)  # at once: a normal exit would wait seconds for Milvus Lite's idle server threads
    writer = MilvusWriter(settings)
    state = writer.state()
    live, gen = int(state["live"]), int(state["live"]) + 1
    changed = [document("a.txt", "推进科技金融改革。"), document("c.txt", "新增绿色金融专项行动。")]
    chunks = [c for _, cs in changed for c in cs]
    writer.add(gen, int(state["next_row"]), [d for d, _ in changed], chunks, vectors(len(chunks)), {})
    if step != "add":
        writer.retire(gen, live, {"a.txt"})
        if step != "retire":
            writer.switch(gen, {**state, "counts": {"documents": 3, "chunks": 3}, "next_row": 99})
    os.kill(os.getpid(), signal.SIGKILL)
