"""The index folder: one immutable generation per ingest, switched atomically.

Layout of ``INDEX_DIR``::

    CURRENT                 name of the live generation (replaced atomically with os.replace)
    gen-<stamp>/manifest.json   schema, embedding model and dimension, chunker, counts, content hashes
    gen-<stamp>/store.sqlite    documents (full text) and chunks (row order = vector id = BM25 doc id)
    gen-<stamp>/dense.faiss     FAISS inner-product index over normalised chunk embeddings
    gen-<stamp>/bm25/           bm25s arrays (.npy, loaded with allow_pickle=False) and vocabulary (JSON)

A writer builds a complete new generation in a temporary folder, renames it into place, then points
``CURRENT`` at it. Readers hold the generation they opened, so a crash or ``kill -9`` mid-ingest leaves
the previous index fully usable, and nothing is ever loaded with pickle.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bm25s
import faiss
import numpy as np

from .tokenize import tokenize
from .types import Chunk, Document

SCHEMA_VERSION = 1
TOKENIZER_VERSION = "jieba-search-1"
CURRENT = "CURRENT"


class IndexStateError(RuntimeError):
    """The index folder is missing, incomplete or was built with other settings; says what to do."""


@dataclass
class Generation:
    """One opened, immutable index generation."""

    path: Path
    manifest: dict[str, Any]
    db: sqlite3.Connection
    dense: faiss.Index
    sparse: bm25s.BM25
    doc_ids: np.ndarray  # doc_id of each chunk row, for filters
    doc_meta: dict[str, dict[str, Any]]  # metadata of each document, for filters
    mentioned: dict[str, bool] = field(default_factory=dict)  # cache of ``mentions``

    def chunk(self, row: int) -> Chunk:
        return _row_to_chunk(
            self.db.execute(f"SELECT {_CHUNK_COLS} FROM chunks WHERE row = ?", (int(row),)).fetchone()
        )

    def chunks(self, rows: Sequence[int] | None = None) -> list[Chunk]:
        if rows is None:
            cur = self.db.execute(f"SELECT {_CHUNK_COLS} FROM chunks ORDER BY row")
            return [_row_to_chunk(r) for r in cur]
        return [self.chunk(r) for r in rows]

    def documents(self) -> list[Document]:
        cur = self.db.execute("SELECT doc_id, title, text, meta FROM documents ORDER BY doc_id")
        return [Document(d, t, x, json.loads(m)) for d, t, x, m in cur]

    def document(self, doc_id: str) -> Document | None:
        row = self.db.execute(
            "SELECT doc_id, title, text, meta FROM documents WHERE doc_id = ?", (doc_id,)
        ).fetchone()
        return Document(row[0], row[1], row[2], json.loads(row[3])) if row else None

    def mentions(self, term: str) -> bool:
        """Whether any stored document's title or text contains ``term`` verbatim (cached)."""
        if term not in self.mentioned:
            row = self.db.execute(
                "SELECT 1 FROM documents WHERE instr(text, ?) > 0 OR instr(title, ?) > 0 LIMIT 1",
                (term, term),
            ).fetchone()
            self.mentioned[term] = row is not None
        return self.mentioned[term]

    def close(self) -> None:
        self.db.close()


_CHUNK_COLS = "chunk_id, doc_id, title, text, start, end_, context, kind, meta"


def _row_to_chunk(row: tuple) -> Chunk:
    cid, doc_id, title, text, start, end, context, kind, meta = row
    return Chunk(cid, doc_id, title, text, start, end, context, kind, json.loads(meta))


def current_generation(index_dir: Path) -> Path | None:
    """The live generation folder, or None when the index has never been written."""
    pointer = Path(index_dir) / CURRENT
    if not pointer.exists():
        return None
    path = Path(index_dir) / pointer.read_text(encoding="utf-8").strip()
    if not (path / "manifest.json").exists():
        raise IndexStateError(
            f"{index_dir}: {CURRENT} points at {path.name}, which is incomplete; re-run `zhiwen ingest`"
        )
    return path


def read_manifest(index_dir: Path) -> dict[str, Any] | None:
    gen = current_generation(index_dir)
    return json.loads((gen / "manifest.json").read_text(encoding="utf-8")) if gen else None


