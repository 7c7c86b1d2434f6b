"""Offline extractive answers with numbered citations, and refusal when nothing is relevant.

The answer is built from the top passages only: their most relevant sentences, grouped by document in
reading order, each followed by its marker ``[n]``. Every citation is an exact slice of its document.
Deterministic and cheap (no model call beyond retrieval).

Refusal has five rules, checked in order (``Evidence.refusal``): ``topic`` (the question names a term of
art no document mentions), ``subject`` (the question's most specific subject word appears nowhere in the
knowledge base, see ``answerability``: decisive for a Latin or quoted word, otherwise it raises the
relevance bar by ``SUBJECT_MARGIN``), ``scope`` (no passage is of the year or issuing body the question
names), ``relevance`` (the best in-scope passage's dense relevance is below the calibrated threshold) and
``detail`` (the question asks for a date or a figure that the passages' sentences about its subject do not
give: "知识库提到了“首贷续贷中心试点”，但没有给出具体日期").
A year, an issuing body or a generic word the passages share with the question is no evidence: none of
them is a subject word. A refusal for a missing subject says what the knowledge base covers nearby
(``near_miss``), never as the answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
from zhiwen.core.index import Generation
from zhiwen.core.settings import Settings
from zhiwen.core.text import curly_quotes, sentences
from zhiwen.core.types import Answer, AnswerEvent, FinalAnswer, Hit, Refusal, TextDelta
from zhiwen.core.vocab import issuer_mentions, issuer_names, years_named

from .answerability import (
    NO_GAPS,
    Gaps,
    MissingDetail,
    gives_detail,
    hidden_figures,
    joined_words,
    pieces,
    unmet_detail,
)
from .compose import Library, compose, part_answer, wanted_roles
from .followup import MAX_DEPTH, Previous, Resolution, Span, Turn, condense, read_history, resolve
from .intent import understand
from .judge import Verdict, judge
from .llm import chat_model_from_settings, stream_llm_answer
from .search import Retriever

if TYPE_CHECKING:  # langchain_core (and pydantic) load only when an LLM is used
    from langchain_core.language_models.chat_models import BaseChatModel

REFUSAL = "知识库中没有找到能回答这个问题的内容。"


@dataclass(frozen=True)
class Scope:
    """The year and issuing body a question is about, when it names them."""

    years: tuple[str, ...]
    issuers: tuple[str, ...]

    @classmethod
    def of(cls, question: str) -> Scope:
        """A body the question names as a partner ("和人民银行等部门", "会同卫健委") or a destination
        ("去证监局做了上市辅导备案") is not its scope."""
        bodies = [
            body
            for body, start, end in issuer_mentions(question)
            if not _PARTNER_BEFORE.search(question[:start]) and not question[end:].startswith("等")
        ]
        return cls(years_named(question), tuple(dict.fromkeys(bodies)))

    def admits(self, hit: Hit) -> bool:
        """A hit answers in scope only if it is of that year (its document's, or one the passage names) and
        that body, by any of its names (税务总局 for 税务局): the document's issuer, or the body the
        passage's own sentence or heading opens with, after a place (重庆市税务局). A body merely mentioned
        ("报**证监局辅导备案") does not make a 市局 passage the 证监局's."""
        where = f"{hit.title} {hit.doc_id} {hit.context} {hit.text} {hit.meta.get('issuer') or ''}"
        year_ok = all(y == str(hit.meta.get("year")) or y in where for y in self.years)
        issued = f"{hit.title} {hit.doc_id} {hit.meta.get('issuer') or ''}"
        issuer_ok = all(
            any(name in issued for name in issuer_names()[body]) or _acts(body, f"{hit.context}\n{hit.text}")
            for body in self.issuers
        )
        return year_ok and issuer_ok

    def describe(self) -> str:
        """The scope as the question named it: "2019年、银保监局"."""
        return "、".join([f"{y}年" for y in self.years] + list(self.issuers))


_PARTNER_BEFORE = re.compile(r"(?:和|与|同|跟|及|、|会同|联合|配合|协同|去|到|向|往)$")
_SENTENCE_STARTS = re.compile(r"[。！？；，：\s]")
_PROVINCES = (
    "北京|天津|上海|重庆|河北|山西|辽宁|吉林|黑龙江|江苏|浙江|安徽|福建|江西|山东|河南|湖北|湖南|广东|海南|四川|"
    "贵州|云南|陕西|甘肃|青海|台湾|内蒙古|广西|西藏|宁夏|新疆|香港|澳门"
)
# What may stand before a body's name where it acts: the nation, then up to two places (重庆市, 南阳市).
_QUALIFIER = rf"(?:国家|中国|全国)?(?:(?:{_PROVINCES})(?:省|市|自治区)?|[\u4e00-\u9fff]{{2,6}}?(?:省|市|自治区|区|县|州|盟)){{0,2}}"


@cache
def _acting(body: str) -> re.Pattern[str]:
    names = "|".join(sorted(map(re.escape, issuer_names()[body]), key=len, reverse=True))
    return re.compile(rf"^\**{_QUALIFIER}(?:{names})")


def _acts(body: str, text: str) -> bool:
    """Whether a sentence or clause of ``text`` opens with ``body`` (after anonymisation marks and a
    place): the body acts there."""
    opens = _acting(body)
    return any(opens.match(clause) for clause in _SENTENCE_STARTS.split(text))


# How much more relevant the best passage must be when the question's most specific subject word is
# absent from the knowledge base: the passage then matches the question only through other words.
# Chosen on the golden set (within its false-refusal budget), never on the refusal or holdout sets.
SUBJECT_MARGIN = 0.015
# An everyday question ("高血压患者饮食要注意什么？") lands near some passage of any knowledge base: e5's
# cosines are compressed. What gives it away is that it is nearer still to everyday questions
# (``Retriever.everyday``): by EVERYDAY_MARGIN or more, while its best passage is weak (below the
# relevance threshold + EVERYDAY_CEILING; a knowledge base that covers everyday life answers it with a
# strong passage). Chosen on the refusal sets' misses with no answerable question of any local or external
# set refused (see README, Refusal).
EVERYDAY_MARGIN = 0.03
EVERYDAY_CEILING = 0.03
MAX_CITATIONS = 4
RELATIVE_CUTOFF = 0.6  # cited when its score is in the top 40% of the range between the worst and best hit


def relevance(hit: Hit) -> float:
    """The signal refusal is calibrated on: the dense cosine of the passage to the question."""
    return float(hit.scores.get("dense", 0.0))


@dataclass(frozen=True)
class Evidence:
    """What the refusal decision rests on for one question and its retrieved hits.

    ``relevance`` is the best in-scope hit's relevance (0 when no hit is in scope); ``ruled`` is a topic,
    subject or scope refusal, which no threshold overrides; ``unsupported`` is the question's subject word
    no document uses (it raises the threshold by ``SUBJECT_MARGIN``); ``unmet`` the detail it asks for
    that the passages about its subject do not give (a refusal whatever their relevance). Calibration
    sweeps thresholds over these. ``verdict`` is the LLM judge's, when it was asked (``judged``): the
    offline rules are the floor, and "no" refuses (rule ``judge``) only what they let through.
    """

    relevance: float
    ruled: Refusal | None = None
    unsupported: str = ""
    unmet: MissingDetail | None = None
    verdict: Verdict | None = None
    everyday: float = 0.0

    def refusal(self, threshold: float) -> Refusal | None:
        """The refusal at ``threshold``, or None when the question is answered."""
        if self.ruled is not None:
            return self.ruled
        if (
            self.everyday - self.relevance >= EVERYDAY_MARGIN
            and self.relevance < threshold + EVERYDAY_CEILING
        ):
            return Refusal(
                "everyday", self.relevance, f"{self.everyday:.3f} ≥ {self.relevance:.3f} + {EVERYDAY_MARGIN}"
            )
        if self.unsupported and self.relevance < threshold + SUBJECT_MARGIN:
            return Refusal("subject", self.relevance, self.unsupported)
        if self.relevance < threshold:
            return Refusal("relevance", self.relevance, f"{self.relevance:.3f} < {threshold:.3f}")
        if self.unmet is not None:
            return Refusal("detail", self.relevance, self.unmet.label)
        if self.verdict == "no":
            return Refusal("judge", self.relevance, JUDGED_NO)
        return None


JUDGED_NO = "LLM 判断检索到的段落不能回答这个问题"


def judged(
    question: str, answer: Answer, hits: Sequence[Hit], model: BaseChatModel
) -> tuple[Verdict, list[Hit]]:
    """The LLM judge's verdict on the offline ``answer`` to ``question``, and the passages it was shown:
    the ``hits`` the answer cites (the LLM phrases its answer from the same ones)."""
    accepted = {c.chunk_id for c in answer.citations}
    passages = [h for h in hits if h.chunk_id in accepted]
    return judge(question, passages, model), passages


# The passages whose sentences about the subject must give the detail a question asks for.
DETAIL_PASSAGES = 3


def evidence(question: str, hits: Sequence[Hit], gaps: Gaps = NO_GAPS) -> Evidence:
    """The ``Evidence`` for ``question`` and what the knowledge base lacks for it (``Retriever.gaps``)."""
    question = curly_quotes(question)
    scope = Scope.of(question)
    in_scope = [h for h in hits if scope.admits(h)]
    best = max((relevance(h) for h in in_scope), default=0.0)
    subject = gaps.subject
    if gaps.topics:
        return Evidence(best, Refusal("topic", best, "、".join(gaps.topics)))
    if subject is not None and subject.decisive:
        return Evidence(best, Refusal("subject", best, subject.word))
    if not in_scope:
        return Evidence(best, Refusal("scope", best, scope.describe()))
    unmet = unmet_detail(question, [h.text for h in in_scope[:DETAIL_PASSAGES]], gaps.words, gaps.group)
    return Evidence(best, unsupported=subject.word if subject else "", unmet=unmet, everyday=gaps.everyday)


NEAR_MISS_CHARS = 40  # how much of the sentence a near miss quotes
NEAR_MISS_LEAD = 12  # characters kept before the shared piece when the quote cannot start the sentence


def near_miss(word: str, hits: Sequence[Hit]) -> str:
    """What the knowledge base says nearest to ``word`` it lacks: the first sentence of the top hits that
    shares a piece of it (汽车消费 for 车辆购置税), shortened so that the shared piece shows; "" when none
    shares anything."""
    for part in pieces(word):
        for hit in hits[:3]:
            for sentence in sentences(hit.text):
                found = sentence[0].strip()
                at = found.find(part)
                if at >= 0 and (len(part) > 1 or _in_noun(part, found)):
                    return _quote_around(found, at, len(part))
    return ""


def _in_noun(character: str, sentence: str) -> bool:
    """Whether a noun of ``sentence`` holds ``character``: 车 in 汽车 is a thing shared with 车辆购置税, 供 in
    提供 is nothing shared with 供应链金融."""
    return any(noun and character in word for word, noun in joined_words(sentence))


def _quote_around(sentence: str, at: int, length: int) -> str:
    """At most ``NEAR_MISS_CHARS`` of ``sentence`` showing ``sentence[at:at + length]``: from the start, or
    from the clause holding it, with …… where text is left out."""
    start = 0
    if at + length > NEAR_MISS_CHARS:
        lead = sentence[max(0, at - NEAR_MISS_LEAD) : at]
        start = at - len(lead) + max(lead.rfind(mark) + 1 for mark in "，、；：")
    quote = sentence[start : start + NEAR_MISS_CHARS]
    cut = start + NEAR_MISS_CHARS < len(sentence)
    return ("……" if start else "") + (quote + "……" if cut else quote.rstrip("。；，、"))


def refusal_threshold(question: str, settings: Settings) -> float:
    """The relevance floor for ``question``: English questions have their own (cross-lingual cosines
    are lower)."""
    return settings.refusal_threshold_english if understand(question).english else settings.refusal_threshold


def answerable(question: str, hits: list[Hit], threshold: float, gaps: Gaps = NO_GAPS) -> list[Hit]:
    """The hits an answer may cite: in the question's scope, and relevant enough; empty means refuse.

    The question must name nothing the knowledge base lacks (``gaps``), and the best in-scope hit
    must reach ``threshold`` (calibrated on the golden set's negative questions, see
    ``zhiwen eval --calibrate-refusal``); the others must score close to it.
    """
    if evidence(question, hits, gaps).refusal(threshold):
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
    history: Sequence[Mapping[str, Any]] | None = None,
) -> Iterator[AnswerEvent]:
    """Answer ``question``: yields ``TextDelta`` pieces as they stream (LLM mode only), then ``FinalAnswer``.

    ``history`` is the conversation before it, as OpenAI-style {"role": "user"|"assistant", "content"}
    messages: a follow-up ("第二项具体是什么？", "那保险业呢？") is read against it (``followup``; with the
    LLM, the LLM condenses it first and the rules are the fallback), answered as understood, and the
    answer says how ("理解为：…"). Retrieval, scope checks and refusal are the same in both modes and
    apply to the question as understood. With the LLM, it first judges whether the passages the
    extractive path accepted answer the question (``judge``): "no" refuses, "partly" answers with a
    warning; the offline rules stay the floor (the judge never answers what they refused). The LLM then
    phrases an answer from those passages, checked before it is returned.
    """
    turns = read_history(history)
    model, resolution, warnings = chat_model, None, ()
    if use_llm and turns:
        model = model or chat_model_from_settings(retriever.settings)
        try:
            resolution = condense(question, turns, model)
        except Exception as exc:  # noqa: BLE001 - any LLM failure falls back to the rules
            warnings = (f"LLM 没能改写追问，改用规则理解：{exc}",)
    with retriever.pinned() as generation:  # hits, topics and document texts from one generation
        if resolution is None:
            resolution = resolve(question, _previous(turns, retriever, k, filters, MAX_DEPTH), generation)
        answer, hits = answer_resolved(resolution, retriever, k, filters)
    answer = replace(answer, warnings=(*warnings, *answer.warnings))
    if answer.refused or not use_llm:
        yield FinalAnswer(understood_as(answer, resolution))
        return
    model = model or chat_model_from_settings(retriever.settings)
    if resolution.understood:
        yield TextDelta(f"理解为：{resolution.understood}\n")
    question = resolution.question
    verdict, passages = judged(question, answer, hits, model)
    if verdict == "no":
        best = max((relevance(h) for h in passages), default=0.0)
        refusal = Refusal("judge", best, JUDGED_NO)
        text = REFUSAL + "检索到的段落谈的不是这个问题。以下段落可能相关，仅供参考。"
        refused = Answer(text, "llm", related=tuple(hits[:3]), warnings=warnings, refusal=refusal)
        yield FinalAnswer(understood_as(refused, resolution))
        return
    note = {"partly": "LLM 判断检索到的段落只回答了问题的一部分", "unclear": "LLM 没有给出能否回答的判断"}
    wanted = wanted_roles(understand(question))[0]
    for event in stream_llm_answer(question, passages, model, wanted):
        if isinstance(event, TextDelta):
            yield event
            continue
        checked = event.answer.warnings
        if event.answer.citations:
            verdict_note = (note[verdict],) if verdict in note else ()
            final = replace(event.answer, warnings=(*warnings, *checked, *verdict_note))
        else:
            # The model gave nothing its passages back up; the extractive answer is the safe one.
            fallback = "LLM 的回答没有可核对的引用，改用原文摘录回答"
            final = replace(answer, warnings=(*answer.warnings, *checked, fallback))
        yield FinalAnswer(understood_as(final, resolution))


