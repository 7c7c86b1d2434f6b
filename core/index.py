"""The index folder and how to read it: one immutable generation per ingest, switched atomically.

Layout of ``INDEX_DIR``::

    CURRENT                     name of the live generation (replaced atomically)
    gen-<stamp>/manifest.json   schema, embedding model and dimension, chunker, counts, content hashes
    gen-<stamp>/store.sqlite    documents (full text), chunks (row order = vector id = BM25 doc id, with
                                their section role) and each document's outline
    gen-<stamp>/dense.faiss     FAISS inner-product index over normalised chunk embeddings
    gen-<stamp>/bm25/           bm25s arrays (.npy, loaded with allow_pickle=False) and vocabulary (JSON)

Reading needs neither bm25s nor scipy (``SparseIndex`` scores the arrays bm25s wrote with plain numpy:
importing bm25s pulls in scipy and numba, a second of start-up), and FAISS is imported on first use.

The writer (``zhiwen.ingest.store``) builds a complete new generation, renames it into place, then points
``CURRENT`` at it. Readers hold the generation they opened, so a crash or ``kill -9`` mid-ingest leaves
the previous index fully usable, and nothing is ever loaded with pickle. ``index_signature`` says which
manifest values must match the settings for an index to be searched; it reads no model file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .encoders import encoder_for
from .milvus import MilvusGeneration, MilvusStateError, connect, read_state
from .model import model_id_for
from .settings import Settings
from .types import Chunk, Document, OutlineNode
from .vocab import CHUNKER_VERSIONS

if TYPE_CHECKING:
    import faiss

SCHEMA_VERSION = 2  # 2: the outline table and the chunks' role column
TOKENIZER_VERSION = "jieba-search-1"
CURRENT = "CURRENT"


class IndexStateError(RuntimeError):
    """The index folder is missing, incomplete or was built with other settings; says what to do."""


def index_signature(settings: Settings) -> dict[str, str]:
    """Manifest values that must match for an index to be searched with these settings."""
    chunker = (
        f"{settings.chunker}/{CHUNKER_VERSIONS[settings.chunker]}"
        f"/{settings.max_chunk_chars}/{settings.min_chunk_chars}"
    )
    return {"embed_model": model_id_for(settings), "encoder": encoder_for(settings), "chunker": chunker}


@dataclass
class Generation:
    """One opened, immutable index generation.

    The dense index and the BM25 arrays load on first use, memory-mapped where the format allows, so a
    command that needs only one of them (or neither) does not pay for the other.
    """

    path: Path
    manifest: dict[str, Any]
    db: sqlite3.Connection
    doc_meta: dict[str, dict[str, Any]]  # metadata of each document, for filters
    mentioned: dict[str, bool] = field(default_factory=dict)  # cache of ``mentions``
    outlines: dict[str, list[OutlineNode]] = field(default_factory=dict)  # cache of ``outline``
    readers: int = 0  # searches holding it now (``Retriever.pinned``); it closes when the last one ends

    @cached_property
    def dense(self) -> faiss.Index:
        """The FAISS index; flat indexes are memory-mapped, so opening costs no copy of the vectors."""
        return read_dense(self.path)

    @cached_property
    def sparse(self) -> SparseIndex:
        """The BM25 index: score arrays memory-mapped, vocabulary read from JSON."""
        return read_sparse(self.path)

    @cached_property
    def doc_ids(self) -> np.ndarray:
        """The doc_id of each chunk row, for filters."""
        return np.array(
            [r[0] for r in self.db.execute("SELECT doc_id FROM chunks ORDER BY row")], dtype=object
        )

    @cached_property
    def roles(self) -> np.ndarray:
        """The section role of each chunk row (overview, done, problem, plan), for filters."""
        return np.array([r[0] for r in self.db.execute("SELECT role FROM chunks ORDER BY row")], dtype=object)

    def chunk(self, row: int) -> Chunk:
        return _row_to_chunk(
            self.db.execute(f"SELECT {_CHUNK_COLS} FROM chunks WHERE row = ?", (int(row),)).fetchone()
        )

    def texts(self, rows: Iterable[int]) -> dict[int, str]:
        """The cited text of each of ``rows``, in one query (fusion reads a hundred candidates per search)."""
        rows = [int(r) for r in rows]
        found: dict[int, str] = {}
        for start in range(0, len(rows), 500):  # SQLite's limit on variables per statement
            batch = rows[start : start + 500]
            marks = ",".join("?" * len(batch))
            found.update(self.db.execute(f"SELECT row, text FROM chunks WHERE row IN ({marks})", batch))
        return found

    def chunk_by_id(self, chunk_id: str) -> Chunk | None:
        """The chunk with id ``chunk_id``, or None when this generation has none."""
        row = self.db.execute(f"SELECT {_CHUNK_COLS} FROM chunks WHERE chunk_id = ?", (chunk_id,)).fetchone()
        return _row_to_chunk(row) if row else None

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

    def outline(self, doc_id: str) -> list[OutlineNode]:
        """The outline of document ``doc_id`` (empty for an unknown id), in reading order (cached)."""
        if doc_id not in self.outlines:
            rows = self.db.execute(
                "SELECT idx, parent, kind, label, start, end_, head_start, head_end, role, position, count "
                "FROM outline WHERE doc_id = ? ORDER BY idx",
                (doc_id,),
            )
            self.outlines[doc_id] = [OutlineNode(*row) for row in rows]
        return self.outlines[doc_id]

    def mentions(self, term: str) -> bool:
        """Whether any stored document's title or text contains ``term`` verbatim (cached)."""
        if term not in self.mentioned:
            row = self.db.execute(
                "SELECT 1 FROM documents WHERE instr(text, ?) > 0 OR instr(title, ?) > 0 LIMIT 1",
                (term, term),
            ).fetchone()
            self.mentioned[term] = row is not None
        return self.mentioned[term]

    def passages_with(self, term: str, limit: int = 50) -> list[str]:
        """Up to ``limit`` documents' texts and titles that contain ``term`` verbatim, to see how it is used."""
        rows = self.db.execute(
            "SELECT text, title FROM documents WHERE instr(text, ?) > 0 OR instr(title, ?) > 0 LIMIT ?",
            (term, term, limit),
        )
        return [part for row in rows for part in row if term in part]

    def candidates(
        self,
        tokens: Sequence[str],
        vector: np.ndarray | None,
        depth: int,
        filters: dict[str, list[str]] | None = None,
    ) -> tuple[dict[int, float], dict[int, float]]:
        """Raw BM25 scores for ``tokens`` (none: no BM25 search) and inner products with ``vector`` (None:
        no dense search) of the top ``depth`` rows whose document and role pass ``filters``."""
        allowed = self.allowed_rows(filters) if filters else None
        if allowed is not None and allowed.size == 0:
            return {}, {}
        bm25 = self._bm25_scores(tokens, depth, allowed) if tokens else {}
        dense = self._dense_scores(vector, depth, allowed) if vector is not None else {}
        return bm25, dense

    def _bm25_scores(self, tokens: Sequence[str], depth: int, allowed: np.ndarray | None) -> dict[int, float]:
        ids = self.sparse.token_ids(list(tokens))
        if not ids:
            return {}
        scores = self.sparse.scores(ids)
        if allowed is not None:
            masked = np.zeros_like(scores)
            masked[allowed] = scores[allowed]
            scores = masked
        top = _top(scores, depth)
        return {int(r): float(scores[r]) for r in top if scores[r] > 0}

    def _dense_scores(self, vector: np.ndarray, depth: int, allowed: np.ndarray | None) -> dict[int, float]:
        if self.dense.ntotal == 0:
            return {}
        depth = min(depth, self.dense.ntotal)
        params = None
        if allowed is not None:
            import faiss  # imported on first use: a BM25-only command never loads it

            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed.astype(np.int64)))
            depth = min(depth, allowed.size)
        scores, rows = self.dense.search(vector.reshape(1, -1).astype(np.float32), depth, params=params)
        return {int(r): float(s) for s, r in zip(scores[0], rows[0]) if r >= 0}

    def allowed_rows(self, filters: dict[str, list[str]]) -> np.ndarray:
        """The rows whose document matches every filter (key -> accepted values) and whose role is one
        of ``filters["role"]`` when given."""
        wanted = dict(filters)
        role = wanted.pop("role", None)  # a chunk's own: the part of the report it is in
        docs = [
            doc_id
            for doc_id, meta in self.doc_meta.items()
            if all(_matches({**meta, "doc_id": doc_id}.get(key), values) for key, values in wanted.items())
        ]
        keep = np.isin(self.doc_ids, np.array(docs, dtype=object))
        if role is not None:
            keep &= np.isin(self.roles, np.array(role, dtype=object))
        return np.flatnonzero(keep)

    def close(self) -> None:
        """Close the database and drop the memory maps, so no handle on the generation's files stays."""
        self.db.close()
        for name in ("dense", "sparse", "doc_ids", "roles"):
            self.__dict__.pop(name, None)


