"""A knowledge base in Milvus (a Milvus Lite file, a standalone server or a cluster), read like a generation.

Two collections per knowledge base (``name`` is ``Settings.collection``)::

    <name>        one row per chunk and generation: row (INT64 primary key, what ``Candidates`` map),
                  chunk_id, doc_id, gen_from, gen_to, title, text (the cited text), context, kind, start,
                  end, meta (JSON), the filter fields issuer, year, doc_type and role (scalar indexes),
                  terms (Zhiwen's own jieba tokens, each written as an opaque ASCII term, see ``terms``,
                  which Milvus's BM25 function turns into ``sparse``) and dense (the e5 vector, HNSW with
                  COSINE)
    <name>_docs   each document's full text and outline, in pieces of at most ``PIECE`` characters (a
                  VARCHAR holds 65,535 bytes), and one ``state`` row: schema version, model and chunker
                  signature, the live generation and the next free row number

Full texts live in Milvus rather than beside it, so every ``zhiwen serve`` that reaches the cluster can
cite exactly and show 查看原文 without a shared disk.

Generations make an ingest atomic without transactions: a row is visible at generation G when
``gen_from <= G < gen_to``. An ingest inserts its rows with ``gen_from = live + 1``, marks the rows it
replaces with ``gen_to = live + 1``, then upserts the one ``state`` row naming the new live generation
(the switch), and only then deletes rows no longer visible. Readers filter every query on the live
generation they read from ``state``, so rows of an unfinished ingest are never seen; the next writer
finds them (``gen_from > live``, or ``live < gen_to < OPEN``) and undoes them first
(``zhiwen.ingest.milvus_store``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .settings import Settings
from .types import Chunk, Document, OutlineNode

OPEN = 2**62  # gen_to of a row no ingest has replaced yet
PIECE = 16_000  # characters of a document per row: 48,000 bytes of Chinese, under VARCHAR's 65,535
OVERLAP = 200  # characters of the next piece each text piece repeats, so a term across a cut is found
STATE_KEY = "state"
CHUNK_FIELDS = ["row", "chunk_id", "doc_id", "title", "text", "start", "end", "context", "kind", "meta"]
FILTER_FIELDS = ("issuer", "year", "doc_type", "doc_id", "role")  # scalar fields, indexed
# The dense_index setting -> the Milvus index type built for the dense field.
DENSE_INDEX = {"auto": "HNSW", "hnsw": "HNSW", "flat": "FLAT", "ivf-sq8": "IVF_SQ8"}
# Milvus index type of the dense field -> (build parameters, search parameters). ef and nprobe as measured
# on Milvus Lite, 6,459 chunks (`zhiwen eval bench milvus-index --reports`): HNSW's recall@10 against
# exact search is 0.965 at ef 128, 0.997 at ef 512 in the same time. IVF's depends on vectors per list:
# 0.91 at nprobe 64 of 1,024 lists here; IVF_FLAT and HNSW_SQ are measured, not settings.
MILVUS_INDEXES = {
    "FLAT": ({}, {}),
    "HNSW": ({"M": 32, "efConstruction": 80}, {"ef": 512}),
    "HNSW_SQ": ({"M": 32, "efConstruction": 80, "sq_type": "SQ8"}, {"ef": 512}),
    "IVF_FLAT": ({"nlist": 1024}, {"nprobe": 64}),
    "IVF_SQ8": ({"nlist": 1024}, {"nprobe": 64}),
}
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}  # bm25s's defaults, so both backends score alike
_PAGE = 1000  # rows per query page


class MilvusStateError(RuntimeError):
    """Milvus is unreachable, the extra is missing, or the collection is not a Zhiwen index."""


_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def connect(settings: Settings) -> Any:
    """The ``MilvusClient`` for ``settings`` (one per address and token in a process, as Milvus Lite
    runs one local server per file). Missing pymilvus or an unreachable server is a ``MilvusStateError``."""
    key = (settings.milvus_address, settings.milvus_token)
    with _clients_lock:
        if key not in _clients:
            try:
                from pymilvus import MilvusClient
            except ImportError:
                raise MilvusStateError(
                    "backend = milvus needs pymilvus and milvus-lite: pip install -e '.[milvus]'"
                ) from None
            if not settings.milvus_uri:
                Path(settings.index_dir).mkdir(parents=True, exist_ok=True)
            try:
                _clients[key] = MilvusClient(uri=settings.milvus_address, token=settings.milvus_token)
            except Exception as exc:  # noqa: BLE001 - pymilvus raises several kinds; one line for all
                raise MilvusStateError(
                    f"milvus_uri {settings.milvus_address}: cannot connect ({_reason(exc)})"
                ) from None
        return _clients[key]


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def terms(tokens: Sequence[str]) -> str:
    """Zhiwen's BM25 tokens as Milvus's ``standard`` tokenizer will keep them: one ASCII word each.

    Milvus (Lite) offers the ``standard`` and ``jieba`` tokenizers only, and its jieba has neither
    Zhiwen's domain dictionary and stopwords nor jieba's search-mode sub-words, so it would cut other
    words than the FAISS backend's BM25. Zhiwen tokenises instead and writes each token as ``w`` plus 16
    hex digits of its hash: Milvus then counts exactly the same terms as bm25s, and both rank alike.
    """
    return " ".join("w" + hashlib.blake2b(t.encode(), digest_size=8).hexdigest() for t in tokens)


_DOCS_SUFFIX = "_docs"


def docs_collection(name: str) -> str:
    """The companion collection of collection ``name`` that holds texts, outlines and the state."""
    return f"{name}{_DOCS_SUFFIX}"


def read_state(client: Any, name: str) -> dict[str, Any] | None:
    """The ``state`` record of knowledge base ``name`` (its manifest), or None when it was never written."""
    docs = docs_collection(name)
    if not client.has_collection(docs):
        return None
    load(client, name)
    rows = client.get(docs, ids=[STATE_KEY], output_fields=["body"])
    if not rows:
        return None
    try:
        state = json.loads(rows[0]["body"])
    except ValueError as exc:
        raise MilvusStateError(f"collection {docs}: the state row is not JSON ({exc})") from None
    return state if isinstance(state, dict) else None


def load(client: Any, name: str) -> None:
    """Load both collections of knowledge base ``name`` into memory (a restarted Milvus Lite, or a
    server, keeps them released until asked), once per process."""
    for collection in (name, docs_collection(name)):
        if (id(client), collection) not in _loaded and client.has_collection(collection):
            client.load_collection(collection)
            _loaded.add((id(client), collection))


_loaded: set[tuple[int, str]] = set()


def visible(gen: int) -> str:
    """The filter expression for rows that generation ``gen`` holds."""
    return f"gen_from <= {int(gen)} and gen_to > {int(gen)}"


def query_all(client: Any, collection: str, expr: str, fields: Sequence[str]) -> Iterator[dict]:
    """Every row matching ``expr``, a page at a time (one query returns at most 16,384 rows).

    Pages follow the primary key, as pymilvus's own query iterator does (Milvus returns a limited query
    in primary-key order); that iterator is not used because Milvus Lite cannot give it a timestamp.
    """
    key = "key" if collection.endswith(_DOCS_SUFFIX) else "row"
    last: Any = None
    while True:
        where = expr if last is None else f"({expr}) and {key} > {json.dumps(last, ensure_ascii=False)}"
        page = client.query(collection, filter=where, output_fields=[*fields, key], limit=_PAGE)
        yield from sorted(page, key=lambda r: r[key])
        if len(page) < _PAGE:
            return
        last = max(r[key] for r in page)


def literal(value: str | Sequence[str]) -> str:
    """A string or list of strings as a Milvus expression literal (JSON quoting is Milvus's quoting;
    Milvus Lite has no expression templates)."""
    return json.dumps(value if isinstance(value, str) else [str(v) for v in value], ensure_ascii=False)


def filter_expression(filters: Mapping[str, Sequence[str]]) -> str:
    """A Milvus filter expression for already-checked filters (key -> accepted values)."""
    return " and ".join(f"{key} in {literal(values)}" for key, values in filters.items())


def assemble(pieces: Sequence[Mapping[str, Any]]) -> str:
    """A text from its pieces (rows with ``part``, ``body`` and ``own``, the characters that are not
    the overlap with the next piece)."""
    return "".join(p["body"][: p["own"]] for p in sorted(pieces, key=lambda p: p["part"]))


@dataclass
class MilvusGeneration:
    """The live generation of a Milvus knowledge base: what ``core.index.Generation`` answers, read from
    Milvus, plus ``candidates`` (BM25 and dense search inside Milvus, filtered by expressions)."""

    client: Any
    name: str
    manifest: dict[str, Any]
    doc_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    mentioned: dict[str, bool] = field(default_factory=dict)
    outlines: dict[str, list[OutlineNode]] = field(default_factory=dict)
    cached: dict[int, Chunk] = field(default_factory=dict)  # chunks read so far, by row
    readers: int = 0
    dense_params: dict[str, int] = field(default_factory=dict)  # search parameters of the dense index

    def __post_init__(self) -> None:
        self.live = int(self.manifest["live"])
        self.visible = visible(self.live)
        self.docs = docs_collection(self.name)
        self.path = Path(self.name) / f"gen-{self.live}"  # names the generation in `info` and the API
        self.dense_params = self.dense_params or dict(
            MILVUS_INDEXES[self.manifest.get("dense_index", "HNSW")][1]
        )
        heads = query_all(
            self.client, self.docs, f'{self.visible} and kind == "text" and part == 0', ["doc_id", "meta"]
        )
        self.doc_meta = {r["doc_id"]: r["meta"] for r in heads}

    def candidates(
        self,
        tokens: Sequence[str],
        vector: np.ndarray | None,
        depth: int,
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> tuple[dict[int, float], dict[int, float]]:
        """Raw BM25 scores for ``tokens`` (none: no BM25 search) and cosine scores for ``vector`` (None:
        no dense search) of the top ``depth`` rows that pass ``filters``."""
        expr = filter_expression(filters or {})
        expr = f"{self.visible} and {expr}" if expr else self.visible
        # Only row numbers: Milvus Lite fetches output fields of search hits slowly (1.8 s for 100 hits
        # with their texts, 46 ms without, on 1,125 chunks), and ranking reads only the few it keeps.
        common = {"limit": depth, "filter": expr, "output_fields": ["row"]}
        bm25: dict[int, float] = {}
        dense: dict[int, float] = {}
        if tokens:
            found = self.client.search(
                self.name,
                data=[terms(tokens)],
                anns_field="sparse",
                search_params={"metric_type": "BM25", "params": {"drop_ratio_search": 0.0}},
                **common,
            )[0]
            # BM25 scores are never negative; Milvus Lite reports them negated (as a distance), a server not.
            bm25 = {int(h["row"]): abs(float(h["distance"])) for h in found if h["distance"]}
        if vector is not None:
            found = self.client.search(
                self.name,
                data=[np.asarray(vector, dtype=np.float32).ravel().tolist()],
                anns_field="dense",
                search_params={"metric_type": "COSINE", "params": self._dense_search_params(depth)},
                **common,
            )[0]
            dense = {int(h["row"]): float(h["distance"]) for h in found}
        return bm25, dense

    def _dense_search_params(self, depth: int) -> dict[str, int]:
        """The dense index's search parameters; HNSW's ``ef`` must be at least the number of hits asked."""
        params = dict(self.dense_params)
        if "ef" in params:
            params["ef"] = max(params["ef"], depth)
        return params

    def chunk(self, row: int) -> Chunk:
        if row not in self.cached:
            if len(self.cached) > 20_000:  # rows never change within a generation; this bounds memory
                self.cached.clear()
            found = self.client.get(self.name, ids=[int(row)], output_fields=CHUNK_FIELDS)
            if not found:
                raise KeyError(f"row {row} is not in collection {self.name}")
            self.cached[int(row)] = _to_chunk(found[0])
        return self.cached[int(row)]

    def texts(self, rows: Iterable[int]) -> dict[int, str]:
        """The cited text of each of ``rows``, fetching the uncached ones in one request."""
        rows = [int(r) for r in rows]
        missing = [r for r in rows if r not in self.cached]
        if missing:
            if len(self.cached) + len(missing) > 20_000:
                self.cached.clear()
            for found in self.client.get(self.name, ids=missing, output_fields=CHUNK_FIELDS):
                self.cached[int(found["row"])] = _to_chunk(found)
        return {r: self.cached[r].text for r in rows if r in self.cached}

    def chunk_by_id(self, chunk_id: str) -> Chunk | None:
        """The chunk with id ``chunk_id``, or None when this generation has none."""
        rows = self.client.query(
            self.name,
            filter=f"{self.visible} and chunk_id == {literal(chunk_id)}",
            output_fields=CHUNK_FIELDS,
            limit=1,
        )
        return _to_chunk(rows[0]) if rows else None

    def chunks(self, rows: Sequence[int] | None = None) -> list[Chunk]:
        if rows is not None:
            return [self.chunk(r) for r in rows]
        found = sorted(query_all(self.client, self.name, self.visible, CHUNK_FIELDS), key=lambda r: r["row"])
        return [_to_chunk(r) for r in found]

    @cached_property
    def doc_ids(self) -> np.ndarray:
        """The doc_id of each chunk, in row order (for the document list)."""
        found = sorted(
            query_all(self.client, self.name, self.visible, ["row", "doc_id"]), key=lambda r: r["row"]
        )
        return np.array([r["doc_id"] for r in found], dtype=object)

    def rows(self) -> list[int]:
        """The row numbers of this generation's chunks, in order."""
        return sorted(r["row"] for r in query_all(self.client, self.name, self.visible, ["row"]))

    def vectors(self, rows: Sequence[int]) -> np.ndarray:
        """The stored dense vectors of ``rows``, in that order (for migration: nothing is re-embedded)."""
        found: dict[int, list[float]] = {}
        for start in range(0, len(rows), _PAGE):
            batch = [int(r) for r in rows[start : start + _PAGE]]
            for r in self.client.get(self.name, ids=batch, output_fields=["row", "dense"]):
                found[int(r["row"])] = r["dense"]
        return np.array([found[int(r)] for r in rows], dtype=np.float32).reshape(len(rows), -1)

    def _documents(self, expr: str) -> list[Document]:
        pieces: dict[str, list[dict]] = {}
        fields = ["doc_id", "title", "meta", "part", "body", "own"]
        for row in query_all(self.client, self.docs, f'{self.visible} and kind == "text" and {expr}', fields):
            pieces.setdefault(row["doc_id"], []).append(row)
        return [
            Document(doc_id, parts[0]["title"], assemble(parts), parts[0]["meta"])
            for doc_id, parts in sorted(pieces.items())
        ]

    def documents(self) -> list[Document]:
        return self._documents("part >= 0")

    def document(self, doc_id: str) -> Document | None:
        found = self._documents(f"doc_id == {literal(doc_id)}")
        return found[0] if found else None

    def outline(self, doc_id: str) -> list[OutlineNode]:
        """The outline of document ``doc_id`` (empty for an unknown id), in reading order (cached)."""
        if doc_id not in self.outlines:
            pieces = list(
                query_all(
                    self.client,
                    self.docs,
                    f'{self.visible} and kind == "outline" and doc_id == {literal(doc_id)}',
                    ["part", "body", "own"],
                )
            )
            nodes = json.loads(assemble(pieces)) if pieces else []
            self.outlines[doc_id] = [OutlineNode(*node) for node in nodes]
        return self.outlines[doc_id]

    def passages_with(self, term: str, limit: int = 50) -> list[str]:
        """Pieces of up to ``limit`` documents (and their titles) that contain ``term`` verbatim.

        Milvus's ``like`` narrows the search; ``in`` then checks each piece, since ``%`` and ``_`` in a
        term would be wildcards there.
        """
        found: dict[str, list[str]] = {}
        pattern = literal(f"%{term}%")
        for row in query_all(
            self.client,
            self.docs,
            f'{self.visible} and kind == "text" and (body like {pattern} or title like {pattern})',
            ["doc_id", "title", "body"],
        ):
            parts = found.setdefault(row["doc_id"], [])
            parts += [p for p in (row["body"], row["title"]) if term in p and p not in parts]
            if len(found) > limit:
                break
        return [p for parts in list(found.values())[:limit] for p in parts]

    def mentions(self, term: str) -> bool:
        """Whether any stored document's title or text contains ``term`` verbatim (cached)."""
        if term not in self.mentioned:
            self.mentioned[term] = bool(self.passages_with(term, limit=1))
        return self.mentioned[term]

    def close(self) -> None:
        """Drop the caches; the client stays open for the next generation."""
        self.cached.clear()
        self.outlines.clear()


def _to_chunk(row: Mapping[str, Any]) -> Chunk:
    return Chunk(
        row["chunk_id"],
        row["doc_id"],
        row["title"],
        row["text"],
        int(row["start"]),
        int(row["end"]),
        row["context"],
        row["kind"],
        dict(row["meta"] or {}),
    )
