"""Turn text into normalised vectors, remembering every passage vector already computed.

``Embedder`` wraps the encoder the settings name (``core.encoders``: ONNX Runtime int8 by default, no
torch; loaded on first use and shared by every ``Embedder`` of the process) and adds the E5 prompts
from the settings. ``EmbeddingCache`` is a SQLite file keyed by (model id, sha256 of the prompted text), so
re-ingesting unchanged passages costs no model time.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .encoders import OnnxEncoder, TorchEncoder, embedding_id, load_encoder
from .settings import Settings
from .text import sha256_text

_SQL_VARIABLES = 500
QUERY_CACHE_SIZE = 1024


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class EmbeddingCache:
    """Passage vectors in SQLite (WAL mode): float32 bytes keyed by (model id, text key).

    Safe to share between threads of one process and between processes; readers never block the writer.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS embeddings ("
            " model_id TEXT NOT NULL, text_sha256 TEXT NOT NULL, vector BLOB NOT NULL,"
            " PRIMARY KEY (model_id, text_sha256)) WITHOUT ROWID"
        )
        self._db.commit()

    def get_many(self, model_id: str, keys: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys`` for ``model_id``, as {key: float32 vector}."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for batch in _chunks(keys, _SQL_VARIABLES):
                rows = self._db.execute(
                    "SELECT text_sha256, vector FROM embeddings WHERE model_id = ? AND text_sha256 IN "
                    f"({','.join('?' * len(batch))})",
                    [model_id, *batch],
                )
                found.update((key, np.frombuffer(blob, dtype=np.float32)) for key, blob in rows)
        return found

    def put_many(self, model_id: str, items: list[tuple[str, np.ndarray]]) -> None:
        """Store ``(key, vector)`` pairs for ``model_id`` in one transaction."""
        rows = [(model_id, key, np.ascontiguousarray(vec, dtype=np.float32).tobytes()) for key, vec in items]
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings (model_id, text_sha256, vector) VALUES (?, ?, ?)", rows
            )

    def count(self, model_id: str) -> int:
        """How many vectors are cached for ``model_id``."""
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM embeddings WHERE model_id = ?", [model_id])
            return row.fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Embedder:
    """Encode passages and queries with the model named by ``settings.embed_model``.

    ``embedded_count`` counts the texts actually run through the model (cache misses and queries).
    """

    def __init__(self, settings: Settings, cache: EmbeddingCache | None = None) -> None:
        self.settings = settings
        self.model_id = embedding_id(settings)  # model and encoder: the embedding-cache key
        self.cache = cache or EmbeddingCache(settings.cache_dir / "embeddings.sqlite")
        self.embedded_count = 0
        self._model = None
        self._load_lock = threading.Lock()
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._queries_lock = threading.Lock()

    @property
    def model(self) -> OnnxEncoder | TorchEncoder:
        """The loaded encoder (exported or converted if needed on first use)."""
        with self._load_lock:
            if self._model is None:
                self._model = load_encoder(self.settings)
        return self._model

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded yet (it loads on the first encode that needs it)."""
        return self._model is not None

    @property
    def dim(self) -> int:
        return self.model.dim

    def _run(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(texts, self.settings.embed_batch_size)
        self.embedded_count += len(texts)
        return vectors

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Vectors for passages, shape ``(len(texts), dim)``; only texts not in the cache reach the model.

        New vectors are stored batch by batch, so an interrupted run keeps the work already done.
        """
        return self._encode_cached([self.settings.passage_prompt + t for t in texts], progress)

    def encode_fixed_queries(self, texts: list[str]) -> np.ndarray:
        """Vectors for queries that do not change between runs (``Retriever.everyday``'s), shape
        ``(len(texts), dim)``, kept in the embedding cache like passages."""
        return self._encode_cached([self.settings.query_prompt + t for t in texts])

    def _encode_cached(self, prompted: list[str], progress: bool = False) -> np.ndarray:
        keys = [sha256_text(p) for p in prompted]  # the prompt is part of the key
        known = self.cache.get_many(self.model_id, list(dict.fromkeys(keys)))
        missing = {key: text for key, text in zip(keys, prompted, strict=True) if key not in known}
        # Shortest first: each batch holds texts of similar length, so little of it is padding.
        missing = dict(sorted(missing.items(), key=lambda item: len(item[1])))
        batch_size = self.settings.embed_batch_size
        with tqdm(total=len(missing), desc="embedding", unit="passage", disable=not progress) as bar:
            for batch in _chunks(list(missing.items()), batch_size):
                vectors = self._run([text for _, text in batch])
                new = [(key, vec) for (key, _), vec in zip(batch, vectors, strict=True)]
                self.cache.put_many(self.model_id, new)
                known.update(new)
                bar.update(len(batch))
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([known[key] for key in keys]).astype(np.float32, copy=False)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Vectors for search queries (not cached), shape ``(len(texts), dim)``."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._run([self.settings.query_prompt + t for t in texts])

    def encode_query(self, text: str) -> np.ndarray:
        """The vector of one query, shape ``(dim,)`` (read-only).

        The last ``QUERY_CACHE_SIZE`` queries are remembered: a question searched again (another
        strategy, another chunker's index, a repeated question) costs no model time.
        """
        with self._queries_lock:
            if text in self._queries:
                self._queries.move_to_end(text)
                return self._queries[text]
        vector = self.encode_queries([text])[0]
        vector.setflags(write=False)
        with self._queries_lock:
            self._queries[text] = vector
            while len(self._queries) > QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
        return vector
