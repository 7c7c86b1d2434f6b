"""Follow-up questions: what a question means in the conversation before it.

"第二项具体是什么？", "那保险业呢？" and "成效怎么样？" mean nothing on their own; asked alone they land on
whatever passage shares their few words. ``resolve`` reads them against the previous turn, offline, by
rules, in this order:

- **ordinal** (第二项, 第四个, 最后一条, 倒数第二点): the k-th part the previous answer listed; the
  answer quotes that part of the report (``compose.part_answer``);
- **anaphora** (这些问题, 上述措施, 针对这些, 这方面): the demonstrative stands for the previous question's
  subject, and retrieval prefers the previous answer's passages and their sections;
- **subject swap** ("那X呢"): the previous question with its subject (or year, or issuing body) replaced
  by X;
- **elliptical**: a question with no subject of its own ("目的是什么？", "营造了什么氛围？") borrows the
  previous question's subject and prefers the previous answer's sections. Its own subject is what is
  left of its words once question cues, fillers, generic words and aspect words (目的, 成效, 氛围: the
  [aspect] section of ``core/data/question_cues.txt``) are taken out; it is a subject when it can be
  searched for on its own: a year, an issuing body, a term of the glossary or the domain dictionary, a
  word the knowledge base holds, or a word too specific to be anything but a subject (``PARAPHRASE_IDF``).

Anything else is a question of its own and is left exactly as asked. The previous turn is given as its
``Previous``: its own resolution and the answer it got, which ``answer.ask`` re-derives from the plain
text of the conversation (the offline answer is deterministic), so the items an ordinal picks are the
ones the user saw. With an LLM, ``condense`` rewrites the question as a standalone one instead (LangChain's
contextualize-question prompt); these rules stay the fallback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from zhiwen.core.tokenize import domain_words
from zhiwen.core.types import Answer, OutlineNode, outline_path
from zhiwen.core.vocab import issuers_named, years_named

from .answerability import joined_words, subjects
from .compose import Library, listed_parts
from .intent import aspect_words, generic_words, understand
from .topics import load_glossary

if TYPE_CHECKING:  # langchain_core (and pydantic) load only when an LLM is used
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import BaseMessage

Kind = Literal["standalone", "ordinal", "anaphora", "subject_swap", "elliptical", "llm"]
KINDS: tuple[Kind, ...] = ("ordinal", "anaphora", "subject_swap", "elliptical")  # the rules, in order
MESSAGE_ROLES = ("user", "assistant")
# A subject word the knowledge base does not hold still names the question's own subject when it is at
# least this specific in general language (年轻人, 10.3: about 1 word in 30,000), as 文件 (9.5) does not.
PARAPHRASE_IDF = 10.0
MAX_DEPTH = 3  # earlier turns re-derived to understand the last one ("第三项呢？" → "其中第二点")
MAX_CONTEXT_CHARS = 600  # of each earlier answer, in the LLM's condensing prompt

_NUMERAL = "一二三四五六七八九十两0123456789"
_COUNTER = "项个条点方面部分是种类块"
_ORDINAL = re.compile(
    rf"(?P<back>倒数)?第(?P<k>[{_NUMERAL}]{{1,3}})(?:[{_COUNTER}]|个方面)|最后(?:一|那)?(?P<last>[{_COUNTER}])"
)
# 以上 only as "the above": not in 以上率下 or 增长10%以上.
_DEMONSTRATIVE = re.compile(
    r"那些|这些|上述|(?<![\d%％])以上(?!率)|前述|这个|这项|这条|这一|这方面|该项|此项"
)
_SWAP = re.compile(
    r"^(?:那么?|那)(?P<x>[^，,。？?]{1,16}?)(?:的情况|方面|这块)?(?:呢|怎么样|如何)[？?。！!]*$"
)
_DEPENDENT_START = re.compile(r"^(?:那么?|其中|还有|另外|此外|具体)")
_PUNCT = "？?。！!，, "
_PREPOSITIONS = frozenset({"在", "对", "于", "关于", "为", "就", "从"})


class Holdings(Library, Protocol):
    """What ``resolve`` reads of the knowledge base: outlines and texts (for ordinals), and whether a
    word occurs in it at all (``core.index.Generation`` has all three)."""

    def mentions(self, term: str) -> bool: ...


class HistoryError(ValueError):
    """A conversation that is not a list of {role, content} messages; the message names the turn."""


@dataclass(frozen=True)
class Turn:
    """One message of a conversation, as in OpenAI's ``messages``."""

    role: Literal["user", "assistant"]
    content: str


