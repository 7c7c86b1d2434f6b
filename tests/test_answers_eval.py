"""Answer-level evaluation: scoring hand-made answers, the answer set's data, one run of the command."""

import json

import pytest
from click.testing import CliRunner
from zhiwen.core.types import Answer, Citation, Document, Refusal
from zhiwen.eval import DatasetError
from zhiwen.eval.answers import (
    ANSWERS_PATH,
    FACETS,
    INTENTS,
    AnswerQuestion,
    Phrase,
    by_intent,
    failures,
    load_answer_set,
    score_answer,
    summarise,
)
from zhiwen.eval.cli import eval_group
from zhiwen.eval.datasets import ENGLISH_PATH, GOLDEN_PATH, _read_jsonl

DOC = "d.txt"
QUESTION = AnswerQuestion(
    "a1",
    "做了哪些工作？",
    "list",
    "done",
    must=(Phrase(DOC, "开展银企对接活动"), Phrase(DOC, "压降不良贷款"), Phrase(DOC, "设立**担保公司")),
    must_not=(Phrase(DOC, "融资难问题仍然突出"),),
)


def cite(n: int, text: str) -> Citation:
    return Citation(f"{DOC}#{n}", DOC, "标题", text, 0, len(text), n=n)


def answer(text: str, *citations: Citation, refused: bool = False) -> Answer:
    refusal = Refusal("relevance", 0.1) if refused else None
    return Answer(text, "extractive", citations=citations, refusal=refusal)


# Scoring, pure.


def test_completeness_is_the_share_of_required_phrases_said():
    score = score_answer(QUESTION, answer("一是开展银企对接\n活动[1]。二是压降不良贷款[2]。"))
    assert score.found == ("开展银企对接活动", "压降不良贷款")  # a line break inside a phrase is ignored
    assert score.missing == ("设立**担保公司",)
    assert score.completeness == pytest.approx(2 / 3) and not score.complete


def test_anonymisation_marks_are_data():
    assert score_answer(QUESTION, answer("设立担保公司")).missing[-1] == "设立**担保公司"
    said = score_answer(QUESTION, answer("开展银企对接活动，压降不良贷款，设立**担保公司。"))
    assert said.complete and said.completeness == 1.0


def test_citations_count_for_completeness_but_not_for_wrong_facet():
    cited = cite(1, "压降不良贷款，设立**担保公司。但融资难问题仍然突出。")
    score = score_answer(QUESTION, answer("开展银企对接活动[1]。", cited))
    assert score.complete
    assert not score.wrong_facet and score.forbidden == ()
    assert score.cited_forbidden == ("融资难问题仍然突出",)


def test_a_forbidden_phrase_in_the_answer_text_is_the_wrong_facet():
    score = score_answer(QUESTION, answer("融资难问题仍然突出。"))
    assert score.wrong_facet and score.forbidden == ("融资难问题仍然突出",)
    assert score.completeness == 0.0


def test_a_refused_answer_is_incomplete_whatever_it_says():
    said = "开展银企对接活动，压降不良贷款，设立**担保公司。"
    score = score_answer(QUESTION, answer(said, refused=True))
    assert score.refused and not score.complete and score.completeness == 0.0


def test_summary_rates_and_median_length_over_the_set():
    fact = AnswerQuestion("a2", "多少？", "fact", "any", must=(Phrase(DOC, "12户"),))
    scores = [
        score_answer(QUESTION, answer("开展银企对接活动，压降不良贷款，设立**担保公司。")),  # 24 chars
        score_answer(QUESTION, answer("融资难问题仍然突出。")),  # 10 chars
        score_answer(fact, answer("共12户。")),  # 5 chars
        score_answer(fact, answer("知识库未涉及", refused=True)),  # 6 chars
    ]
    total = summarise(scores)
    assert total["questions"] == 4 and total["refused"] == 1
    assert total["completeness"] == pytest.approx((1 + 0 + 1 + 0) / 4)
    assert total["complete_rate"] == 0.5 and total["wrong_facet_rate"] == 0.25
    assert total["median_length"] == 8  # of 5, 6, 10, 24
    intents = by_intent(scores)
    assert list(intents) == ["list", "fact"]
    assert intents["list"]["complete_rate"] == 0.5 and intents["fact"]["refused"] == 1
    assert [s.question.qid for s in failures(scores)] == ["a1", "a2"]  # wrong facet first, then the refusal


