"""Search an index: BM25, dense, or both fused, with metadata filters and near-duplicate removal.

The index is opened once and kept; each search checks the ``CURRENT`` pointer's mtime and switches to a
newer generation when one was written, while searches still running keep the one they started on.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
from zhiwen.core.embed import Embedder
from zhiwen.core.index import Generation, index_signature, live_stamp, open_live
from zhiwen.core.milvus import MilvusGeneration
from zhiwen.core.settings import Settings
from zhiwen.core.text import char_bigrams, curly_quotes
from zhiwen.core.tokenize import tokenize
from zhiwen.core.types import Hit
from zhiwen.core.vocab import FILTER_KEYS, STRATEGIES

from .hybrid import FusionParams, fuse
from .intent import understand
from .topics import glossary_from_settings, load_glossary

if TYPE_CHECKING:
    from .answerability import Gaps, Subject

CANDIDATES = 100
EVERYDAY_FILE = "everyday.txt"  # in zhiwen.core's data: everyday questions no work report answers
VERBATIM_SHARE = 0.5  # a passage repeating this share of the question's characters in one run ...
VERBATIM_MIN_CHARS = 6  # ... and at least this many, gets the verbatim fusion's bonus
_NOT_LETTERS = re.compile(r"[\W_]")
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
        self._gen: Generation | MilvusGeneration | None = None
        self._stamp: Any = None  # ``live_stamp`` when ``_gen`` was opened
        self._pinned = threading.local()
        self._reranker = None
        self._everyday: np.ndarray | None = None
        self._everyday_lock = threading.Lock()

    @property
    def generation(self) -> Generation | MilvusGeneration:
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
    def pinned(self) -> Iterator[Generation | MilvusGeneration]:
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

    def _acquire(self) -> Generation | MilvusGeneration:
        """The live generation with one more reader; a new ``CURRENT`` (ingest from another process, or
        an upload) is noticed here by its mtime, one ``stat`` per request."""
        stamp = live_stamp(self.settings)
        with self._lock:
            if self._gen is not None and stamp != self._stamp:
                self._retire()
            if self._gen is None:
                self._gen = open_live(self.settings, index_signature(self.settings))
                self._stamp = stamp
            self._gen.readers += 1
            return self._gen

    def _release(self, gen: Generation | MilvusGeneration) -> None:
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
        stamp = live_stamp(self.settings)
        with self._lock:
            if self._gen is not None and stamp == self._stamp:
                return False
            self._retire()
        return True

    def uncovered_topics(self, question: str) -> list[str]:
        """Glossary terms in ``question`` that no document of the index mentions (see ``topics``).

        In an English question a term in Latin letters ("IPO") proves nothing: the documents are Chinese.
        A term the documents write in short (农信 for 农村信用社) is mentioned.
        """
        # Imported here, as below: answerability loads jieba's tagger module, which a search never needs.
        from .answerability import abbreviated

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
        # Imported here: its part-of-speech tagger takes a second to load, which a search never needs.
        from .answerability import uncovered_subject

        glossary = glossary_from_settings(self.settings.glossary) or load_glossary()
        english = understand(question).english
        return uncovered_subject(question, self.generation.passages_with, glossary, english)

    def gaps(self, question: str) -> Gaps:
        """What the knowledge base lacks for ``question``: its uncovered topics and subject, and its
        subject words for the detail check (see ``answerability.Gaps``)."""
        from .answerability import Gaps, group_passages, subjects

        english = understand(question).english
        everyday = 0.0 if english else self.everyday(question)  # before quoting: its search's vector
        question = curly_quotes(question)
        glossary = glossary_from_settings(self.settings.glossary) or load_glossary()
        words = tuple(s.word for s in subjects(question, glossary, english))
        group = group_passages(question, words, self.generation.passages_with)
        topics, subject = tuple(self.uncovered_topics(question)), self.uncovered_subject(question)
        return Gaps(topics, subject, words, everyday, group)

    def everyday(self, question: str) -> float:
        """How near ``question`` is to everyday life: its highest cosine to the everyday questions of
        ``core/data/everyday.txt`` (see ``answer.EVERYDAY_MARGIN``). Those are embedded once (then read from
        the embedding cache), at the first question that needs them; the question's own vector is the one
        its search used."""
        with self._everyday_lock:
            if self._everyday is None:
                self._everyday = self.embedder.encode_fixed_queries(everyday_questions())
        return float(np.max(self._everyday @ self.embedder.encode_query(question)))

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
        tokens = tokenize(query) if strategy in ("bm25", "hybrid") else []
        vector = self.embedder.encode_query(query) if strategy in ("dense", "hybrid") else None
        bm25, dense = self.generation.candidates(tokens, vector, depth, self._checked_filters(filters))
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
            elif method == "verbatim":
                params = replace(params, verbatim=self.verbatim_rows(query, set(bm25) | set(dense)))
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

    def verbatim_rows(self, query: str, rows: Iterable[int]) -> frozenset[int]:
        """The candidates whose text repeats a run of the question's characters verbatim: at least half
        the question (punctuation aside) and at least ``VERBATIM_MIN_CHARS``."""
        letters = _NOT_LETTERS.sub("", query)
        size = max(VERBATIM_MIN_CHARS, math.ceil(VERBATIM_SHARE * len(letters)))
        if len(letters) < size:
            return frozenset()
        runs = {letters[i : i + size] for i in range(len(letters) - size + 1)}
        texts = self.generation.texts(rows)
        return frozenset(row for row, text in texts.items() if any(run in text for run in runs))

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

    def _checked_filters(self, filters: Mapping[str, Any] | None) -> dict[str, list[str]]:
        """The given filters as key -> accepted values (as text); an unknown key is a ValueError."""
        wanted = {k: v for k, v in (filters or {}).items() if v not in (None, "", [])}
        unknown = set(wanted) - set(FILTER_KEYS)
        if unknown:
            raise ValueError(f"unknown filter(s) {', '.join(sorted(unknown))}; use {', '.join(FILTER_KEYS)}")
        return {
            key: [str(v) for v in (value if isinstance(value, (list, tuple, set)) else [value])]
            for key, value in wanted.items()
        }


def _is_near_duplicate(text: str, seen: list[set[str]], threshold: float = 0.9) -> bool:
    """True when ``text`` shares at least ``threshold`` of its bigrams (Jaccard) with a kept hit."""
    grams = char_bigrams(text)
    for other in seen:
        if len(grams & other) / max(1, len(grams | other)) >= threshold:
            return True
    seen.append(grams)
    return False


@cache
def everyday_questions() -> list[str]:
    """The everyday questions of ``core/data/everyday.txt`` (lines not starting with #)."""
    text = (resources.files("zhiwen.core") / "data" / EVERYDAY_FILE).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