def read_history(messages: Sequence[Mapping[str, Any]] | None) -> list[Turn]:
    """The turns of ``messages`` ({"role": "user"|"assistant", "content": str}); ``HistoryError``
    names the first bad message (1-based) and what is wrong with it."""
    if messages is None:
        return []
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)):
        raise HistoryError("history must be a list of {role, content} messages")
    turns = []
    for number, message in enumerate(messages, 1):
        if not isinstance(message, Mapping):
            raise HistoryError(f"message {number}: must be an object with role and content")
        role, content = message.get("role"), message.get("content")
        if role not in MESSAGE_ROLES:
            raise HistoryError(f"message {number}: role must be 'user' or 'assistant', got {role!r}")
        if not isinstance(content, str):
            raise HistoryError(f"message {number}: content must be a string, got {type(content).__name__}")
        turns.append(Turn(role, content))
    return turns


@dataclass(frozen=True)
class Span:
    """A stretch of one document: a passage or section an answer to a follow-up should prefer."""

    doc_id: str
    start: int
    end: int


@dataclass(frozen=True)
class Resolution:
    """How a question is understood in its conversation.

    ``question`` is the standalone question (intent, scope, refusal and composition read it); ``search``
    is what retrieval is given (the question plus what it refers to). ``understood`` is the reading shown
    to the user ("理解为：" and this), empty for a question taken as it stands. An ordinal picks ``part``
    of a document (``part_doc``); one that points past the end of the previous answer's list is
    ``unresolved``. ``region`` holds the previous answer's passages and sections.
    """

    question: str
    kind: Kind = "standalone"
    understood: str = ""
    search: str = ""
    part: OutlineNode | None = None
    part_doc: str = ""
    region: tuple[Span, ...] = ()
    unresolved: str = ""  # why a reference points at nothing: "上一问的回答共列出4项，没有第九项。"
    subject: str = ""  # what later follow-ups borrow: the question's topic, or the picked part's headline

    @property
    def query(self) -> str:
        return self.search or self.question


@dataclass(frozen=True)
class Previous:
    """The turn before a follow-up: its question as understood, and the answer it got."""

    resolution: Resolution
    answer: Answer


def standalone(question: str) -> Resolution:
    """A question read as it stands."""
    return Resolution(question, subject=_topic(question))


def resolve(question: str, previous: Callable[[], Previous | None], library: Holdings) -> Resolution:
    """How ``question`` is understood after the turn ``previous()`` gives (None: it is the first).

    ``previous`` is called only when the question looks like a follow-up, so a standalone question costs
    nothing. ``library`` gives the outlines an ordinal's items are read from, and tells whether a word
    of the question occurs in the knowledge base.
    """
    elliptical = _elliptical(question, library)
    looks_dependent = bool(
        _ORDINAL.search(question) or _DEMONSTRATIVE.search(question) or _SWAP.match(question) or elliptical
    )
    before = previous() if looks_dependent else None
    if before is None:
        return standalone(question)
    if (ordinal := _ORDINAL.search(question)) and not before.answer.refused:
        picked = _pick(question, ordinal, before, library)
        if picked is not None:
            return picked
    if _DEMONSTRATIVE.search(question) and not before.answer.refused:
        return _anaphora(question, before, library)
    if swap := _SWAP.match(question):
        swapped = swap_subject(before.resolution.question, swap["x"].strip())
        if swapped != before.resolution.question:
            new = swap["x"].strip()
            return Resolution(swapped, "subject_swap", swapped, subject=_topic(swapped) or new)
    if elliptical or _ORDINAL.search(question):
        return _borrow(question, before, library)
    return standalone(question)


