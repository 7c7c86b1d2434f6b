"""The subject check: subject words, general-language specificity, coverage by the knowledge base."""

from __future__ import annotations

from zhiwen.core.types import Hit, Refusal
from zhiwen.retriever.answer import SUBJECT_MARGIN, evidence, extractive_answer, near_miss
from zhiwen.retriever.answerability import (
    Gaps,
    MissingDetail,
    abbreviated,
    abbreviations,
    asked_detail,
    covers,
    detail_given,
    general_idf,
    subjects,
    uncovered_subject,
    unmet_detail,
)
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
    question = "二手车交易平台有什么支持？"
    subject = uncovered_subject(question, contexts, glossary)
    assert subject is not None and subject.word == "二手车" and not subject.decisive
    hits = [hit(KB[1], 0.85)]
    found = evidence(question, hits, Gaps(subject=subject))
    refusal = found.refusal(0.84)
    assert refusal is not None and refusal.rule == "subject" and refusal.detail == "二手车"
    assert found.refusal(0.85 - SUBJECT_MARGIN) is None, "a passage relevant enough still answers"
    assert evidence("汽车消费金融有什么支持？", hits).refusal(0.84) is None
    # a year in scope does not rescue it: the subject is still missing
    in_scope = evidence("2022年" + question, [hit("2022年" + KB[1], 0.85)], Gaps(subject=subject))
    assert in_scope.refusal(0.84).rule == "subject"


def test_an_instrument_the_kb_lacks_is_decisive_whatever_the_relevance():
    glossary = load_glossary()
    subject = uncovered_subject("车辆购置税减免政策是什么？", contexts, glossary)
    assert subject is not None and subject.word == "购置税" and subject.decisive
    found = evidence("2022年车辆购置税减免政策是什么？", [hit("2022年" + KB[1], 0.95)], Gaps(subject=subject))
    assert found.refusal(0.84) == Refusal("subject", 0.95, "购置税")
    assert uncovered_subject("个人住房贷款利率是多少？", contexts, glossary).word == "利率", (
        "measured, lacking"
    )
    assert uncovered_subject("个人住房贷款余额是多少？", contexts, glossary) is None, "measured, held"


def test_near_miss_quotes_what_the_kb_covers_nearby():
    assert near_miss("车辆购置税", [hit(KB[1], 0.85)]).startswith("鼓励银行机构加大汽车消费金融支持")
    assert near_miss("国债", [hit(KB[2], 0.85)]) == ""
    assert near_miss("供应链", [hit("为企业提供融资服务。", 0.85)]) == "", "供 of 提供 is no thing shared"
    late = "紧密结合“万人助万企”等活动，共开展“专精特新”、绿色金融、重点项目、建筑和房地产行业等线上、线下银企对接活动50余次。"
    quote = near_miss("房地产税", [hit(late, 0.85)])
    assert quote == "……建筑和房地产行业等线上、线下银企对接活动50余次", (
        "from the clause holding the shared piece"
    )


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


REPORT = [
    "二是持续加大普惠金融共享平台推广应用。平台已注册企业5000多家，12家银行机构在平台上线金融产品92支。",
    "支持国家普惠金融发展示范区建设，创新开展首贷续贷中心试点工作，推动首贷覆盖面提升。",
    "组织召开党组会议**次，研究重要议题***项。截至一季度末，全省个人汽车贷款余额*.*亿元。",
]


def test_the_kind_of_detail_asked_and_given():
    assert asked_detail("首贷续贷中心试点是哪一年开始的？") == "具体日期"
    assert asked_detail("平台上有多少家银行？") == "具体数字"
    assert asked_detail("坏账比例在全省排第几？") == "名次"
    assert asked_detail("首贷续贷中心试点有哪些做法？") == "", "a list question asks for no detail"
    assert asked_detail("提高扣除比例后有何规定？") == "", "比例 alone asks for no figure"
    assert detail_given("具体数字", "监督电话是多少？", "监督电话：65118866。"), "a bare number is a figure"
    assert detail_given("具体数字", "党组会开了多少次？", REPORT[2]), "an anonymised figure is a figure"
    assert detail_given("具体数字", "汽车贷款余额是多少？", REPORT[2]), "*.*亿元 is an amount"
    assert detail_given("具体数字", "平台上有多少家银行？", REPORT[0]), "5000多家 is a count of 家"
    assert not detail_given("具体数字", "上市奖励多少钱？", REPORT[0]), "a count of 家 is no amount of money"
    assert not detail_given("具体日期", "试点是哪一年开始的？", REPORT[1])


def test_a_detail_the_sentences_about_the_subject_lack_is_unmet():
    words = lambda question: [s.word for s in subjects(question, load_glossary())]
    question = "首贷续贷中心试点是从哪一年开始的？"
    missing = unmet_detail(question, REPORT[1:], words(question))
    assert missing is not None and missing.kind == "具体日期" and "首贷" in missing.subject
    # the headline sentence brings the next one, which holds the figures
    question = "普惠金融共享平台上有多少家银行？"
    assert unmet_detail(question, REPORT, words(question)) is None
    # a paraphrase whose subject no sentence names is answered by any sentence giving the detail ...
    question = "那个小企业融资网站有多少家银行？"
    assert unmet_detail(question, REPORT, ["网站"]) is None
    # ... and refused when none does (**项 and *.*亿元 are no count of banks)
    assert unmet_detail(question, REPORT[1:], ["网站"]) == MissingDetail("", "具体数字")


def test_a_detail_refusal_names_the_subject_and_the_detail():
    question = "首贷续贷中心试点是从哪一年开始的？"
    gaps = Gaps(words=tuple(s.word for s in subjects(question, load_glossary())))
    hits = [hit(REPORT[1], 0.9)]
    assert evidence(question, hits, gaps).refusal(0.84).rule == "detail"
    answer = extractive_answer(question, hits, 0.84, gaps)
    assert answer.refused and "但没有给出具体日期" in answer.answer and "知识库提到了“" in answer.answer
    assert not extractive_answer("首贷续贷中心试点有哪些做法？", hits, 0.84, gaps).refused


def test_an_everyday_word_in_a_well_covered_question_is_a_paraphrase():
    kb = ["深入推进重大腐败案件专题警示教育，运用案件通报、忏悔录等拓展深化纪律学习成效。"]
    glossary = load_glossary()
    found = lambda term: [p for p in kb if term in p]
    assert uncovered_subject("警示教育用了什么片子和纪律学习材料？", found, glossary) is None
    # the same everyday word with nothing else the knowledge base holds is still missing
    assert uncovered_subject("片子怎么租？", found, glossary).word == "片子"


def test_a_term_written_short_is_mentioned():
    assert abbreviations("农村商业银行") == ["农商", "农商行"]
    assert abbreviations("银行") == []
    kb = ["市农商银行成功摘掉高风险机构帽子。", "二是农信系统不良贷款化解实现突破。"]
    found = lambda term: [p for p in kb if term in p]
    assert abbreviated("农村商业银行", found) and abbreviated("农村信用社", found)
    assert not abbreviated("城市商业银行", found)
