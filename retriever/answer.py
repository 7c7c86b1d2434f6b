"""Offline extractive answers with numbered citations, and refusal when nothing is relevant.

The answer is built from the top passages only: their most relevant sentences, grouped by document in
reading order, each followed by its marker ``[n]``. Every citation is an exact slice of its document.
Deterministic and cheap (no model call beyond retrieval).

Refusal has three rules, checked in order (``Evidence.refusal``): ``topic`` (the question names a term of
art no document mentions), ``scope`` (no passage is of the year or issuing body the question names) and
``relevance`` (the best in-scope passage's dense relevance is below the calibrated threshold).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from langchain_core.language_models.chat_models import BaseChatModel
from zhiwen.core.text import sentences
from zhiwen.core.tokenize import tokenize
from zhiwen.core.types import Answer, AnswerEvent, Citation, FinalAnswer, Hit, Refusal, TextDelta
from zhiwen.core.vocab import ISSUING_BODIES, years_named

from .llm import chat_model_from_settings, stream_llm_answer
from .search import Retriever

REFUSAL = "知识库中没有找到能回答这个问题的内容。"


@dataclass(frozen=True)
class Scope:
    """The year and issuing body a question is about, when it names them."""

    years: tuple[str, ...]
    issuers: tuple[str, ...]

    @classmethod
    def of(cls, question: str) -> Scope:
        named = [body for body in ISSUING_BODIES if body in question]
        issuers = tuple(i for i in named if not any(i != j and i in j for j in named))
        return cls(years_named(question), issuers)

    def admits(self, hit: Hit) -> bool:
        """A hit answers in scope only if its document (or the passage itself) is of that year and body."""
        where = f"{hit.title} {hit.doc_id} {hit.context} {hit.text} {hit.meta.get('issuer') or ''}"
        year_ok = all(y == str(hit.meta.get("year")) or y in where for y in self.years)
        issuer_ok = all(i in where for i in self.issuers)
        return year_ok and issuer_ok

    def describe(self) -> str:
        """The scope as the question named it: "2019年、银保监局"."""
        return "、".join([f"{y}年" for y in self.years] + list(self.issuers))


MAX_CITATIONS = 4
RELATIVE_CUTOFF = 0.6  # cited when its score is in the top 40% of the range between the worst and best hit


def relevance(hit: Hit) -> float:
    """The signal refusal is calibrated on: the dense cosine of the passage to the question."""
    return float(hit.scores.get("dense", 0.0))


@dataclass(frozen=True)
class Evidence:
    """What the refusal decision rests on for one question and its retrieved hits.

    ``relevance`` is the best in-scope hit's relevance (0 when no hit is in scope); ``ruled`` is a topic
    or scope refusal, which no threshold overrides. Calibration sweeps thresholds over these.
    """

    relevance: float
    ruled: Refusal | None = None

    def refusal(self, threshold: float) -> Refusal | None:
        """The refusal at ``threshold``, or None when the question is answered."""
        if self.ruled is not None:
            return self.ruled
        if self.relevance < threshold:
            return Refusal("relevance", self.relevance, f"{self.relevance:.3f} < {threshold:.3f}")
        return None


def evidence(question: str, hits: Sequence[Hit], missing: Sequence[str] = ()) -> Evidence:
    """The ``Evidence`` for ``question``: ``missing`` are the terms of art it names that the knowledge base
    never mentions (``Retriever.uncovered_topics``)."""
    scope = Scope.of(question)
    in_scope = [relevance(h) for h in hits if scope.admits(h)]
    best = max(in_scope, default=0.0)
    if missing:
        return Evidence(best, Refusal("topic", best, "、".join(missing)))
    if not in_scope:
        return Evidence(best, Refusal("scope", best, scope.describe()))
    return Evidence(best)


def answerable(question: str, hits: list[Hit], threshold: float, missing: Sequence[str] = ()) -> list[Hit]:
    """The hits an answer may cite: in the question's scope, and relevant enough; empty means refuse.

    The question must name no term the knowledge base lacks (``missing``), and the best in-scope hit
    must reach ``threshold`` (calibrated on the golden set's negative questions, see
    ``zhiwen eval --calibrate-refusal``); the others must score close to it.
    """
    if evidence(question, hits, missing).refusal(threshold):
        return []
    scope = Scope.of(question)
    in_scope = [h for h in hits if scope.admits(h)]
    best, worst = max(h.score for h in in_scope), min(h.score for h in in_scope)
    if best == worst:  # one passage in scope, or all tied: all are as good as the best
        return in_scope[:MAX_CITATIONS]
    return [h for h in in_scope if (h.score - worst) / (best - worst) >= RELATIVE_CUTOFF][:MAX_CITATIONS]


def ask(
    question: str,
    retriever: Retriever,
    k: int | None = None,
    use_llm: bool = False,
    filters: dict | None = None,
    chat_model: BaseChatModel | None = None,
) -> Iterator[AnswerEvent]:
    """Answer ``question``: yields ``TextDelta`` pieces as they stream (LLM mode only), then ``FinalAnswer``.

    Retrieval, scope checks and refusal are the same in both modes; the LLM only phrases an answer from
    passages the extractive path accepted, and its answer is checked before it is returned.
    """
    hits = retriever.search(question, k=k or retriever.settings.top_k, filters=filters)
    missing = retriever.uncovered_topics(question)
    answer = extractive_answer(question, hits, retriever.settings.refusal_threshold, missing)
    if answer.refused or not use_llm:
        yield FinalAnswer(answer)
        return
    accepted = {c.chunk_id for c in answer.citations}
    model = chat_model or chat_model_from_settings(retriever.settings)
    for event in stream_llm_answer(question, [h for h in hits if h.chunk_id in accepted], model):
        if isinstance(event, TextDelta) or event.answer.citations:
            yield event
        else:
            # The model gave nothing its passages back up; the extractive answer is the safe one.
            warnings = (*event.answer.warnings, "LLM 的回答没有可核对的引用，改用原文摘录回答")
            yield FinalAnswer(replace(answer, warnings=warnings))


def extractive_answer(
    question: str, hits: list[Hit], threshold: float, missing: Sequence[str] = ()
) -> Answer:
    """The answer for ``question`` from ranked ``hits`` (pure: no I/O); ``missing`` as in ``answerable``."""
    refusal = evidence(question, hits, missing).refusal(threshold)
    if refusal:
        scope = Scope.of(question)
        named = scope.describe()
        why = (
            f"检索到的材料都不属于问题所指的{named}。"
            if named and not any(scope.admits(h) for h in hits)
            else ""
        )
        if missing:
            why += "知识库中的文档没有提到" + "、".join(f"“{term}”" for term in missing) + "。"
        text = REFUSAL + why + ("以下段落可能相关，仅供参考。" if hits else "")
        return Answer(text, "extractive", related=tuple(hits[:3]), refusal=refusal)
    usable = answerable(question, hits, threshold, missing)

    words = set(tokenize(question))
    citations: list[Citation] = []
    by_doc: dict[str, list[tuple[Hit, str]]] = {}
    for hit in usable:
        start, end = best_span(hit, words)
        text = hit.text[start - hit.start : end - hit.start]
        citation = Citation(hit.chunk_id, hit.doc_id, hit.title, text, start, end, n=len(citations) + 1)
        citations.append(citation)
        lead = ""
        if start > hit.start and hit.meta.get("item_label"):
            lead = hit.text[: _first_sentence_end(hit.text)] + "……"
        by_doc.setdefault(hit.doc_id, []).append((hit, f"{lead}{citation.text}[{citation.n}]"))

    parts = []
    for doc_hits in by_doc.values():
        doc_hits.sort(key=lambda pair: pair[0].start)
        title = doc_hits[0][0].title
        parts.append(
            f"《{title}》"
            + enumeration_note([h for h, _ in doc_hits])
            + "：\n"
            + "\n".join(piece for _, piece in doc_hits)
        )
    return Answer("\n\n".join(parts), "extractive", tuple(citations))


def _first_sentence_end(text: str) -> int:
    return next(sentences(text)).end()


def enumeration_note(hits: list[Hit]) -> str:
    """Say when hits are items of one enumeration (several items, or an item with its lead-in), and
    whether only part of the enumeration was found."""
    found: dict[tuple[str, str], set[int]] = {}
    totals: dict[tuple[str, str], int] = {}
    for hit in hits:
        count, index = hit.meta.get("item_count"), hit.meta.get("item_index")
        if count and index is not None:
            key = (hit.doc_id, hit.context)
            found.setdefault(key, set()).add(int(index))
            totals[key] = int(count)
    leadins = [h.text[:20] for h in hits if h.kind == "leadin"]
    notes = [
        f"共{totals[key]}项措施" + ("" if len(items) >= totals[key] else f"，检索到其中{len(items)}项")
        for key, items in found.items()
        if len(items) > 1 or any(lead in key[1] for lead in leadins)
    ]
    return f"（{'；'.join(notes)}）" if notes else ""


def best_span(hit: Hit, words: set[str], max_sentences: int = 3) -> tuple[int, int]:
    """Document offsets of the passage's most relevant run of sentences (the whole passage if short).

    The run of up to ``max_sentences`` sentences sharing the most question words wins; an enumerated
    item's opening sentence (it names the measure) gets a small bonus.
    """
    spans = [(m.start(), m.end()) for m in sentences(hit.text) if m.group().strip()]
    if len(hit.text) <= 160 or len(spans) <= max_sentences:
        return hit.start, hit.end
    scores = [len(words & set(tokenize(hit.text[s:e]))) for s, e in spans]
    if hit.meta.get("item_label"):
        scores[0] += 0.5
    width = max_sentences
    best = max(range(len(spans) - width + 1), key=lambda i: (sum(scores[i : i + width]), -i))
    return hit.start + spans[best][0], hit.start + spans[best + width - 1][1]
