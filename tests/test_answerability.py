"""The subject check: subject words, general-language specificity, coverage by the knowledge base."""

from __future__ import annotations

from zhiwen.core.types import Hit
from zhiwen.retriever.answer import SUBJECT_MARGIN, evidence, near_miss
from zhiwen.retriever.answerability import covers, general_idf, subjects, uncovered_subject
from zhiwen.retriever.topics import load_glossary

KB = [
    "支持房地产市场平稳健康发展，加大个人住房贷款投放。",
    "鼓励银行机构加大汽车消费金融支持，优化新能源汽车贷款审批。",
    "从新市民金融需求出发，量身打造新市民专属信贷产品。",
]


def contexts(term: str) -> list[str]:
    return [passage for passage in KB if term in passage]


def words(question: str) -> list[str]:
    return [s.word for s in subjects(question, load_glossary())]


def test_subject_words_leave_out_years_generic_words_and_cues():
    assert words("2022年房地产税试点在哪些城市？")[:2] == ["房地产税", "试点"]  # 房地产 + 税 joined
    assert "2022" not in " ".join(words("2022年金融工作情况怎么样？"))
    assert words("2022年金融工作情况怎么样？") == []  # a year and generic words name no subject
    assert "时候" not in words("延期还本付息政策什么时候到期？")  # part of the cue 什么时候


def test_specificity_comes_from_jieba_frequencies():
    assert general_idf("外地") < general_idf("购置税")
    assert general_idf("房地产税") > general_idf("房地产"), "a compound is rarer than its pieces"
    assert general_idf("LPR") >= general_idf("购置税")


def test_a_word_inside_a_longer_unrelated_one_is_not_covered():
    assert covers(KB[0], "住房贷款"), "the head of 个人住房贷款"
    assert covers(KB[0], "房地产")
    assert not covers("开展房地产税立法研究。", "房地产"), "房地产 runs on into 房地产税"
    assert not covers(KB[1], "汽车消"), "a piece of a word is no word"


def test_the_uncovered_subject_is_the_most_specific_word_the_kb_lacks():
    glossary = load_glossary()
    assert uncovered_subject("车辆购置税减免政策是什么？", contexts, glossary).word == "购置税"
    assert uncovered_subject("2022年房地产税试点在哪些城市？", contexts, glossary).word == "房地产税"
    # plain words of a paraphrase are not specific enough to matter
    assert uncovered_subject("外地来城里打工的人能办什么专门的贷款？", contexts, glossary) is None
    # a word in Latin letters is decisive in a Chinese question, and proves nothing in an English one
    atm = uncovered_subject("ATM机吞卡了怎么办？", contexts, glossary)
    assert atm is not None and atm.decisive
    assert uncovered_subject("What is the ATM policy?", contexts, glossary, english=True) is None


def hit(text: str, dense: float) -> Hit:
    return Hit("c1", "d1", "报告", text, 0, len(text), rank=1, score=dense, scores={"dense": dense})


def test_an_uncovered_subject_raises_the_bar_and_is_named():
    glossary = load_glossary()
    subject = uncovered_subject("车辆购置税减免政策是什么？", contexts, glossary)
    hits = [hit(KB[1], 0.85)]
    found = evidence("车辆购置税减免政策是什么？", hits, (), subject)
    refusal = found.refusal(0.84)
    assert refusal is not None and refusal.rule == "subject" and refusal.detail == "购置税"
    assert found.refusal(0.85 - SUBJECT_MARGIN) is None, "a passage relevant enough still answers"
    assert evidence("汽车消费金融有什么支持？", hits).refusal(0.84) is None
    # a year in scope does not rescue it: the subject is still missing
    in_scope = evidence("2022年车辆购置税减免政策是什么？", [hit("2022年" + KB[1], 0.85)], (), subject)
    assert in_scope.refusal(0.84).rule == "subject"


def test_near_miss_quotes_what_the_kb_covers_nearby():
    assert near_miss("车辆购置税", [hit(KB[1], 0.85)]).startswith("鼓励银行机构加大汽车消费金融支持")
    assert near_miss("国债", [hit(KB[2], 0.85)]) == ""


def test_judge_verdicts_are_read_from_the_reply():
    from zhiwen.retriever.judge import parse_verdict

    assert parse_verdict("不能。段落谈的是消费金融。") == "no"
    assert parse_verdict("部分") == "partly"
    assert parse_verdict("能") == "yes"
    assert parse_verdict("Partly: the passages mention cars.") == "partly"
    assert parse_verdict("我不确定") == "unclear"


def test_a_quoted_name_is_covered_by_its_verbatim_occurrence_and_never_decisive():
    glossary = load_glossary()
    assert uncovered_subject("“汽车消费金融”有哪些支持？", contexts, glossary) is None
    missing = uncovered_subject("“清廉蜀风”品牌是哪一年创建的？", contexts, glossary)
    assert missing is not None and missing.quoted and not missing.decisive