def open_generation(index_dir: Path, expect: dict[str, str] | None = None) -> Generation:
    """Open the live generation; ``expect`` maps manifest keys to required values (model, chunker).

    Raises IndexStateError with a message that says to re-ingest when the index is missing or was built
    with a different embedding model, chunker or schema.
    """
    index_dir = Path(index_dir)
    gen = current_generation(index_dir)
    if gen is None:
        raise IndexStateError(
            f"no index at {index_dir}; build one with `zhiwen ingest [PATH ...] --index {index_dir}`"
        )
    manifest = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
    checks = {"schema_version": SCHEMA_VERSION, "tokenizer_version": TOKENIZER_VERSION, **(expect or {})}
    for key, want in checks.items():
        if manifest.get(key) != want:
            raise IndexStateError(
                f"index at {index_dir} was built with {key}={manifest.get(key)!r}, but the current settings "
                f"use {want!r}; re-ingest with `zhiwen ingest --rebuild --index {index_dir}`"
            )
    db = sqlite3.connect(f"file:{gen / 'store.sqlite'}?mode=ro", uri=True, check_same_thread=False)
    dense = faiss.read_index(str(gen / "dense.faiss"))
    sparse = bm25s.BM25.load(str(gen / "bm25"), allow_pickle=False, load_vocab=True, mmap=False)
    doc_ids = np.array([r[0] for r in db.execute("SELECT doc_id FROM chunks ORDER BY row")], dtype=object)
    doc_meta = {d: json.loads(m) for d, m in db.execute("SELECT doc_id, meta FROM documents")}
    return Generation(gen, manifest, db, dense, sparse, doc_ids, doc_meta)


@contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    """One writer at a time per index folder (readers never wait)."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexStateError(
                f"{index_dir}: another `zhiwen ingest` is writing this index; wait for it"
            ) from None
        yield


def build_dense(vectors: np.ndarray, kind: str, ann_threshold: int) -> tuple[faiss.Index, str]:
    """An inner-product FAISS index: exact ``flat`` by default, HNSW when asked or above the threshold."""
    dim = vectors.shape[1]
    if kind == "auto":
        kind = "hnsw" if len(vectors) >= ann_threshold else "flat"
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 128
    else:
        raise IndexStateError(f"dense_index must be auto, flat or hnsw, got {kind!r}")
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index, kind


def build_sparse(chunks: Sequence[Chunk]) -> bm25s.BM25:
    """BM25 over jieba tokens of each chunk's indexed text (context plus cited text)."""
    corpus = [tokenize(c.indexed_text) or [""] for c in chunks]
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
) -> Path:
    """Write a complete generation and make it live atomically; returns its folder.

    The caller holds ``writer_lock``. Older generations except the one just replaced are removed, so a
    reader that opened the previous generation a moment ago can still finish.
    """
    index_dir = Path(index_dir)
    name = f"gen-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    tmp = index_dir / f".tmp-{name}"
    tmp.mkdir(parents=True)
    try:
        _write_store(tmp / "store.sqlite", documents, chunks)
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
        _fsync_tree(tmp)
        final = index_dir / name
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    previous = current_generation(index_dir) if (index_dir / CURRENT).exists() else None
    pointer_tmp = index_dir / f".{CURRENT}.{uuid.uuid4().hex[:6]}"
    pointer_tmp.write_text(name, encoding="utf-8")
    _fsync_file(pointer_tmp)
    os.replace(pointer_tmp, index_dir / CURRENT)
    _fsync_file(index_dir)
    keep = {name, previous.name if previous else None}
    for old in index_dir.iterdir():
        if (
            old.is_dir()
            and (old.name.startswith("gen-") or old.name.startswith(".tmp-gen-"))
            and old.name not in keep
        ):
            shutil.rmtree(old, ignore_errors=True)
    return final


def _write_store(path: Path, documents: Sequence[Document], chunks: Sequence[Chunk]) -> None:
    db = sqlite3.connect(path)
    with db:
        db.executescript(
            """
            CREATE TABLE documents (doc_id TEXT PRIMARY KEY, title TEXT, text TEXT, content_hash TEXT, meta TEXT);
            CREATE TABLE chunks (row INTEGER PRIMARY KEY, chunk_id TEXT UNIQUE, doc_id TEXT, title TEXT,
                                 text TEXT, start INTEGER, end_ INTEGER, context TEXT, kind TEXT, meta TEXT);
            CREATE INDEX chunks_doc ON chunks(doc_id);
            """
        )
        db.executemany(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?)",
            [
                (d.doc_id, d.title, d.text, d.content_hash, json.dumps(d.meta, ensure_ascii=False))
                for d in documents
            ],
        )
        db.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                )
                for i, c in enumerate(chunks)
            ],
        )
    db.close()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            _fsync_file(path)
    _fsync_file(folder)
