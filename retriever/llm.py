"""Optional LLM answers through LangChain chat models, checked against the passages they were given.

The model sees the numbered passages and is asked to answer only from them with ``[n]`` markers.
Zhiwen then checks the answer itself, because small models' markers are unreliable: markers must name a
passage that was given, and a sentence whose numbers (amounts, dates, percentages) do not all appear in
the passages it cites is dropped, with a warning saying so.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from zhiwen.core.settings import Settings
from zhiwen.core.text import SENTENCE_BREAKS, char_bigrams, sentences
from zhiwen.core.types import Answer, AnswerEvent, Citation, FinalAnswer, Hit, TextDelta

if TYPE_CHECKING:  # langchain_core (and pydantic) load only when an LLM is used
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import BaseMessage

SYSTEM_PROMPT = (
    "你是“知问”，回答政府和金融监管工作报告相关问题的助手。根据用户给出的编号段落回答问题："
    "逐条列出段落中与问题相关的做法或事实，每条后面用[编号]标注出处，例如[1]。"
    "只使用段落中的内容，不要添加段落以外的知识。"
    "段落中的*号代表隐去的名称或数字，原样保留*号，不要猜测或补全。回答用中文，简洁。"
)
_MARKER = re.compile(r"\[(\d+)\]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*%?")
_LIST_LABEL = re.compile(r"^\s*(?:[（(]?\d{1,2}[.、)）]|[-*•])\s*")
_LINE_SENTENCE_BREAKS = SENTENCE_BREAKS + "\n"  # a model's list item ends at its line break


class LLMError(RuntimeError):
    """The LLM is not configured or not reachable; the message names the setting to fix."""


ROLE_NAMES = {"overview": "概述", "done": "已开展的工作", "problem": "存在的问题", "plan": "下一步打算"}


def _place(hit: Hit) -> str:
    """Where a passage sits in its report, for the model: section headings, item k of N, the part."""
    meta = hit.meta
    parts = [" › ".join(meta.get("section_path") or [])]
    if meta.get("count"):
        parts.append(f"第{meta.get('position')}/{meta['count']}项")
    if meta.get("role") in ROLE_NAMES:
        parts.append(ROLE_NAMES[meta["role"]])
    shown = "；".join(p for p in parts if p)
    return f"（{shown}）" if shown else ""


def build_messages(question: str, hits: list[Hit], wanted: str = "") -> list[BaseMessage]:
    """The prompt: numbered passages with their place in the report, and which part the question wants."""
    passages = "\n\n".join(f"[{i}]《{h.title}》{_place(h)}{h.text}" for i, h in enumerate(hits, 1))
    focus = (
        f"问题问的是{ROLE_NAMES[wanted]}，只用这一部分的内容回答；列举时逐项列出，保留原文编号。\n"
        if wanted in ROLE_NAMES
        else ""
    )
    from langchain_core.messages import HumanMessage, SystemMessage

    return [
        SystemMessage(SYSTEM_PROMPT),
        HumanMessage(f"问题：{question}\n\n段落：\n{passages}\n\n{focus}请回答：{question}"),
    ]


def chat_model_from_settings(settings: Settings) -> BaseChatModel:
    """An OpenAI-compatible endpoint when ``llm_base_url`` is set, else a local GGUF when ``llm_gguf`` is."""
    if settings.llm_base_url:
        try:
            from langchain_openai import ChatOpenAI
        except ImportError:
            raise LLMError(
                "ZHIWEN_LLM_BASE_URL is set but langchain-openai is missing: pip install 'zhiwen[llm]'"
            ) from None
        if not settings.llm_model:
            raise LLMError("ZHIWEN_LLM_BASE_URL is set but ZHIWEN_LLM_MODEL is not: name the served model")
        return ChatOpenAI(
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            api_key=settings.llm_api_key or "none",
            temperature=0,
            streaming=True,
        )
    if settings.llm_gguf:
        from .llamacpp import LlamaCppChat

        return LlamaCppChat.from_path(settings.llm_gguf)
    raise LLMError(
        "no LLM configured: set ZHIWEN_LLM_BASE_URL and ZHIWEN_LLM_MODEL, or run `zhiwen llm setup`"
    )


def stream_llm_answer(
    question: str, hits: list[Hit], model: BaseChatModel, wanted: str = ""
) -> Iterator[AnswerEvent]:
    """Yield the model's text as ``TextDelta`` events while it streams, then the checked ``FinalAnswer``."""
    raw = []
    for chunk in model.stream(build_messages(question, hits, wanted)):
        text = chunk.content if isinstance(chunk.content, str) else ""
        if text:
            raw.append(text)
            yield TextDelta(text)
    yield FinalAnswer(check_answer("".join(raw), hits))


def best_source(sentence: str, hits: list[Hit], min_share: float = 0.5) -> int | None:
    """The number of the passage a marker-less sentence was taken from, when one clearly backs it.

    Small models often drop their markers; a sentence at least half of whose character bigrams occur in
    one passage is attributed to the passage with the most of them.
    """
    grams = char_bigrams(_LIST_LABEL.sub("", sentence))
    if len(grams) < 4:
        return None
    shares = [len(grams & char_bigrams(h.text)) / len(grams) for h in hits]
    best = max(range(len(hits)), key=shares.__getitem__, default=None)
    return best + 1 if best is not None and shares[best] >= min_share else None


def check_answer(text: str, hits: list[Hit]) -> Answer:
    """Keep the sentences whose markers and numbers are backed by the passages they cite.

    An answer left with no citation cites nothing checkable; the caller falls back to the extractive one.
    """
    warnings: list[str] = []
    kept: list[str] = []
    cited: set[int] = set()
    for sentence in (m.group() for m in sentences(text, _LINE_SENTENCE_BREAKS)):
        if not sentence.strip():
            kept.append(sentence)  # line breaks between the model's list items
            continue
        marks = [int(n) for n in _MARKER.findall(sentence)]
        bad = sorted({n for n in marks if not 1 <= n <= len(hits)})
        if bad:
            warnings.append(f"删去了不存在的引用标记 {''.join(f'[{n}]' for n in bad)}")
            sentence = _MARKER.sub(lambda m, bad=bad: "" if int(m.group(1)) in bad else m.group(), sentence)
            marks = [n for n in marks if n not in bad]
        plain = _MARKER.sub("", sentence)
        if not marks and (source := best_source(plain, hits)):
            marks = [source]
            sentence = (
                sentence.rstrip("。；;\n ") + f"[{source}]" + sentence[len(sentence.rstrip("。；;\n ")) :]
            )
        evidence = "".join(hits[n - 1].text for n in marks)
        missing = [x for x in _NUMBER.findall(_LIST_LABEL.sub("", plain)) if x not in evidence]
        if missing:
            warnings.append(f"删去一句（数字 {'、'.join(missing)} 不在所引段落中）：{plain.strip()}")
            continue
        cited.update(marks)
        kept.append(sentence)
    answer = "".join(kept).strip()
    citations = tuple(
        Citation(h.chunk_id, h.doc_id, h.title, h.text, h.start, h.end, n=n)
        for n, h in enumerate(hits, 1)
        if n in cited
    )
    return Answer(answer or "资料中没有相关内容。", "llm", citations, warnings=tuple(warnings))