def ordinal_number(found: re.Match[str], count: int) -> int:
    """The 1-based position an ordinal names among ``count`` items (最后一条 is ``count``)."""
    if found["last"]:
        return count
    k = chinese_number(found["k"])
    return count + 1 - k if found["back"] else k


def chinese_number(text: str) -> int:
    """二 → 2, 十二 → 12, 二十 → 20, 12 → 12 (the small numbers of a list)."""
    if text.isdigit():
        return int(text)
    digits = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"两": 2}
    if "十" in text:
        tens, _, ones = text.partition("十")
        return digits.get(tens, 1) * 10 + digits.get(ones, 0)
    return digits.get(text, 0)


def _pick(question: str, found: re.Match[str], before: Previous, library: Library) -> Resolution | None:
    """The part of the previous answer's list an ordinal names; None when that answer shows no list."""
    listed = listed_parts(before.answer.citations, library)
    if not listed:
        return None
    k = ordinal_number(found, len(listed))
    asked = before.resolution.question
    if not 1 <= k <= len(listed):
        missing = f"上一问的回答共列出{len(listed)}项，没有{found[0]}。"
        return Resolution(question, "ordinal", f"上一问“{asked}”的回答中的{found[0]}", unresolved=missing)
    doc_id, node = listed[k - 1]
    document = library.document(doc_id)
    if document is None:
        return None
    headline = node.head(document.text).strip() or document.text[node.start : node.end]
    subject = _clean_headline(headline)
    rest = _ORDINAL.sub("", question).strip(_PUNCT)
    rest = re.sub(r"^(?:其中|那么?|的)", "", rest).strip(_PUNCT)
    return Resolution(
        f"{subject}{rest}",
        "ordinal",
        f"上一问“{asked}”的回答中的第{k}项：{_shortened(headline)}",
        search=f"{subject} {_topic(asked)} {rest}".strip(),
        part=node,
        part_doc=doc_id,
        region=(Span(doc_id, node.start, node.end),),
        subject=subject,
    )


def _anaphora(question: str, before: Previous, library: Library) -> Resolution:
    """The demonstrative ("这些问题") read as the previous question's subject; retrieval also gets the
    headlines the previous answer listed, and prefers its passages and sections."""
    subject = before.resolution.subject
    phrase = _DEMONSTRATIVE.search(question)
    assert phrase is not None  # resolve calls this for questions with a demonstrative only
    after = joined_words(question[phrase.end() :])
    shown = phrase[0] + (after[0][0] if after and after[0][1] else "")  # 这些 + 问题: the noun stays
    standalone_question = question[: phrase.start()] + subject + question[phrase.end() :]
    heads = _listed_heads(before, library)
    said = "；".join(heads[:4]) or before.resolution.question
    return Resolution(
        standalone_question,
        "anaphora",
        f"{question.strip()}（“{shown}”指上一问“{before.resolution.question}”的回答：{said}）",
        search=f"{standalone_question} {' '.join(heads)}".strip(),
        region=_region(before, library),
        subject=subject,
    )


def _borrow(question: str, before: Previous, library: Library) -> Resolution:
    """A question leaning on the previous one: its scope and subject, and its answer's sections."""
    asked = before.resolution.question
    scope = "".join([*(f"{y}年" for y in years_named(asked)), *issuers_named(asked)])
    scope = "" if (years_named(question) or issuers_named(question)) else scope
    subject = before.resolution.subject
    standalone_question = f"{scope}{subject}{question.strip()}"
    return Resolution(
        standalone_question,
        "elliptical",
        f"{question.strip()}（接上一问“{asked}”）",
        region=_region(before, library),
        subject=subject,
    )