REGION_DEPTH = 20  # hits searched for a follow-up before its previous answer's sections are preferred
REGION_BONUS = 0.5  # of the hits' score spread, added to a hit inside the previous answer's sections


def answer_resolved(
    resolution: Resolution,
    retriever: Retriever,
    k: int | None = None,
    filters: dict | None = None,
) -> tuple[Answer, list[Hit]]:
    """The offline answer to a question as understood, and the hits it was chosen from.

    Call inside ``retriever.pinned()``. Refusal applies to the standalone question; an ordinal that
    picked a part of a report is answered from that part (every citation inside it), one that pointed
    past the end of the previous answer's list is refused (rule ``reference``).
    """
    if resolution.unresolved:
        refusal = Refusal("reference", 0.0, resolution.unresolved)
        return Answer(resolution.unresolved, "extractive", refusal=refusal), []
    generation = retriever.generation
    question, k = resolution.question, k or retriever.settings.top_k
    hits = retriever.search(
        resolution.query, k=max(k, REGION_DEPTH) if resolution.region else k, filters=filters
    )
    hits = prefer(hits, resolution.region)[:k]
    gaps = retriever.gaps(question)
    threshold = refusal_threshold(question, retriever.settings)
    if resolution.part is not None and not evidence(question, hits, gaps).refusal(threshold):
        passage = passage_at(generation, resolution.part_doc, resolution.part.head_start)
        if passage is not None:
            text, citations = part_answer(passage, resolution.part, generation, question)
            return Answer(text, "extractive", tuple(citations)), hits
    return extractive_answer(question, hits, threshold, gaps, generation), hits


