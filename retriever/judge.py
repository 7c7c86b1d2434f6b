"""The LLM as a judge of answerability: do the given passages answer the question (yes, partly, no)?

The offline rules (``answer.Evidence``) are the floor: the judge is asked only about questions they let
through, and it can only refuse more, never answer what they refused. A reply the judge's parser cannot
read counts as "yes": the offline decision stands, and the answer says the judge gave no verdict.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from zhiwen.core.types import Hit

if TYPE_CHECKING:  # langchain_core (and pydantic) load only when an LLM is used
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import BaseMessage

Verdict = Literal["yes", "partly", "no", "unclear"]

JUDGE_PROMPT = (
    "你是严谨的资料管理员。判断下面的编号段落能否回答用户的问题，只看段落写了什么，不用段落以外的知识。"
    "段落直接回答了问题，答“能”；只回答了一部分，或只谈到相关的话题而没有问题要的内容（例如问题问税收政策，"
    "段落只谈消费金融），答“部分”；段落没有回答问题，答“不能”。只答一个词：能、部分或不能。"
)
# The first verdict word of the reply; "不能" before "能" (it contains it), English words as a fallback.
_VERDICT = re.compile(r"不能|部分|能|\b(?:no|partly|partially|yes)\b", re.IGNORECASE)
_MEANING: dict[str, Verdict] = {
    "不能": "no",
    "部分": "partly",
    "能": "yes",
    "no": "no",
    "partly": "partly",
    "partially": "partly",
    "yes": "yes",
}


# The judge's reply is one word; a longer one is cut here (a small local model may explain itself at length).
JUDGE_TOKENS = 16


# Worked examples shown before the question, as earlier turns: the same passage answers one question and
# not another that shares its words (汽车消费 vs 车辆购置税; 房地产行业 vs 房地产税, the issue's own
# examples), and a paraphrase in plain words is answered. A 1.5B model without them never said 不能 and
# said 部分 to a third of answerable questions (README, With an LLM).
_CAR = "积极发展汽车消费金融，支持购置新能源汽车、活跃二手车市场、促进汽车更新消费等。"
_ESTATE = (
    "紧密结合“万人助万企”、“行长进万企”等活动，共开展“专精特新”、绿色金融、重点项目、建筑和房地产行业等线上、"
    "线下银企对接活动50余次，走访企业943家，解决问题278个。"
)
JUDGE_EXAMPLES = (
    ("车辆购置税减免政策是什么？", _CAR, "不能"),
    ("怎么用金融支持汽车消费？", _CAR, "能"),
    ("2022年房地产税试点在哪些城市？", _ESTATE, "不能"),
    ("外地来城里打工的人能办什么专门的贷款？", "从新市民金融需求出发，量身打造新市民专属信贷产品。", "能"),
)


def _asking(question: str, passages: str) -> str:
    return f"问题：{question}\n\n段落：\n{passages}\n\n判断："


def judge_messages(question: str, hits: list[Hit]) -> list[BaseMessage]:
    """The judge's prompt: the worked examples, then the question and the numbered passages the answer
    would cite."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    examples: list[BaseMessage] = []
    for asked, passage, verdict in JUDGE_EXAMPLES:
        examples += [HumanMessage(_asking(asked, f"[1]《报告》{passage}")), AIMessage(verdict)]
    passages = "\n\n".join(f"[{i}]《{h.title}》{h.text}" for i, h in enumerate(hits, 1))
    return [SystemMessage(JUDGE_PROMPT), *examples, HumanMessage(_asking(question, passages))]


def parse_verdict(reply: str) -> Verdict:
    """The verdict a reply gives: its first verdict word, or "unclear" when it has none."""
    found = _VERDICT.search(reply)
    return _MEANING[found[0].lower()] if found else "unclear"


def judge(question: str, hits: list[Hit], model: BaseChatModel) -> Verdict:
    """Whether ``hits`` answer ``question``, as the chat ``model`` judges it."""
    reply = model.invoke(judge_messages(question, hits), max_tokens=JUDGE_TOKENS)
    return parse_verdict(str(reply.content))