def _elliptical(question: str, library: Holdings) -> bool:
    """Whether a question cannot stand alone: it opens like a continuation ("那么", "其中", "具体"), or
    it has no subject of its own (``own_subject``)."""
    text = question.strip(_PUNCT)
    return bool(_DEPENDENT_START.match(text)) or not own_subject(text, library)


def own_subject(question: str, library: Holdings) -> str:
    """The first word of ``question`` that names what it asks about and can be searched for on its own;
    "" when it has none.

    A year or an issuing body, a term of the glossary (科技金融) or a word of the domain dictionary
    names a subject; so does any other subject word (question cues, fillers, generic words and aspect
    words such as 目的, 成效, 氛围 taken out) that the knowledge base holds ("金融促进消费有哪些措施？":
    消费), or that is at least ``PARAPHRASE_IDF`` specific though the knowledge base does not hold it.
    What is left of "目的是什么？" or "营造了什么氛围？" is nothing to search for.
    """
    named = [*years_named(question), *issuers_named(question)]
    if named:
        return str(named[0])
    glossary = load_glossary()
    if terms := glossary.matches(question):  # a term of art (科技金融, 绿色金融) is a subject of its own
        start, end, _ = terms[0]
        return question[start:end]
    aspects = aspect_words()
    for found in subjects(question, glossary):
        if found.word in aspects:
            continue
        if library.mentions(found.word) or found.word in domain_words():
            return found.word  # BM25 finds the passages that use it
        if found.specificity >= PARAPHRASE_IDF:
            return (
                found.word
            )  # a thing the reports name otherwise (年轻人 for 年轻干部): dense search finds it
    return ""


def swap_subject(asked: str, new: str) -> str:
    """``asked`` with its subject replaced by ``new`` ("那X呢").

    A year replaces the year, an issuing body the body. Otherwise ``new`` takes the place of the word of
    ``asked`` that ends the way it does (银行业 → 保险业, 住房消费 → 汽车消费, 全市贷款 → 企业贷款), or,
    when none does, of the whole subject (the question without its cue words, scope and fillers).
    """
    for named in (years_named, issuers_named):
        old, wanted = named(asked), named(new)
        if wanted and old:
            unit = "年" if named is years_named else ""
            return asked.replace(f"{old[0]}{unit}", f"{wanted[0]}{unit}", 1)
    words = [w for w, _ in joined_words(asked)]
    starts = [sum(map(len, words[:i])) for i in range(len(words))]
    for size in range(len(new) - 1, 0, -1):
        head = new[-size:]  # what the new subject is: 保险业 is a kind of 业
        for i, word in enumerate(words):
            at = word.find(head)
            rest = word[at + len(head) :]
            if at < 0 or (at == 0 and i == 0) or 0 < len(rest) < 2:  # 会 of 会议 is no word of its own
                continue
            # The word before the head is what kind: inside this word (银行业), or the word before (全市贷款).
            start = starts[i] if at > 0 else starts[i - 1]
            end = starts[i] + at + len(head)
            if asked[start:end] != new and _in_topic(asked, start, end):
                return asked[:start] + new + asked[end:]
    span = _topic_span(asked)
    return asked[: span[0]] + new + asked[span[1] :] if span else asked


def _topic(question: str) -> str:
    """The question's subject as one phrase: its topic pieces without cue words, scope and fillers."""
    return "".join(understand(question).topic.split())


