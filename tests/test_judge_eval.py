"""Measuring the LLM judge (``zhiwen eval --judge``): the refusal table with and without it, the judge
asked only about what the offline rules let through, shown the passages ``ask`` shows it.

The LLM is langchain's ``GenericFakeChatModel`` (it replies with the verdicts given, in order); the
retriever, index and embedding model are the real ones over corpus/.
"""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from zhiwen.core.types import FinalAnswer, Refusal
from zhiwen.eval import load_dataset
from zhiwen.eval.cli import eval_group
from zhiwen.eval.refusal import (
    judge_features,
    judge_lines,
    question_features,
    question_verdict,
    refusal_lines,
    verdict_counts,
)
from zhiwen.retriever import Retriever
from zhiwen.retriever.answer import Evidence, ask

THRESHOLD = 0.842


class Prompts(BaseCallbackHandler):
    """The prompts a chat model was sent, as text, in order."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[Any]], **kwargs: Any
    ) -> None:
        self.sent += ["\n".join(str(m.content) for m in batch) for batch in messages]


def fake_judge(*replies: str, prompts: Prompts | None = None) -> GenericFakeChatModel:
    """A chat model replying ``replies`` in order; one call more fails (its iterator is spent)."""
    return GenericFakeChatModel(
        messages=iter(AIMessage(r) for r in replies), callbacks=[prompts] if prompts else None
    )


@pytest.fixture(scope="module")
def retriever(corpus_settings, embedder) -> Retriever:
    return Retriever(corpus_settings, embedder=embedder)


def test_the_table_counts_judge_refusals_and_partial_verdicts_apart():
    data = load_dataset("refusal", limit=8)  # r001..r007 paraphrases, r008 an in-domain negative
    offline = [(q.negative, Evidence(0.90)) for q in data.queries]
    offline[2] = (False, Evidence(0.70, Refusal("topic", 0.70, "国债")))  # the judge is never asked
    verdicts = ["yes", "no", None, "partly", "yes", "unclear", "yes", "partly"]
    judged = [
        (neg, Evidence(found.relevance, found.ruled, verdict=v)) for (neg, found), v in zip(offline, verdicts)
    ]
    lines = [line.split() for line in refusal_lines(data, judged, THRESHOLD)]
    assert ["judge", "0", "/", "1"] in lines and ["topic", "0", "/", "1"] in lines
    assert ["judge", "said", "partly", "(answered", "with", "a", "warning):", "1", "/", "1"] in lines
    assert ["judge", "said", "no", "verdict:", "0", "/", "1"] in lines
    assert ["r008", "0.900", "[partly]"] == lines[
        lines.index(["hardest", "negatives", "answered", "(of", "1):"]) + 1
    ][:3]
    assert verdict_counts(judged) == {
        "negatives": {"yes": 0, "partly": 1, "no": 0, "unclear": 0},
        "answerable": {"yes": 3, "partly": 1, "no": 1, "unclear": 1},
    }
    # Offline alone, the table has no judge rows; with the judge, both tables and a summary line each
    assert not any(line[:1] == ["judge"] for line in map(str.split, refusal_lines(data, offline, THRESHOLD)))
    both = judge_lines(data, offline, judged, THRESHOLD, seconds=2.5)
    assert both[0] == "offline rules alone:" and "offline rules + LLM judge:" in both
    summary = [line.split() for line in both[-3:]]
    assert summary[0][:1] == ["offline"] and summary[0][-5:] == ["refused", "1", "of", "7", "(14.3%)"]
    assert summary[1][:3] == ["offline", "+", "judge"] and summary[1][-5:] == [
        "refused",
        "2",
        "of",
        "7",
        "(28.6%)",
    ]
    assert summary[2][:4] == ["judged", "7", "of", "8"] and "2.5 s per judged question" in both[-1]


def test_the_judge_is_asked_only_what_the_offline_rules_let_through(retriever):
    data = load_dataset("refusal", limit=12)
    features = question_features(data, retriever)
    through = [q.query for q, (_, found) in zip(data.queries, features) if found.refusal(THRESHOLD) is None]
    assert 2 <= len(through) < len(features), "the slice has questions both ways"
    prompts = Prompts()
    replies = ["不能", "部分"] + ["能"] * (len(through) - 2)
    judged, seconds = judge_features(
        data, features, retriever, fake_judge(*replies, prompts=prompts), THRESHOLD, progress=False
    )
    assert [p.rsplit("问题：", 1)[1].split("\n")[0] for p in prompts.sent] == through, "each once, in order"
    assert seconds >= 0.0
    for (_, before), (_, after) in zip(features, judged):
        if before.refusal(THRESHOLD) is not None:
            assert after == before, "what the offline rules refused is never asked about and stays refused"
    asked = [found for _, found in judged if found.verdict is not None]
    assert [f.verdict for f in asked] == ["no", "partly"] + ["yes"] * (len(through) - 2)
    assert asked[0].refusal(THRESHOLD).rule == "judge" and asked[1].refusal(THRESHOLD) is None
    refused = sum(1 for _, f in judged if f.refusal(THRESHOLD)) - sum(
        1 for _, f in features if f.refusal(THRESHOLD)
    )
    assert refused == 1


def test_the_judge_sees_the_passages_ask_shows_it(retriever):
    question = "如何支持新市民金融？"
    in_ask, in_eval = Prompts(), Prompts()
    events = list(ask(question, retriever, use_llm=True, chat_model=fake_judge("不能", prompts=in_ask)))
    assert isinstance(events[-1], FinalAnswer) and events[-1].answer.refusal.rule == "judge"
    assert question_verdict(question, retriever, fake_judge("不能", prompts=in_eval)) == "no"
    assert in_eval.sent == in_ask.sent and "[1]《" in in_eval.sent[0]


def test_judge_without_an_llm_is_a_one_line_error(tmp_path):
    args = [
        "--judge",
        "--chunkers",
        "structure",
        "--strategies",
        "hybrid",
        "-q",
        "--index-root",
        str(tmp_path),
    ]
    result = CliRunner().invoke(eval_group, args)
    assert result.exit_code == 1
    expected = (
        "Error: --judge needs an LLM: no LLM configured: set ZHIWEN_LLM_BASE_URL and ZHIWEN_LLM_MODEL, "
        "or run `zhiwen llm setup`"
    )
    assert result.output.strip().splitlines() == [expected]
    assert not any(tmp_path.iterdir()), "nothing is indexed before the error"