def understood_as(answer: Answer, resolution: Resolution) -> Answer:
    """``answer`` saying how its question was understood, when it was read as a follow-up."""
    if not resolution.understood:
        return answer
    return replace(
        answer, answer=f"理解为：{resolution.understood}\n{answer.answer}", understood=resolution.understood
    )


def prefer(hits: Sequence[Hit], region: Sequence[Span]) -> list[Hit]:
    """``hits`` re-ranked so that those inside ``region`` (the previous answer's passages and sections)
    come before others of similar score."""
    if not region or not hits:
        return list(hits)
    spread = (max(h.score for h in hits) - min(h.score for h in hits)) or 1.0

    def inside(hit: Hit) -> bool:
        return any(s.doc_id == hit.doc_id and hit.start < s.end and s.start < hit.end for s in region)

    boosted = [replace(h, score=h.score + REGION_BONUS * spread) if inside(h) else h for h in hits]
    ranked = sorted(boosted, key=lambda h: -h.score)
    return [replace(h, rank=rank) for rank, h in enumerate(ranked, 1)]


def passage_at(generation: Generation, doc_id: str, offset: int) -> Hit | None:
    """The shortest indexed passage of ``doc_id`` holding ``offset``, as a hit (for citing a part)."""
    rows = [int(r) for r in np.flatnonzero(generation.doc_ids == doc_id)]
    holding = [c for c in generation.chunks(rows) if c.start <= offset < c.end]
    if not holding:
        return None
    chunk = min(holding, key=lambda c: c.end - c.start)
    meta = {**generation.doc_meta.get(doc_id, {}), **chunk.meta}
    return Hit(**vars(chunk) | {"meta": meta}, rank=1, score=0.0)


