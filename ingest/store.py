"""Write index generations (layout and reader in ``zhiwen.core.index``): one writer at a time, atomically.

A writer builds a complete new generation in a temporary folder, renames it into place, then points
``CURRENT`` at it with one atomic replace. Readers keep the generation they opened.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np
from zhiwen.core.fsutil import atomic_target, atomic_write_text, remove, stale_temporaries
from zhiwen.core.index import (
    CURRENT,
    GENERATION_PREFIX,
    SCHEMA_VERSION,
    TOKENIZER_VERSION,
    IndexStateError,
    current_generation,
    generation_problems,
    generations,
)
from zhiwen.core.tokenize import tokenize_many
from zhiwen.core.types import Chunk, Document, OutlineNode

if TYPE_CHECKING:
    import bm25s


@contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    """One writer at a time per index folder (readers never wait).

    Holding the lock, the writer knows every temporary in the folder was left by one that died (a
    ``.CURRENT.tmp-*`` pointer, a half-written ``.gen-*`` folder) and removes them first.
    """
    index_dir = Path(index_dir)
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        handle = open(index_dir / ".lock", "w")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        reason = "is a file, not a folder" if index_dir.is_file() else f"cannot be written ({exc.strerror})"
        raise IndexStateError(
            f"{index_dir}: the index folder {reason}; choose another with --index or ZHIWEN_INDEX_DIR"
        ) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexStateError(
                f"{index_dir}: another `zhiwen ingest` is writing this index; wait for it"
            ) from None
        for stale in [
            *stale_temporaries(index_dir / CURRENT),
            *index_dir.glob(f".{GENERATION_PREFIX}*.tmp-*"),
        ]:
            remove(stale)
        yield


def build_dense(vectors: np.ndarray, kind: str, ann_threshold: int) -> tuple[faiss.Index, str]:
    """An inner-product FAISS index: exact ``flat`` by default, HNSW when asked or above the threshold."""
    dim = vectors.shape[1]
    if kind == "auto":
        kind = "hnsw" if len(vectors) >= ann_threshold else "flat"
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf-sq8":
        # Inverted lists of 8-bit codes: a quarter of the flat index's memory; nprobe chosen for recall.
        lists = max(1, min(len(vectors) // 39, int(4 * np.sqrt(max(1, len(vectors))))))
        index = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(dim), dim, lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        sample = np.random.default_rng(0).permutation(len(vectors))[: 64 * lists]
        if len(sample):
            index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
        index.nprobe = max(1, lists // 16)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 128
    else:
        raise IndexStateError(f"dense_index must be auto, flat, hnsw or ivf-sq8, got {kind!r}")
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index, kind


def build_sparse(chunks: Sequence[Chunk]) -> bm25s.BM25:
    """BM25 over jieba tokens of each chunk's indexed text (context plus cited text)."""
    import bm25s  # scipy and numba, a second and more: only a writer needs them

    corpus = [tokens or [""] for tokens in tokenize_many(c.indexed_text for c in chunks)]
    bm25 = bm25s.BM25()
    bm25.index(corpus, show_progress=False)
    return bm25


def write_generation(
    index_dir: Path,
    documents: Sequence[Document],
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    manifest: dict[str, Any],
    dense_kind: str = "auto",
    ann_threshold: int = 200_000,
    outlines: Mapping[str, Sequence[OutlineNode]] | None = None,
    keep: int = 3,
) -> Path:
    """Write a complete generation and make it live atomically; returns its folder.

    The caller holds ``writer_lock``. The ``keep`` newest generations stay (so ``zhiwen doctor`` has
    somewhere to fall back to), and so does the one just replaced, so a reader that opened it a moment
    ago can finish; only older ones are removed, never one newer than the generation written.
    """
    index_dir = Path(index_dir)
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now % 1 * 1e6):06d}"
    name = f"{GENERATION_PREFIX}{stamp}-{uuid.uuid4().hex[:6]}"
    final = index_dir / name
    with atomic_target(final, durable=True) as tmp:
        tmp.mkdir(parents=True)
        _write_store(tmp / "store.sqlite", documents, chunks, outlines or {})
        dense, dense_kind = build_dense(vectors, dense_kind, ann_threshold)
        faiss.write_index(dense, str(tmp / "dense.faiss"))
        build_sparse(chunks).save(str(tmp / "bm25"), show_progress=False)
        full = {
            **manifest,
            "schema_version": SCHEMA_VERSION,
            "tokenizer_version": TOKENIZER_VERSION,
            "dense_index": dense_kind,
            "dim": int(vectors.shape[1]),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "counts": {"documents": len(documents), "chunks": len(chunks)},
            "documents": {d.doc_id: d.content_hash for d in documents},
        }
        (tmp / "manifest.json").write_text(json.dumps(full, ensure_ascii=False, indent=1), encoding="utf-8")
    try:
        previous = current_generation(index_dir)
    except IndexStateError:  # a broken pointer is replaced; the generations it failed to name are kept
        previous = None
    atomic_write_text(index_dir / CURRENT, name, durable=True)
    newest = generations(index_dir)
    kept = {g.name for g in newest[: max(1, keep)]} | {name, previous.name if previous else ""}
    for old in newest:
        if old.name not in kept and old.name < name:
            remove(old)
    return final


