"""Follow-up questions read against the conversation: ordinals, anaphora, subject swaps, ellipsis, the LLM's
condensed question, and the command line's --history file."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from zhiwen.core.types import Answer, FinalAnswer, TextDelta
from zhiwen.eval import DatasetError
from zhiwen.eval.cli import eval_group
from zhiwen.eval.followups import cites_gold, load_followups
from zhiwen.retriever import Retriever
from zhiwen.retriever.answer import ask
from zhiwen.retriever.followup import (
    KINDS,
    HistoryError,
    Span,
    chinese_number,
    own_subject,
    read_history,
    swap_subject,
)
from zhiwen.ui.cli import main

CONSUMPTION = "银保监局-主题教育与金融促进消费工作.txt"
CITY = "市局-能力作风建设年与金融重点工作推进情况.txt"
TALK = "市地方金融监管局-全市金融工作座谈会汇报发言.txt"
# Each question's own subject ("" when it has none and leans on the previous question).
SUBJECTS = {
    "金融促进消费有哪些措施？": "消费",
    "学了哪些材料？": "材料",
    "什么是科技金融？": "科技金融",
    "2023年呢？": "2023",
    "在培养年轻人方面，党组出了什么文件？": "年轻人",
    "目的是什么？": "",
    "成效怎么样？": "",
    "营造了什么氛围？": "",
    "以什么为抓手？": "",
    "完成情况怎么样？": "",
}


@pytest.fixture(scope="module")
def retriever(corpus_settings, embedder) -> Retriever:
    return Retriever(corpus_settings, embedder=embedder)


def final(stream) -> Answer:
    events = list(stream)
    assert isinstance(events[-1], FinalAnswer)
    return events[-1].answer


def converse(retriever: Retriever, *turns: str) -> Answer:
    """The answer to the last turn, each earlier one asked with the conversation so far, as a client does."""
    history: list[dict[str, str]] = []
    for question in turns[:-1]:
        answer = final(ask(question, retriever, history=history))
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.answer}]
    return final(ask(turns[-1], retriever, history=history))


def span_of(texts: dict[str, str], doc_id: str, phrase: str) -> tuple[int, int]:
    start = texts[doc_id].index(phrase)
    return start, start + len(phrase)


def assert_cites_within(answer: Answer, texts: dict[str, str], doc_id: str, phrase: str) -> None:
    """Not refused, every citation an exact slice, one sharing at least half of itself or ``phrase``."""
    assert not answer.refused, answer.answer
    for c in answer.citations:
        assert texts[c.doc_id][c.start : c.end] == c.text
    assert cites_gold(answer, [Span(doc_id, *span_of(texts, doc_id, phrase))]), answer.answer


def test_chinese_ordinals_are_read_as_numbers():
    assert [chinese_number(t) for t in ("二", "四", "十", "十二", "二十", "两", "7")] == [
        2,
        4,
        10,
        12,
        20,
        2,
        7,
    ]


def test_a_history_must_be_user_and_assistant_messages_with_text():
    assert read_history([{"role": "user", "content": "问"}, {"role": "assistant", "content": "答"}])[
        1
    ].role == ("assistant")
    for bad, message in (
        ([{"role": "system", "content": "x"}], "message 1: role must be 'user' or 'assistant'"),
        ([{"role": "user"}], "message 1: content must be a string"),
        (["问"], "message 1: must be an object"),
        ("问", "history must be a list"),
    ):
        with pytest.raises(HistoryError, match=message):
            read_history(bad)


def test_that_x_swaps_the_word_of_the_same_kind_or_the_whole_subject():
    assert (
        swap_subject("银行业对新市民提供了哪些金融支持？", "保险业") == "保险业对新市民提供了哪些金融支持？"
    )
    assert swap_subject("银保监局怎样支持居民住房消费？", "汽车消费") == "银保监局怎样支持居民汽车消费？"
    assert swap_subject("截至5月末全市贷款余额是多少？", "企业贷款") == "截至5月末企业贷款余额是多少？"
    assert (
        swap_subject("金融监管局党组2022年的工作以什么为指导？", "2023年")
        == "金融监管局党组2023年的工作以什么为指导？"
    )
    assert (
        swap_subject("金融监管局党组在强化理论武装方面做了哪些工作？", "基层组织建设")
        == "金融监管局党组在基层组织建设方面做了哪些工作？"
    )


@pytest.mark.slow
def test_an_ordinal_is_answered_from_that_item_of_the_previous_answer(retriever, corpus_texts):
    answer = converse(retriever, "金融促进消费有哪些措施？", "第二项具体是什么？")
    assert answer.answer.startswith("理解为：") and "第2项" in answer.understood and "准" in answer.understood
    assert "二是在“准”字上下功夫，助力扩大居民消费需求。" in answer.answer
    assert_cites_within(
        answer, corpus_texts, CONSUMPTION, "*银保监局督促银行业金融机构用好用足阶段性调整差别化住房信贷政策"
    )
    alone = final(ask("第二项具体是什么？", retriever))
    assert alone.understood == "" and "准" not in "".join(c.text for c in alone.citations[:1])


@pytest.mark.slow
def test_the_last_item_and_an_item_past_the_end(retriever, corpus_texts):
    last = converse(retriever, "金融促进消费有哪些措施？", "最后一条讲的什么？")
    assert "第4项" in last.understood and "惠" in last.understood
    assert_cites_within(
        last, corpus_texts, CONSUMPTION, "*银保监局鼓励银行业金融机构设立促进消费专项信贷资金"
    )
    # An answer that quoted a section's sentences line by line: "最后一条" is its last line.
    lines = converse(
        retriever, "市地方金融监管局在提升地方金融监管能力方面采取了哪些举措？", "最后一条讲的什么？"
    )
    assert "第5项" in lines.understood and len(lines.citations) == 1
    assert_cites_within(lines, corpus_texts, TALK, "坚持防范为主、打早打小")
    past = converse(retriever, "金融促进消费有哪些措施？", "第九项呢？")
    assert (
        past.refused
        and past.refusal.rule == "reference"
        and "共列出4项，没有第九项" in past.answer
        and not past.citations
    )


@pytest.mark.slow
def test_these_problems_point_at_the_previous_answer(retriever, corpus_texts):
    answer = converse(retriever, "当前小微企业融资难问题主要表现在哪些方面？", "针对这些问题下一步怎么办？")
    assert "“这些问题”指" in answer.understood
    assert_cites_within(answer, corpus_texts, CITY, "二是推进政府融资担保体系建设")


@pytest.mark.slow
def test_that_x_ne_swaps_the_subject_of_the_previous_question(retriever, corpus_texts):
    answer = converse(retriever, "银行业对新市民提供了哪些金融支持？", "那保险业呢？")
    assert answer.understood == "保险业对新市民提供了哪些金融支持？"
    assert_cites_within(answer, corpus_texts, CONSUMPTION, "全省保险业为新市民提供风险保障*.*万亿元。")


@pytest.mark.slow
def test_a_question_without_a_subject_of_its_own_borrows_the_previous_one(retriever, corpus_texts):
    answer = converse(retriever, "科技金融专业机构要遵循什么原则？", "目的是什么？")
    assert answer.understood == "目的是什么？（接上一问“科技金融专业机构要遵循什么原则？”）"
    answer = converse(retriever, "金融监管局党组怎么推进清廉金融文化建设？", "营造了什么氛围？")
    assert "接上一问" in answer.understood and not answer.refused


@pytest.mark.slow
def test_a_question_is_self_contained_when_its_own_subject_can_be_searched_for(retriever):
    """Length does not decide: a subject word the knowledge base holds (消费, 材料), a term, a year or an
    issuing body make a question stand alone; aspect words (目的, 氛围, 成效) and cues do not."""
    with retriever.pinned() as library:
        subject = {q: own_subject(q, library) for q in SUBJECTS}
        long_and_vague = "请问一下当时营造了一种什么样的氛围，起到了什么作用？"
        assert own_subject(long_and_vague, library) == "", "a long question may lean on the previous one"
    assert subject == SUBJECTS


@pytest.mark.slow
def test_a_new_question_after_a_conversation_is_taken_as_it_stands(retriever):
    for question in (
        "村镇银行取款难事件有什么进展？",
        "什么是科技金融？",
        "绿色金融发展得怎么样？",
        "以上率下抓领学是怎么做的？",
    ):
        followed = converse(retriever, "金融促进消费有哪些措施？", question)
        alone = final(ask(question, retriever))
        assert followed.understood == "" and followed.answer == alone.answer, question
        assert followed.citations == alone.citations
    # A new question of plain words (no term of art, 11 characters) after another subject stands alone too.
    followed = converse(retriever, "如何支持新市民金融？", "金融促进消费有哪些措施？")
    alone = final(ask("金融促进消费有哪些措施？", retriever))
    assert followed.understood == "" and followed.citations == alone.citations


@pytest.mark.slow
def test_the_llm_condenses_the_conversation_into_a_standalone_question(retriever, corpus_texts):
    condensed = "保险业对新市民提供了哪些金融支持？"
    reply = "全省保险业为新市民提供风险保障*.*万亿元[1]。"
    model = GenericFakeChatModel(messages=iter([AIMessage(condensed), AIMessage("能"), AIMessage(reply)]))
    history = [
        {"role": "user", "content": "银行业对新市民提供了哪些金融支持？"},
        {"role": "assistant", "content": "……"},
    ]
    events = list(ask("那保险业呢？", retriever, use_llm=True, chat_model=model, history=history))
    assert events[0] == TextDelta(f"理解为：{condensed}\n")
    answer = events[-1].answer
    assert answer.mode == "llm" and answer.understood == condensed and answer.citations
    assert answer.answer.startswith(f"理解为：{condensed}\n")


@pytest.mark.slow
def test_the_rules_take_over_when_the_llm_gives_no_standalone_question(retriever):
    reply = "在“准”字上下功夫，助力扩大居民消费需求[1]。"
    model = GenericFakeChatModel(messages=iter([AIMessage(""), AIMessage("能"), AIMessage(reply)]))
    first = final(ask("金融促进消费有哪些措施？", retriever))
    history = [
        {"role": "user", "content": "金融促进消费有哪些措施？"},
        {"role": "assistant", "content": first.answer},
    ]
    answer = final(ask("第二项具体是什么？", retriever, use_llm=True, chat_model=model, history=history))
    assert "第2项" in answer.understood and answer.citations


@pytest.mark.slow
def test_cli_ask_reads_the_conversation_from_a_history_file(corpus_settings, tmp_path):
    history = tmp_path / "history.json"
    messages = [
        {"role": "user", "content": "银行业对新市民提供了哪些金融支持？"},
        {"role": "assistant", "content": "……"},
    ]
    history.write_text(json.dumps(messages, ensure_ascii=False), encoding="utf-8")
    index = ["--index", str(corpus_settings.index_dir)]
    result = CliRunner().invoke(main, ["ask", "那保险业呢？", "--history", str(history), "--json", *index])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["understood"] == "保险业对新市民提供了哪些金融支持？" and not data["refused"]
    plain = CliRunner().invoke(main, ["ask", "那保险业呢？", "--history", str(history), *index])
    assert plain.stdout.startswith("理解为：保险业对新市民提供了哪些金融支持？\n")


def test_cli_history_errors_are_one_line_naming_the_file(tmp_path):
    def error(content: str | None) -> str:
        path = tmp_path / "h.json"
        path.unlink(missing_ok=True)
        if content is not None:
            path.write_text(content, encoding="utf-8")
        result = CliRunner().invoke(main, ["ask", "第二项呢？", "--history", str(path)])
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0]
        return lines[0]

    assert "no such file" in error(None)
    assert "not valid JSON" in error("[{")
    assert "must be a JSON list" in error('{"role": "user"}')
    assert "message 2: role must be 'user' or 'assistant', got 'system'" in error(
        '[{"role": "user", "content": "问"}, {"role": "system", "content": "x"}]'
    )
    assert "message 1: content must be a string" in error('[{"role": "user", "content": 3}]')


def test_the_follow_up_set_covers_every_kind_with_gold_spans_verbatim(tmp_path):
    conversations = load_followups()
    assert len(conversations) >= 15 and {c.kind for c in conversations} == set(KINDS)
    bad = tmp_path / "followups.jsonl"
    rows = [
        {
            "qid": "x1",
            "turns": ["问？", "第二项呢？"],
            "kind": "ordinal",
            "gold": [{"doc_id": CITY, "span": "没有的话"}],
        },
        {"qid": "x1", "turns": ["问？"], "kind": "ordinal", "gold": []},
        {"qid": "x3", "turns": ["问？", "那呢？"], "kind": "swap", "gold": []},
    ]
    bad.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        load_followups(bad)
    assert str(caught.value).splitlines() == [
        f"{bad}:1: x1: gold 1: the span is not verbatim in {CITY}",
        f"{bad}:2: x1: 'turns' must be a list of at least two non-empty questions",
        f"{bad}:3: x3: kind must be one of ordinal, anaphora, subject_swap, elliptical; got 'swap'",
    ]


@pytest.mark.slow
def test_eval_followups_prints_success_per_kind_with_and_without_history(tmp_path, corpus_settings):
    args = ["followups", "--limit", "2", "--quiet", "--index-root", str(tmp_path / "idx")]
    result = CliRunner().invoke(eval_group, args)
    assert result.exit_code == 0, result.output
    assert "follow-ups: 2 conversations over corpus/" in result.output
    assert "with history" in result.output and "without history" in result.output
    report = json.loads(CliRunner().invoke(eval_group, [*args, "--json"]).stdout)
    assert report["by_kind"]["all"]["conversations"] == 2 == len(report["conversations"])
    for conversation in report["conversations"]:
        assert conversation["success"] == (conversation["qid"] not in result.output.split("failures")[-1])
    # f001's "第二项具体是什么？" is read against the conversation; f002's "推广了哪些业务模式？" names
    # words the knowledge base holds, so it is taken as it stands.
    assert [bool(c["understood"]) for c in report["conversations"]] == [True, False]