def _previous(
    turns: Sequence[Turn], retriever: Retriever, k: int | None, filters: dict | None, depth: int
) -> Callable[[], Previous | None]:
    """The last user turn of ``turns`` as understood and answered offline (its own earlier turns read
    the same way, ``depth`` turns back at most), computed once and only when asked for."""

    @cache
    def previous() -> Previous | None:
        users = [i for i, t in enumerate(turns) if t.role == "user"]
        if not users or depth == 0:
            return None
        last = users[-1]
        earlier = _previous(turns[:last], retriever, k, filters, depth - 1)
        resolution = resolve(turns[last].content, earlier, retriever.generation)
        return Previous(resolution, answer_resolved(resolution, retriever, k, filters)[0])

    return previous


def extractive_answer(
    question: str, hits: list[Hit], threshold: float, gaps: Gaps = NO_GAPS, library: Library | None = None
) -> Answer:
    """The answer for ``question`` from ranked ``hits``; ``gaps`` as in ``answerable``.

    ``library`` (the index generation) gives the documents' texts and outlines, so a list question is
    answered with every item of its enumeration (``compose``); without it, the answer quotes the passages.
    """
    found = evidence(question, hits, gaps)
    refusal = found.refusal(threshold)
    if refusal:
        scope = Scope.of(question)
        named = scope.describe()
        why = (
            f"检索到的材料都不属于问题所指的{named}。"
            if named and not any(scope.admits(h) for h in hits)
            else ""
        )
        if gaps.topics:
            why += "知识库中的文档没有提到" + "、".join(f"“{term}”" for term in gaps.topics) + "。"
        elif refusal.rule == "subject":
            nearby = near_miss(refusal.detail, hits)
            why += f"知识库没有提到“{refusal.detail}”" + (f"；相关内容：{nearby}" if nearby else "") + "。"
        elif refusal.rule == "detail" and found.unmet is not None:
            why += found.unmet.explanation
        elif refusal.rule == "everyday":
            why += EVERYDAY_WHY
        text = REFUSAL + why + ("以下段落可能相关，仅供参考。" if hits else "")
        return Answer(text, "extractive", related=tuple(hits[:3]), refusal=refusal)
    usable = answerable(question, hits, threshold, gaps)
    scope = Scope.of(question)
    usable = _giving_first(question, usable, [h for h in hits if scope.admits(h)][:DETAIL_PASSAGES], gaps)
    roles = wanted_roles(understand(question))
    if not any(h.meta.get("role", "done") in roles for h in usable):
        # The most relevant passages are of the wrong part of the report (the problems, for "怎么解决"):
        # passages of the right part, further down the ranking, answer better.
        usable += [
            h for h in hits if scope.admits(h) and h not in usable and h.meta.get("role", "done") in roles
        ]
    text, citations = compose(question, usable, library)
    hidden = hidden_figures(question, text, gaps.words)
    if hidden:  # the reports anonymise it: say so rather than leave the user to read "**次" as an answer
        text += "\n\n" + HIDDEN_NOTE.format("、".join(f"“{f}”" for f in hidden))
    return Answer(text, "extractive", tuple(citations))


def _giving_first(question: str, usable: list[Hit], top: Sequence[Hit], gaps: Gaps) -> list[Hit]:
    """``usable`` with the passage that gives the detail ``question`` asks for (a figure, a date, a name)
    first, when the best passage does not and another of the ``top`` does: "党组一共开了多少次党组会议？"
    is answered by "组织召开党组会议**次", not by the report's opening paragraph that shares its title words."""
    if not usable or gives_detail(question, usable[0].text, gaps.words) is not False:
        return usable
    better = next((h for h in top if h is not usable[0] and gives_detail(question, h.text, gaps.words)), None)
    return usable if better is None else [better, *(h for h in usable if h.chunk_id != better.chunk_id)]


EVERYDAY_WHY = "这像是一个日常生活问题，知识库中的文档没有涉及。"
HIDDEN_NOTE = "注：原文中这一数字已作脱敏处理（{}），知识库无法给出具体数值。"
