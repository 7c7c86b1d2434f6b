"""Offline extractive answers with numbered citations, and refusal when nothing is relevant.

The answer is built from the top passages only: their most relevant sentences, grouped by document in
reading order, each followed by its marker ``[n]``. Every citation is an exact slice of its document.
Deterministic and cheap (no model call beyond retrieval).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from langchain_core.language_models.chat_models import BaseChatModel
from zhiwen.ingest.tokenize import tokenize

from .llm import chat_model_from_settings, stream_llm_answer
from .search import Retriever
from .types import Answer, Citation, Hit

REFUSAL = "知识库中没有找到能回答这个问题的内容。"
_SENTENCE = re.compile(r"[^。！？；!?;]*[。！？；!?;]?")
_YEAR = re.compile(r"((?:19|20)\d{2})\s*年")
ISSUERS = (
    "银保监局",
    "银保监会",
    "金融监管局",
    "金融监管总局",
    "地方金融监管局",
    "人民银行",
    "证监局",
    "证监会",
    "外汇管理局",
    "外汇局",
    "国务院",
    "发改委",
    "财政局",
    "税务局",
)


@dataclass(frozen=True)
class Scope:
    """The year and issuing body a question is about, when it names them."""

    years: tuple[str, ...]
    issuers: tuple[str, ...]

    @classmethod
    def of(cls, question: str) -> Scope:
        issuers = tuple(
            i
            for i in ISSUERS
            if i in question and not any(i != j and i in j for j in ISSUERS if j in question)
        )
        return cls(tuple(dict.fromkeys(_YEAR.findall(question))), issuers)

    def admits(self, hit: Hit) -> bool:
        """A hit answers in scope only if its document (or the passage itself) is of that year and body."""
        where = f"{hit.title} {hit.doc_id} {hit.context} {hit.text} {hit.meta.get('issuer') or ''}"
        year_ok = all(y == str(hit.meta.get("year")) or y in where for y in self.years)
        issuer_ok = all(i in where for i in self.issuers)
        return year_ok and issuer_ok


MAX_CITATIONS = 4
RELATIVE_CUTOFF = 0.6  # cited when its score is in the top 40% of the range between the worst and best hit


# What ``refusal_signal`` gives when no relevance is compared: below any cosine, so any threshold refuses.
UNKNOWN_TERM = -3.0  # the question names a term of art the knowledge base never mentions
OUT_OF_SCOPE = -2.0  # no hit is of the year or issuing body the question names


def relevance(hit: Hit) -> float:
    """The signal refusal is calibrated on: the dense cosine of the passage to the question."""
    return float(hit.scores.get("dense", 0.0))


def refusal_signal(question: str, hits: list[Hit], missing: Sequence[str] = ()) -> float:
    """What refusal compares with the threshold: the best in-scope hit's relevance, or a sentinel.

    ``missing`` are the terms of art the question names that the knowledge base never mentions
    (``Retriever.uncovered_topics``): any one gives ``UNKNOWN_TERM``. No hit in the question's scope
    gives ``OUT_OF_SCOPE``.
    """
    if missing:
        return UNKNOWN_TERM
    scope = Scope.of(question)
    return max((relevance(h) for h in hits if scope.admits(h)), default=OUT_OF_SCOPE)


def refused_at(signal: float, threshold: float) -> bool:
    """Whether a question with this ``refusal_signal`` is refused at ``threshold``."""
    return signal <= OUT_OF_SCOPE or signal < threshold


def answerable(question: str, hits: list[Hit], threshold: float, missing: Sequence[str] = ()) -> list[Hit]:
    """The hits an answer may cite: in the question's scope, and relevant enough; empty means refuse.

    The question must name no term the knowledge base lacks (``missing``), and the best in-scope hit
    must reach ``threshold`` (calibrated on the golden set's negative questions, see
    ``zhiwen eval --calibrate-refusal``); the others must score close to it.
    """
    if refused_at(refusal_signal(question, hits, missing), threshold):
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
) -> Iterator[str | Answer]:
    """Answer ``question``: yields streamed text pieces (LLM mode only), then the final ``Answer``.

    Retrieval, scope checks and refusal are the same in both modes; the LLM only phrases an answer from
    passages the extractive path accepted, and its answer is checked before it is returned.
    """
    hits = retriever.search(question, k=k or retriever.settings.top_k, filters=filters)
    missing = retriever.uncovered_topics(question)
    answer = extractive_answer(question, hits, retriever.settings.refusal_threshold, missing)
    if answer.refused or not use_llm:
        yield answer
        return
    accepted = {c.chunk_id for c in answer.citations}
    model = chat_model or chat_model_from_settings(retriever.settings)
    for piece in stream_llm_answer(question, [h for h in hits if h.chunk_id in accepted], model):
        if isinstance(piece, str) or piece.citations:
            yield piece
        else:
            # The model gave nothing its passages back up; the extractive answer is the safe one.
            answer.warnings = [*piece.warnings, "LLM 的回答没有可核对的引用，改用原文摘录回答"]
            yield answer


def extractive_answer(
    question: str, hits: list[Hit], threshold: float, missing: Sequence[str] = ()
) -> Answer:
    """The answer for ``question`` from ranked ``hits`` (pure: no I/O); ``missing`` as in ``answerable``."""
    usable = answerable(question, hits, threshold, missing)
    if not usable:
        scope = Scope.of(question)
        named = "、".join([f"{y}年" for y in scope.years] + list(scope.issuers))
        why = (
            f"检索到的材料都不属于问题所指的{named}。"
            if named and not any(scope.admits(h) for h in hits)
            else ""
        )
        if missing:
            why += "知识库中的文档没有提到" + "、".join(f"“{term}”" for term in missing) + "。"
        text = REFUSAL + why + ("以下段落可能相关，仅供参考。" if hits else "")
        return Answer(text, "extractive", True, related=hits[:3])

    words = set(tokenize(question))
    citations: list[Citation] = []
    by_doc: dict[str, list[tuple[Hit, str]]] = {}
    for hit in usable:
        start, end = best_span(hit, words)
        citation = Citation(
            len(citations) + 1,
            hit.chunk_id,
            hit.doc_id,
            hit.title,
            hit.text[start - hit.start : end - hit.start],
            start,
            end,
        )
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
    return Answer("\n\n".join(parts), "extractive", False, citations)


def _first_sentence_end(text: str) -> int:
    match = _SENTENCE.match(text)
    return match.end() if match else len(text)


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
    sentences = [(m.start(), m.end()) for m in _SENTENCE.finditer(hit.text) if m.group().strip()]
    if len(hit.text) <= 160 or len(sentences) <= max_sentences:
        return hit.start, hit.end
    scores = [len(words & set(tokenize(hit.text[s:e]))) for s, e in sentences]
    if hit.meta.get("item_label"):
        scores[0] += 0.5
    width = max_sentences
    best = max(range(len(sentences) - width + 1), key=lambda i: (sum(scores[i : i + width]), -i))
    return hit.start + sentences[best][0], hit.start + sentences[best + width - 1][1]