def _matches(actual: Any, values: list[str]) -> bool:
    return actual is not None and str(actual) in values


def _top(scores: np.ndarray, depth: int) -> np.ndarray:
    if scores.size <= depth:
        return np.argsort(-scores)
    top = np.argpartition(-scores, depth)[:depth]
    return top[np.argsort(-scores[top])]


def read_dense(gen: Path) -> faiss.Index:
    """The dense index of generation ``gen``; a damaged file is an ``IndexStateError`` naming it."""
    import faiss

    path = str(gen / "dense.faiss")
    try:
        try:
            return faiss.read_index(path, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:  # index kinds FAISS cannot map are read into memory
            return faiss.read_index(path)
    except RuntimeError as exc:
        raise _damaged(gen, "dense.faiss", exc) from None


class SparseIndex:
    """A BM25 index as bm25s saves it, read without bm25s: per-token score columns (CSC) and the vocabulary.

    bm25s stores, for each token, the BM25 score it adds to each chunk that holds it, so a query's scores
    are sums of columns; this is what ``bm25s.BM25.get_scores_from_ids`` computes, for the ``lucene``
    method Zhiwen writes (no non-occurrence term).
    """

    def __init__(self, folder: Path) -> None:
        params = json.loads((folder / "params.index.json").read_text(encoding="utf-8"))
        if params.get("method", "lucene") != "lucene" or (folder / "nonoccurrence_array.index.npy").exists():
            raise ValueError(f"BM25 method {params.get('method')!r} is not lucene")
        self.num_docs = int(params["num_docs"])
        self.dtype = np.dtype(params.get("dtype", "float32"))
        self.vocab: dict[str, int] = json.loads((folder / "vocab.index.json").read_text(encoding="utf-8"))
        self.vocab.pop("", None)  # bm25s's stand-in for an empty chunk: never a query word
        arrays = {
            name: np.load(folder / f"{name}.csc.index.npy", mmap_mode="r", allow_pickle=False)
            for name in ("data", "indices", "indptr")
        }
        self.data, self.indices, self.indptr = arrays["data"], arrays["indices"], arrays["indptr"]
        if max(self.vocab.values(), default=-1) >= len(self.indptr) - 1:
            raise ValueError(f"{len(self.indptr) - 1} score columns for {len(self.vocab)} tokens")

    def token_ids(self, tokens: Sequence[str]) -> list[int]:
        """The ids of ``tokens`` that the index knows, repeats kept (a repeated word counts twice)."""
        return [self.vocab[t] for t in tokens if t in self.vocab]

    def scores(self, token_ids: Sequence[int]) -> np.ndarray:
        """The BM25 score of every chunk for a query of these token ids."""
        scores = np.zeros(self.num_docs, dtype=self.dtype)
        for token in token_ids:
            start, end = self.indptr[token], self.indptr[token + 1]
            np.add.at(scores, self.indices[start:end], self.data[start:end])
        return scores


def read_sparse(gen: Path) -> SparseIndex:
    """The BM25 index of generation ``gen``; a damaged file is an ``IndexStateError`` naming it."""
    try:
        return SparseIndex(gen / "bm25")
    except (OSError, ValueError, KeyError) as exc:
        raise _damaged(gen, "bm25/", exc) from None


def _damaged(gen: Path, part: str, exc: BaseException) -> IndexStateError:
    reason = " ".join(str(exc).split())[:200]
    return IndexStateError(
        f"{gen / part}: damaged or missing ({reason}); run `zhiwen doctor --index {gen.parent}`"
    )


_CHUNK_COLS = "chunk_id, doc_id, title, text, start, end_, context, kind, meta"


def _row_to_chunk(row: tuple) -> Chunk:
    cid, doc_id, title, text, start, end, context, kind, meta = row
    return Chunk(cid, doc_id, title, text, start, end, context, kind, json.loads(meta))


GENERATION_PREFIX = "gen-"


def generations(index_dir: Path) -> list[Path]:
    """The generation folders of an index, newest first (their names start with a timestamp)."""
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        return []
    found = [p for p in index_dir.iterdir() if p.name.startswith(GENERATION_PREFIX) and p.is_dir()]
    return sorted(found, key=lambda p: p.name, reverse=True)


def current_generation(index_dir: Path) -> Path | None:
    """The live generation folder, or None when the index has never been written.

    A pointer that is unreadable, names no generation folder, or is missing while generations exist is
    an ``IndexStateError`` that says to run ``zhiwen doctor``, which falls back to the newest healthy one.
    """
    index_dir = Path(index_dir)
    pointer = index_dir / CURRENT
    doctor = f"run `zhiwen doctor --index {index_dir}`"
    if not pointer.exists():
        if generations(index_dir):
            raise IndexStateError(f"{pointer}: missing, but generations exist; {doctor}")
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexStateError(f"{pointer}: unreadable ({exc}); {doctor}") from None
    path = index_dir / name
    if not name.startswith(GENERATION_PREFIX) or "/" in name or not path.is_dir():
        raise IndexStateError(f"{pointer}: holds {name[:60]!r}, not a generation folder; {doctor}")
    if not (path / "manifest.json").exists():
        raise IndexStateError(f"{index_dir}: {CURRENT} points at {path.name}, which is incomplete; {doctor}")
    return path


def pointer_stamp(index_dir: Path) -> tuple[int, int] | None:
    """When and as which file ``CURRENT`` was last written (mtime, inode): a cheap test for a new
    generation, since every writer replaces the pointer. None when there is no pointer."""
    try:
        stat = (Path(index_dir) / CURRENT).stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_ino


def load_manifest(gen: Path) -> dict[str, Any]:
    """The manifest of generation ``gen``; unreadable or not a JSON object is an ``IndexStateError``."""
    path = Path(gen) / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _damaged(Path(gen), "manifest.json", exc) from None
    if not isinstance(manifest, dict):
        raise _damaged(Path(gen), "manifest.json", ValueError("not a JSON object"))
    return manifest


def read_manifest(index_dir: Path) -> dict[str, Any] | None:
    gen = current_generation(index_dir)
    return load_manifest(gen) if gen else None


def _connect(gen: Path) -> sqlite3.Connection:
    """A read-only connection to the generation's store; a missing or damaged one names the file."""
    path = gen / "store.sqlite"
    if not path.is_file():
        raise _damaged(gen, "store.sqlite", FileNotFoundError("no such file"))
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        db.execute("SELECT count(*) FROM documents").fetchone()
    except sqlite3.Error as exc:
        raise _damaged(gen, "store.sqlite", exc) from None
    return db


def check_signature(manifest: dict[str, Any], expect: dict[str, str] | None, where: str, flag: str) -> None:
    """Refuse an index (``where`` names it) built with another schema, tokenizer, model or chunker, with
    the command that rebuilds it (``flag`` says which index)."""
    checks = {"schema_version": SCHEMA_VERSION, "tokenizer_version": TOKENIZER_VERSION, **(expect or {})}
    for key, want in checks.items():
        if manifest.get(key) != want:
            raise IndexStateError(
                f"{where} was built with {key}={manifest.get(key)!r}, but the current settings "
                f"use {want!r}; re-ingest with `zhiwen ingest --rebuild{' ' + flag if flag else ''}`"
            )


def open_generation(index_dir: Path, expect: dict[str, str] | None = None) -> Generation:
    """Open the live generation; ``expect`` maps manifest keys to required values (model, chunker).

    Raises IndexStateError with a message that says to re-ingest when the index is missing or was built
    with a different embedding model, chunker or schema, and to run ``zhiwen doctor`` when it is damaged.
    """
    index_dir = Path(index_dir)
    gen = current_generation(index_dir)
    if gen is None:
        raise IndexStateError(
            f"no index at {index_dir}; build one with `zhiwen ingest [PATH ...] --index {index_dir}`"
        )
    manifest = load_manifest(gen)
    check_signature(manifest, expect, f"index at {index_dir}", f"--index {index_dir}")
    db = _connect(gen)
    doc_meta = {d: json.loads(m) for d, m in db.execute("SELECT doc_id, meta FROM documents")}
    return Generation(gen, manifest, db, doc_meta)


def generation_problems(gen: Path) -> list[str]:
    """What is wrong with generation folder ``gen``, one line each; empty when every file reads back.

    Checks the manifest, the store (SQLite's own quick check and the counts the manifest records), the
    dense index (vector count and dimension) and the BM25 arrays (one row per chunk).
    """
    try:
        manifest = load_manifest(gen)
        counts = manifest.get("counts") or {}
        db = _connect(gen)
    except IndexStateError as exc:
        return [str(exc)]
    problems: list[str] = []
    try:
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            problems.append(f"{gen / 'store.sqlite'}: fails SQLite's integrity check")
        docs = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    except sqlite3.Error as exc:
        problems.append(str(_damaged(gen, "store.sqlite", exc)))
        docs = chunks = -1
    finally:
        db.close()
    if (docs, chunks) != (counts.get("documents"), counts.get("chunks")):
        problems.append(
            f"{gen / 'store.sqlite'}: holds {docs} documents, {chunks} chunks; manifest says {counts}"
        )
    try:
        dense = read_dense(gen)
        if dense.ntotal != chunks or dense.d != manifest.get("dim"):
            problems.append(f"{gen / 'dense.faiss'}: {dense.ntotal} vectors of {dense.d}, expected {chunks}")
        del dense
        sparse = read_sparse(gen)
        rows = sparse.num_docs
        if rows != chunks:
            problems.append(f"{gen / 'bm25'}: {rows} rows, expected {chunks}")
    except IndexStateError as exc:
        problems.append(str(exc))
    return problems


def stored_documents(index_dir: Path) -> tuple[list[Document], Path | None]:
    """The stored documents, whatever schema, settings or damage to the derived files (for rebuilding),
    and the generation they came from: the live one when its store reads, else the newest that does."""
    index_dir = Path(index_dir)
    try:
        live = current_generation(index_dir)
    except IndexStateError:
        live = None
    candidates = [live] if live else []
    candidates += [g for g in generations(index_dir) if g != live]
    for gen in candidates:
        try:
            db = _connect(gen)
            try:
                rows = db.execute(
                    "SELECT doc_id, title, text, meta FROM documents ORDER BY doc_id"
                ).fetchall()
            finally:
                db.close()
        except (IndexStateError, sqlite3.Error):
            continue
        return [Document(d, t, x, json.loads(m)) for d, t, x, m in rows], gen
    return [], None


# The backend is chosen here, from the settings, for every reader: FAISS + SQLite files or Milvus.


def describe_index(settings: Settings) -> str:
    """Where the index of ``settings`` lives, for messages: the folder, or the Milvus collection."""
    if settings.backend == "milvus":
        return f"Milvus collection {settings.collection} at {settings.milvus_address}"
    return f"index at {settings.index_dir}"


def live_manifest(settings: Settings) -> dict[str, Any] | None:
    """The manifest of the live index (for Milvus, its state record), or None when there is none."""
    if settings.backend == "milvus":
        return _milvus_call(settings, lambda: read_state(connect(settings), settings.collection))
    return read_manifest(settings.index_dir)


def live_stamp(settings: Settings) -> Any:
    """A cheap value that changes whenever an ingest switches the live index (the ``CURRENT`` pointer's
    stat, or Milvus's live generation number): readers compare it on every request."""
    if settings.backend == "milvus":
        manifest = live_manifest(settings)
        return manifest and manifest.get("live")
    return pointer_stamp(settings.index_dir)


def stored_texts(settings: Settings) -> tuple[list[Document], Path | None]:
    """``stored_documents`` for whichever backend ``settings`` select: every stored document, whatever
    model or chunker built the index, and the generation it came from (for rebuilding)."""
    if settings.backend != "milvus":
        return stored_documents(settings.index_dir)
    manifest = live_manifest(settings)
    if manifest is None:
        return [], None
    gen = _milvus_call(settings, lambda: MilvusGeneration(connect(settings), settings.collection, manifest))
    return _milvus_call(settings, gen.documents), gen.path


def open_live(settings: Settings, expect: dict[str, str] | None = None) -> Generation | MilvusGeneration:
    """Open the live generation of whichever backend ``settings`` select (a ``Generation`` or a
    ``MilvusGeneration``); ``expect`` as for ``open_generation``."""
    if settings.backend != "milvus":
        return open_generation(settings.index_dir, expect)
    manifest = live_manifest(settings)
    where = describe_index(settings)
    if manifest is None:
        raise IndexStateError(f"no {where}; build one with `zhiwen ingest [PATH ...]`")
    check_signature(manifest, expect, where, "")
    return _milvus_call(settings, lambda: MilvusGeneration(connect(settings), settings.collection, manifest))


def _milvus_call(settings: Settings, call: Callable[[], Any]) -> Any:
    """Run ``call``, turning Milvus's own errors into one ``IndexStateError`` line that names the server."""
    try:
        return call()
    except MilvusStateError as exc:
        raise IndexStateError(str(exc)) from None
    except Exception as exc:
        if type(exc).__module__.startswith("pymilvus"):
            reason = " ".join(str(exc).split())[:200]
            raise IndexStateError(f"{describe_index(settings)}: {reason}") from None
        raise