def _topic_span(question: str) -> tuple[int, int] | None:
    """Where the question's topic pieces lie, from the first to the last; None when it has none."""
    pieces = understand(question).topic.split()
    found = [(question.find(p), question.find(p) + len(p)) for p in pieces if p in question]
    if not found:
        return None
    start, end = min(s for s, _ in found), max(e for _, e in found)
    # Words before the subject that name no subject ("党组在强化理论武装" → "强化理论武装").
    lead = sorted(generic_words() | _PREPOSITIONS, key=len, reverse=True)
    while (word := next((w for w in lead if question.startswith(w, start, end)), None)) and start + len(
        word
    ) < end:
        start += len(word)
    return start, end


def _in_topic(question: str, start: int, end: int) -> bool:
    span = _topic_span(question)
    return span is not None and span[0] <= start and end <= span[1]


def _clean_headline(headline: str) -> str:
    """A headline without its list label and closing punctuation: "二是在“准”字上下功夫，……。" →
    "在“准”字上下功夫，……"."""
    text = re.sub(
        r"^\s*(?:[一二三四五六七八九十]+是|[（(][一二三四五六七八九十\d]+[)）]|\d+[.、．]|[一二三四五六七八九十]+、)",
        "",
        headline,
    )
    return text.strip().rstrip("。；;：:")


def _shortened(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "……"


def _listed_heads(before: Previous, library: Library) -> list[str]:
    """The headlines of the parts the previous answer listed (those it showed), or of its picked part."""
    if before.resolution.part is not None:
        return [before.resolution.subject]
    cited = {(c.doc_id, c.start) for c in before.answer.citations}
    heads = []
    for doc_id, node in listed_parts(before.answer.citations, library):
        document = library.document(doc_id)
        shown = (doc_id, node.head_start) in cited or (doc_id, node.start) in cited
        if document is not None and shown and node.kind != "line":
            heads.append(_clean_headline(node.head(document.text)))
    return [h for h in heads if h]


def _region(before: Previous, library: Library) -> tuple[Span, ...]:
    """The previous answer's passages and the innermost section or enumeration around each."""
    spans = []
    for citation in before.answer.citations:
        nodes = [
            n
            for n in outline_path(library.outline(citation.doc_id), citation.start)
            if n.kind in ("section", "enumeration")
        ]
        if nodes:
            spans.append(Span(citation.doc_id, nodes[-1].start, nodes[-1].end))
        spans.append(Span(citation.doc_id, citation.start, citation.end))
    if before.resolution.part is not None:
        part = before.resolution.part
        spans.append(Span(before.resolution.part_doc, part.start, part.end))
    return tuple(dict.fromkeys(spans))


CONDENSE_PROMPT = (
    "根据对话记录和用户最新的问题（它可能引用了对话记录中的内容），改写出一个不看对话记录也能理解的独立问题。"
    "把“这些”“第二项”“那X呢”之类的指代换成它们所指的具体内容。不要回答问题，只输出改写后的问题；"
    "问题本身已经独立时原样输出。"
)


def condense_messages(question: str, turns: Sequence[Turn]) -> list[BaseMessage]:
    """The condensing prompt: instructions, the conversation so far, the new question."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    history: list[BaseMessage] = [
        HumanMessage(t.content) if t.role == "user" else AIMessage(t.content[:MAX_CONTEXT_CHARS])
        for t in turns
    ]
    return [SystemMessage(CONDENSE_PROMPT), *history, HumanMessage(question)]


def condense(question: str, turns: Sequence[Turn], model: BaseChatModel) -> Resolution | None:
    """The LLM's standalone version of ``question``, or None when it gives nothing usable (the rules
    then decide). A model that fails raises; the caller falls back the same way."""
    reply = model.invoke(condense_messages(question, turns))
    text = str(reply.content).strip().splitlines()[0] if str(reply.content).strip() else ""
    text = re.sub(r"^(?:独立问题|改写后的问题|问题)[：:]\s*", "", text).strip().strip("“”\"'")
    if not text:
        return None
    if text == question.strip():
        return standalone(question)
    return Resolution(text, "llm", text, subject=_topic(text))