def _write_store(
    path: Path,
    documents: Sequence[Document],
    chunks: Sequence[Chunk],
    outlines: Mapping[str, Sequence[OutlineNode]],
) -> None:
    db = sqlite3.connect(path)
    with db:
        db.executescript(
            """
            CREATE TABLE documents (doc_id TEXT PRIMARY KEY, title TEXT, text TEXT, content_hash TEXT, meta TEXT);
            CREATE TABLE chunks (row INTEGER PRIMARY KEY, chunk_id TEXT UNIQUE, doc_id TEXT, title TEXT,
                                 text TEXT, start INTEGER, end_ INTEGER, context TEXT, kind TEXT, meta TEXT,
                                 role TEXT);
            CREATE INDEX chunks_doc ON chunks(doc_id);
            CREATE TABLE outline (doc_id TEXT, idx INTEGER, parent INTEGER, kind TEXT, label TEXT,
                                  start INTEGER, end_ INTEGER, head_start INTEGER, head_end INTEGER,
                                  role TEXT, position INTEGER, count INTEGER, PRIMARY KEY (doc_id, idx));
            """
        )
        db.executemany(
            "INSERT INTO outline VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (doc_id, n.index, n.parent, n.kind, n.label, n.start, n.end, n.head_start, n.head_end)
                + (n.role, n.position, n.count)
                for doc_id, nodes in outlines.items()
                for n in nodes
            ],
        )
        db.executemany(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?)",
            [
                (d.doc_id, d.title, d.text, d.content_hash, json.dumps(d.meta, ensure_ascii=False))
                for d in documents
            ],
        )
        db.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    c.chunk_id,
                    c.doc_id,
                    c.title,
                    c.text,
                    c.start,
                    c.end,
                    c.context,
                    c.kind,
                    json.dumps(c.meta, ensure_ascii=False),
                    c.meta.get("role", ""),
                )
                for i, c in enumerate(chunks)
            ],
        )
    db.close()


@dataclass
class DoctorReport:
    """What ``doctor`` found: the live generation's problems, the fallback it chose, what it cleaned."""

    index_dir: Path
    live: str = ""  # the generation CURRENT named, when it named one
    problems: list[str] = field(default_factory=list)  # of the pointer and the live generation
    fallback: str = ""  # the newest healthy generation CURRENT now names (or would, with fix=False)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # newer generations that were not healthy

    @property
    def healthy(self) -> bool:
        return not self.problems

    def lines(self, fixed: bool) -> list[str]:
        """The report for people, one finding per line."""
        if self.healthy:
            return [f"{self.index_dir}: {self.live} is healthy (every file reads back and the counts agree)"]
        lines = [f"problem: {p}" for p in self.problems]
        lines += [f"skipped {name}: {'; '.join(found)}" for name, found in self.skipped.items()]
        if self.fallback:
            verb = "now points at" if fixed else "would point at (without --dry-run)"
            lines.append(f"{CURRENT} {verb} {self.fallback}, the newest healthy generation")
        else:
            lines.append(
                "no healthy generation left; rebuild from the stored texts with `zhiwen ingest --rebuild`"
                " or re-ingest the files"
            )
        return lines


def doctor(index_dir: Path, fix: bool = True) -> DoctorReport:
    """Check every file of the live generation; when it is broken, point ``CURRENT`` at the newest
    healthy generation (with ``fix``, which also removes stale temporaries under the writer lock)."""
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        raise IndexStateError(f"no index at {index_dir}; build one with `zhiwen ingest`")
    report = DoctorReport(index_dir)
    # Only a repair writes, so a check (``fix=False``) also works on an index the user may not write.
    with writer_lock(index_dir) if fix else nullcontext():
        try:
            live = current_generation(index_dir)
        except IndexStateError as exc:
            live, report.problems = None, [str(exc)]
        if live is None and not report.problems:
            raise IndexStateError(f"no index at {index_dir}; build one with `zhiwen ingest`")
        if live is not None:
            report.live = live.name
            report.problems = generation_problems(live)
        if report.healthy:
            return report
        for gen in generations(index_dir):
            if live is not None and gen.name == live.name:
                continue
            found = generation_problems(gen)
            if not found:
                report.fallback = gen.name
                break
            report.skipped[gen.name] = found
        if report.fallback and fix:
            atomic_write_text(index_dir / CURRENT, report.fallback, durable=True)
    return report