# The data.


def test_every_answer_phrase_is_verbatim_in_its_document_and_rows_are_valid():
    questions = load_answer_set()
    rows = [row for _, row in _read_jsonl(ANSWERS_PATH)]
    assert len(questions) == len(rows) == 55
    assert len({q.qid for q in questions}) == len(questions)
    assert {q.intent for q in questions} <= set(INTENTS) and {q.facet for q in questions} <= set(FACETS)
    assert all(q.must for q in questions)


def test_english_questions_name_golden_originals():
    golden = {row["qid"] for _, row in _read_jsonl(GOLDEN_PATH)}
    sources = [row["source_qid"] for _, row in _read_jsonl(ENGLISH_PATH)]
    assert len(sources) == 23 and set(sources) <= golden


def test_bad_rows_are_reported_with_file_and_line(tmp_path):
    docs = [Document(DOC, "", "一是开展银企对接活动。")]
    good = {"qid": "a1", "query": "q", "intent": "list", "facet": "done"}
    rows = [
        good | {"must": [{"doc_id": DOC, "phrase": "开展银企对接活动"}]},
        good | {"must": [{"doc_id": DOC, "phrase": "开展银企 对接活动"}]},
        good | {"qid": "a3", "intent": "story", "must": [{"doc_id": DOC, "phrase": "一是"}]},
        good | {"qid": "a4", "must": [{"doc_id": "missing.txt", "phrase": "一是"}]},
    ]
    path = tmp_path / "answers.jsonl"
    path.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n{oops\n", encoding="utf-8"
    )
    with pytest.raises(DatasetError) as caught:
        load_answer_set(path, docs)
    assert str(caught.value).startswith(f"{path}:5: not valid JSON")
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        load_answer_set(path, docs)
    assert str(caught.value).splitlines() == [
        f"{path}:2: a1: qid used twice",
        f"{path}:2: a1: must 1: '开展银企 对接活动' is not verbatim in {DOC}",
        f"{path}:3: a3: intent must be one of {', '.join(INTENTS)}; got 'story'",
        f"{path}:4: a4: must 1: no document 'missing.txt' in the corpus",
    ]


# End to end through the real index and answer path (the corpus fixture has embedded these chunks).


@pytest.mark.slow
def test_answers_command_end_to_end(tmp_path, corpus_settings):
    args = ["answers", "--limit", "3", "--json", "--quiet", "--index-root", str(tmp_path / "idx")]
    args += ["--english", "--report", str(tmp_path / "out")]
    result = CliRunner().invoke(eval_group, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["summary"]["questions"] == 3 and len(report["questions"]) == 3
    assert 0.0 <= report["summary"]["completeness"] <= 1.0
    for question in report["questions"]:
        assert question["length"] == len(question["answer"]) > 0
        assert question["complete"] == (not question["missing"] and not question["refused"])
    english = report["english"]
    assert english["questions"] == len(english["pairs"]) == 3
    assert {p["source_qid"] for p in english["pairs"]} == {"g002", "g005", "g011"}
    assert 0.0 <= english["recall@5"] <= 1.0 and 0.0 <= english["source_recall@5"] <= 1.0
    written = (tmp_path / "out" / "answers.md").read_text(encoding="utf-8")
    assert "mean completeness" in written
    for question in report["questions"]:
        if not question["complete"] or question["wrong_facet"]:
            assert question["answer"] in written and all(p in written for p in question["missing"])
    alias = CliRunner().invoke(
        eval_group, ["--answers", "--limit", "1", "--quiet", "--index-root", str(tmp_path / "idx")]
    )
    assert alias.exit_code == 0, alias.output
    assert "answers: 1 questions over corpus/" in alias.output and "mean completeness" in alias.output
