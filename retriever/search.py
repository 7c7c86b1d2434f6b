"""Search an index: BM25, dense, or both fused, with metadata filters and near-duplicate removal.

The index is opened once and kept; each search checks the ``CURRENT`` pointer's mtime and switches to a
newer generation when one was written, while searches still running keep the one they started on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from zhiwen.core.embed import Embedder
from zhiwen.core.index import (
    Generation,
    current_generation,
    index_signature,
    open_generation,
    pointer_stamp,
)
from zhiwen.core.settings import Settings
from zhiwen.core.text import char_bigrams
from zhiwen.core.tokenize import tokenize
from zhiwen.core.types import Hit
from zhiwen.core.vocab import FILTER_KEYS, STRATEGIES

from .answerability import Gaps, Subject, abbreviated, subjects, uncovered_subject
from .hybrid import FusionParams, fuse
from .intent import understand
from .topics import glossary_from_settings, load_glossary

CANDIDATES = 100
RERANK_DEPTH = 20


@dataclass(frozen=True)
class Candidates:
    """Raw scores of the candidate rows of each search (row -> score); empty when not searched."""

    bm25: dict[int, float]
    dense: dict[int, float]


class Retriever:
    """The plain Python search API used by the CLI, the UI, the LangChain retriever and eval."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        fusion: str | None = None,
        params: FusionParams | None = None,
    ):
        self.settings = settings
        self.embedder = embedder or Embedder(settings)
        self.fusion = fusion or settings.fusion
        self.params = params or FusionParams(dense_weight=settings.dense_weight)
        self._lock = threading.Lock()
        self._gen: Generation | None = None
        self._stamp: tuple[int, int] | None = None  # ``pointer_stamp`` when ``_gen`` was opened
        self._pinned = threading.local()
        self._reranker = None

    @property
    def generation(self) -> Generation:
        """The generation searches read: the one pinned for this thread (``pinned``), else the live one.

        Outside ``pinned`` the reference is only safe for the calling thread's immediate use: a reader
        that may overlap a refresh from another thread pins the generation instead.
        """
        pinned = getattr(self._pinned, "gen", None)
        if pinned is not None:
            return pinned
        gen = self._acquire()
        self._release(gen)
        return gen

    @contextmanager
    def pinned(self) -> Iterator[Generation]:
        """Hold one generation for a whole search or answer, however many generations ingest writes.

        Row numbers, chunk texts and outlines must all come from one generation; the generation stays
        open until its last reader leaves, then it is closed (its files released). Nested uses in one
        thread share the outer one's generation.
        """
        held = getattr(self._pinned, "gen", None)
        if held is not None:
            yield held
            return
        gen = self._acquire()
        self._pinned.gen = gen
        try:
            yield gen
        finally:
            self._pinned.gen = None
            self._release(gen)

    def _acquire(self) -> Generation:
        """The live generation with one more reader; a new ``CURRENT`` (ingest from another process, or
        an upload) is noticed here by its mtime, one ``stat`` per request."""
        index_dir = Path(self.settings.index_dir)
        stamp = pointer_stamp(index_dir)
        with self._lock:
            if self._gen is not None and stamp != self._stamp:
                self._retire()
            if self._gen is None:
                self._gen = open_generation(index_dir, index_signature(self.settings))
                self._stamp = stamp
            self._gen.readers += 1
            return self._gen

    def _release(self, gen: Generation) -> None:
        with self._lock:
            gen.readers -= 1
            if gen.readers == 0 and gen is not self._gen:
                gen.close()

    def _retire(self) -> None:
        """Stop handing out the live generation (the lock is held); close it unless a reader holds it."""
        old, self._gen = self._gen, None
        if old is not None and old.readers == 0:
            old.close()

    def refresh(self) -> bool:
        """Switch to the newest generation if ingest wrote one since; returns True when it changed."""
        latest = current_generation(Path(self.settings.index_dir))
        with self._lock:
            if self._gen is not None and latest == self._gen.path:
                return False
            self._retire()
        return True

    def uncovered_topics(self, question: str) -> list[str]:
        """Glossary terms in ``question`` that no document of the index mentions (see ``topics``).

        In an English question a term in Latin letters ("IPO") proves nothing: the documents are Chinese.
        A term the documents write in short (农信 for 农村信用社) is mentioned.
        """
        glossary = glossary_from_settings(self.settings.glossary)
        generation = self.generation

        def mentions(term: str) -> bool:
            return generation.mentions(term) or abbreviated(term, generation.passages_with)

        missing = glossary.uncovered(question, mentions) if glossary else []
        english = understand(question).english
        return [term for term in missing if not (english and term.isascii())]

    def uncovered_subject(self, question: str) -> Subject | None:
        """The question's most specific subject word when no document uses it (see ``answerability``).

        Aliases come from the configured glossary, or the built-in one when the glossary is off.
        """
        glossary = glossary_from_settings(self.settings.glossary) or load_glossary()
        english = understand(question).english
        return uncovered_subject(question, self.generation.passages_with, glossary, english)

    def gaps(self, question: str) -> Gaps:
        """What the knowledge base lacks for ``question``: its uncovered topics and subject, and its
        subject words for the detail check (see ``answerability.Gaps``)."""
        glossary = glossary_from_settings(self.settings.glossary) or load_glossary()
        words = tuple(s.word for s in subjects(question, glossary, understand(question).english))
        return Gaps(tuple(self.uncovered_topics(question)), self.uncovered_subject(question), words)

    def search(
        self,
        query: str,
        k: int | None = None,
        strategy: str | None = None,
        filters: Mapping[str, Any] | None = None,
        dedupe: bool = True,
    ) -> list[Hit]:
        """The top ``k`` chunks for ``query``; ``strategy`` is bm25, dense or hybrid (the default).

        ``filters`` keeps chunks whose document matches every given key: issuer, year, doc_type, doc_id.
        """
        k = k or self.settings.top_k
        strategy = strategy or self.settings.strategy
        # Row numbers mean something only within one generation: a `refresh` from another thread between
        # the candidate search and ranking must not mix two, so this search keeps the one it started on.
        with self.pinned():
            found = self.candidates(query, strategy, max(CANDIDATES, 4 * k), filters)
            return self.rank(query, found, k, strategy, dedupe)

    def candidates(
        self, query: str, strategy: str, depth: int = CANDIDATES, filters: Mapping[str, Any] | None = None
    ) -> Candidates:
        """The top ``depth`` rows of each search the strategy needs, with their raw scores."""
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        allowed = self._allowed_rows(self.generation, filters)
        if allowed is not None and allowed.size == 0:
            return Candidates({}, {})
        bm25 = self.bm25_scores(query, depth, allowed) if strategy in ("bm25", "hybrid") else {}
        dense = self.dense_scores(query, depth, allowed) if strategy in ("dense", "hybrid") else {}
        return Candidates(bm25, dense)

    def rank(
        self,
        query: str,
        found: Candidates,
        k: int,
        strategy: str,
        dedupe: bool = True,
        fusion: str | None = None,
        params: FusionParams | None = None,
    ) -> list[Hit]:
        """Fuse (for hybrid), optionally rerank, drop near-duplicates and return the top ``k`` hits.

        ``fusion`` and ``params`` override the retriever's own, so eval can sweep them over one set of
        candidates.
        """
        gen = self.generation
        bm25, dense = found.bm25, found.dense
        if strategy == "hybrid":
            method, params = fusion or self.fusion, params or self.params
            if method == "coverage":
                params = replace(params, bm25_coverage=self.bm25_coverage(query, bm25))
            ranked = fused = fuse(method, bm25, dense, params)
        else:
            ranked = fused = bm25 if strategy == "bm25" else dense
        order = sorted(ranked, key=lambda r: (-ranked[r], r))
        if self.settings.reranker:
            ranked = self._rerank(query, order[: max(RERANK_DEPTH, 2 * k)])
            order = sorted(ranked, key=lambda r: (-ranked[r], r))
        hits: list[Hit] = []
        seen: list[set[str]] = []
        for row in order:
            chunk = gen.chunk(row)
            if dedupe and _is_near_duplicate(chunk.text, seen):
                continue
            scores = {"bm25": bm25.get(row, 0.0), "dense": dense.get(row, 0.0)}
            if strategy == "hybrid":
                scores["fused"] = fused[row]
            if self.settings.reranker:
                scores["rerank"] = ranked[row]
            meta = {**gen.doc_meta.get(chunk.doc_id, {}), **chunk.meta}
            hits.append(
                Hit(
                    **vars(chunk) | {"meta": meta},
                    rank=len(hits) + 1,
                    score=float(ranked[row]),
                    scores=scores,
                )
            )
            if len(hits) == k:
                break
        return hits

    def bm25_coverage(self, query: str, bm25: Mapping[int, float]) -> float:
        """The share of the question's words that BM25's best passage contains (0 when BM25 found none)."""
        words = set(tokenize(query))
        if not words or not bm25:
            return 0.0
        best = max(bm25, key=lambda row: (bm25[row], -row))
        return len(words & set(tokenize(self.generation.chunk(best).indexed_text))) / len(words)

    def _rerank(self, query: str, rows: list[int]) -> dict[int, float]:
        """Cross-encoder scores for the top candidates (settings.reranker names the model)."""
        if self._reranker is None:
            from sentence_transformers import CrossEncoder

            self._reranker = CrossEncoder(self.settings.reranker, device="cpu")
        chunks = self.generation.chunks(rows)
        scores = self._reranker.predict([(query, c.indexed_text) for c in chunks], show_progress_bar=False)
        return {
            row: float(score) for row, score in zip(rows, np.asarray(scores).reshape(len(rows), -1)[:, -1])
        }

    def bm25_scores(self, query: str, depth: int, allowed: np.ndarray | None = None) -> dict[int, float]:
        gen = self.generation
        ids = gen.sparse.get_tokens_ids(tokenize(query))
        if not ids:
            return {}
        scores = gen.sparse.get_scores_from_ids(ids)
        if allowed is not None:
            masked = np.zeros_like(scores)
            masked[allowed] = scores[allowed]
            scores = masked
        top = _top(scores, depth)
        return {int(r): float(scores[r]) for r in top if scores[r] > 0}

    def dense_scores(self, query: str, depth: int, allowed: np.ndarray | None = None) -> dict[int, float]:
        gen = self.generation
        if gen.dense.ntotal == 0:
            return {}
        vector = self.embedder.encode_query(query).reshape(1, -1).astype(np.float32)
        depth = min(depth, gen.dense.ntotal)
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed.astype(np.int64)))
            depth = min(depth, allowed.size)
        scores, rows = gen.dense.search(vector, depth, params=params)
        return {int(r): float(s) for s, r in zip(scores[0], rows[0]) if r >= 0}

    def _allowed_rows(self, gen: Generation, filters: Mapping[str, Any] | None) -> np.ndarray | None:
        wanted = {k: v for k, v in (filters or {}).items() if v not in (None, "", [])}
        if not wanted:
            return None
        unknown = set(wanted) - set(FILTER_KEYS)
        if unknown:
            raise ValueError(f"unknown filter(s) {', '.join(sorted(unknown))}; use {', '.join(FILTER_KEYS)}")
        role = wanted.pop("role", None)  # a chunk's own: the part of the report it is in
        docs = [
            doc_id
            for doc_id, meta in gen.doc_meta.items()
            if all(_matches({**meta, "doc_id": doc_id}.get(key), value) for key, value in wanted.items())
        ]
        keep = np.isin(gen.doc_ids, np.array(docs, dtype=object))
        if role is not None:
            keep &= np.isin(
                gen.roles, np.array(role if isinstance(role, (list, tuple)) else [role], dtype=object)
            )
        return np.flatnonzero(keep)


def _matches(actual: Any, wanted: Any) -> bool:
    options = wanted if isinstance(wanted, (list, tuple, set)) else [wanted]
    return any(actual is not None and str(actual) == str(option) for option in options)


def _top(scores: np.ndarray, depth: int) -> np.ndarray:
    if scores.size <= depth:
        return np.argsort(-scores)
    top = np.argpartition(-scores, depth)[:depth]
    return top[np.argsort(-scores[top])]


def _is_near_duplicate(text: str, seen: list[set[str]], threshold: float = 0.9) -> bool:
    """True when ``text`` shares at least ``threshold`` of its bigrams (Jaccard) with a kept hit."""
    grams = char_bigrams(text)
    for other in seen:
        if len(grams & other) / max(1, len(grams | other)) >= threshold:
            return True
    seen.append(grams)
    return False
