"""Question understanding: intent, the section role of the answer, scope and topic, by cue words alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zhiwen.core
from zhiwen.retriever.intent import (
    CueFileError,
    aspect_words,
    cue_file,
    cue_words,
    generic_words,
    load_cues,
    understand,
)

REPO = Path(__file__).resolve().parents[1]

# (question, intent, facet, wants_measures, years, issuers). The a-rows are all 55 questions of
# eval/data/answers.jsonl with their labels; then golden, English and edge-case questions.
QUESTIONS = [
    # a001 is labelled facet "any" (measures taken and plans both answer it); here it is "done" with
    # wants_measures=True, which says the same thing: measures and plans, never the problem itself.
    ("小微企业融资难的问题怎么解决？", "list", "done", True, (), ()),  # a001
    ("防范化解金融风险方面做了哪些工作？", "list", "done", False, (), ()),  # a002
    ("金融促进消费有哪些措施？", "list", "done", False, (), ()),  # a003
    ("2022年金融监管局党组做了哪些工作？", "list", "done", False, ("2022",), ("金融监管局",)),  # a004
    ("如何支持新市民金融？", "list", "done", False, (), ()),  # a005
    ("能力作风建设年活动是怎么开展的？", "list", "done", False, (), ()),  # a006
    ("市局今年重点工作推进得怎么样，主要做了哪几块？", "list", "done", False, (), ()),  # a007
    ("金融惠企政策是怎么落实的？", "list", "done", False, (), ()),  # a008
    (
        "小额贷款公司、融资担保公司这些地方金融组织，今年是怎么规范管理的？",
        "list",
        "done",
        False,
        (),
        (),
    ),  # a009
    ("党组在支持纪委监督、清廉建设方面做了什么？", "list", "done", False, (), ()),  # a010
    ("金融监管局党组怎样加强基层组织建设？", "list", "done", False, (), ("金融监管局",)),  # a011
    ("党组在理论武装和意识形态工作上采取了哪些举措？", "list", "done", False, (), ()),  # a012
    ("金融监管局在推动监管中心工作上有哪些举措？", "list", "done", False, (), ("金融监管局",)),  # a013
    (
        "市地方金融监管局在全市金融工作座谈会上汇报了哪几方面工作？",
        "list",
        "done",
        False,
        (),
        ("地方金融监管局",),
    ),  # a014
    ("怎样提升金融服务质效？", "list", "done", False, (), ()),  # a015
    ("地方金融监管能力是怎么提升的？", "list", "done", False, (), ()),  # a016
    ("市地方金融监管局如何推进金融干部队伍建设？", "list", "done", False, (), ("地方金融监管局",)),  # a017
    (
        "市地方金融监管局防范化解地方金融风险有哪些做法？",
        "list",
        "done",
        False,
        (),
        ("地方金融监管局",),
    ),  # a018
    ("强化理论学习、夯实“两个维护”思想根基方面做了哪些工作？", "list", "done", False, (), ()),  # a019
    ("银保监局高标准高质量推动主题教育采取了哪些举措？", "list", "done", False, (), ("银保监局",)),  # a020
    ("突出主目标、在解决“最根本”问题上做了哪些事？", "list", "done", False, (), ()),  # a021
    ("怎样助推制造业高质量发展？", "list", "done", False, (), ()),  # a022
    ("在“准”字上助力扩大居民消费需求，具体有哪些做法？", "list", "done", False, (), ()),  # a023
    ("消费新业态、夜间经济这类新场景，银行保险怎么支持？", "list", "done", False, (), ()),  # a024
    ("推动企业上市方面做了哪些工作？", "list", "done", False, (), ()),  # a025
    ("乡村振兴和巩固脱贫攻坚成果，金融上有哪些支持举措？", "list", "done", False, (), ()),  # a026
    ("银保监局是怎么大兴调查研究的？", "list", "done", False, (), ("银保监局",)),  # a027
    ("市局当前存在的主要问题有哪些？", "problem", "problem", False, (), ()),  # a028
    ("为什么小微企业还是贷不到款？", "problem", "problem", False, (), ()),  # a029
    ("金融风险防范还面临哪些困难？", "problem", "problem", False, (), ()),  # a030
    ("惠企政策落实中还存在哪些不到位的地方？", "problem", "problem", False, (), ()),  # a031
    (
        "金融监管局党组2022年还存在哪些差距不足？",
        "problem",
        "problem",
        False,
        ("2022",),
        ("金融监管局",),
    ),  # a032
    ("党组在监督执纪上有什么短板？", "problem", "problem", False, (), ()),  # a033
    ("党组总结认为重点工作成效不足主要体现在哪些方面？", "problem", "problem", False, (), ()),  # a034
    ("党组主体责任落实和基层党组织建设方面有哪些问题？", "problem", "problem", False, (), ()),  # a035
    ("不良贷款方面还存在哪些问题？", "problem", "problem", False, (), ()),  # a036
    ("市局下一步工作打算是什么？", "plan", "plan", False, (), ()),  # a037
    ("下一步银企对接怎么搞？", "plan", "plan", False, (), ()),  # a038
    ("下一步怎样落实惠企政策、降低企业融资成本？", "plan", "plan", False, (), ()),  # a039
    ("今后在机制建设上有什么打算？", "plan", "plan", False, (), ()),  # a040
    ("风险防控下一步怎么做？", "plan", "plan", False, (), ()),  # a041
    ("下一步怎么强化服务意识、主动作为？", "plan", "plan", False, (), ()),  # a042
    ("2023年金融监管局党组有什么工作打算？", "plan", "plan", False, ("2023",), ("金融监管局",)),  # a043
    ("银保监局主题教育接下来还要怎么推进？", "plan", "plan", False, (), ("银保监局",)),  # a044
    ("5月末全市贷款余额同比增长了多少？", "fact", "done", False, (), ()),  # a045
    ("5月24日重点项目银企对接会上达成了多少贷款意向？", "fact", "done", False, (), ()),  # a046
    ("农信系统不良贷款率下降了多少？在全省排第几？", "fact", "done", False, (), ()),  # a047
    ("今年以来对地方金融组织下发了多少整改通知书和风险提示函？", "fact", "done", False, (), ()),  # a048
    ("乡村振兴金融先行先试覆盖了几个县区？", "fact", "done", False, (), ()),  # a049
    ("金融监管局党组成功申报了什么示范区？", "fact", "done", False, (), ("金融监管局",)),  # a050
    ("和内蒙古银保监局联合举办了几期处级干部培训班？", "fact", "done", False, (), ("银保监局",)),  # a051
    ("银保监局打造的清廉金融品牌叫什么？", "fact", "done", False, (), ("银保监局",)),  # a052
    ("科技金融“六专”原则具体指哪六专？", "definition", "any", False, (), ()),  # a053
    ("“三个第一”是什么意思？", "definition", "any", False, (), ()),  # a054
    ("融资担保三级风险分担机制是指哪三级？", "definition", "any", False, (), ()),  # a055
    ("保险业给新市民提供了多少风险保障？", "fact", "done", False, (), ()),  # g004
    ("金融促进消费一共出台了多少项措施？", "fact", "done", False, (), ()),  # g005
    ("主题教育的总要求是什么？", "fact", "done", False, (), ()),  # g020
    ("调查研究的“两项机制”是指什么？", "definition", "any", False, (), ()),  # g033
    ("私企借不到钱的问题，有什么专门的破解办法？", "list", "done", True, (), ()),  # g054
    ("主题教育下一步有什么打算？", "plan", "plan", False, (), ()),  # g063
    ("“四个深度融合”是哪四个？", "definition", "any", False, (), ()),  # g087
    ("乡镇小银行储户取不出钱的风波，本市是怎么应对的？", "list", "done", True, (), ()),  # g101
    ("小微企业融资难主要难在哪里？", "problem", "problem", False, (), ()),  # g106
    ("市局下一步工作的五个“强化”是什么？", "plan", "plan", False, (), ()),  # g110
    ("上级巡查指出的问题，党组是怎么组织改的？", "list", "done", True, (), ()),  # g114
    ("去年班子开了几次批评与自我批评的会，查出多少问题？", "fact", "done", False, (), ()),  # g121
    ("监管文化理念是哪几句话？", "list", "done", False, (), ()),  # g125
    ("“三位一体”金融纠纷调解中心是干什么的？", "definition", "any", False, (), ()),  # g132
    ("总结里自己承认在业务上差在哪？", "problem", "problem", False, (), ()),  # g134
    ("2023年党组的工作方向是什么？", "plan", "plan", False, ("2023",), ()),  # g135
    ("2019年的工作总结里对村镇银行风险是怎么说的？", "list", "done", False, ("2019",), ()),  # g138
    ("证监局出台了哪些支持新市民的措施？", "list", "done", False, (), ("证监局",)),  # g139
    ("2024年金融监管局的工作计划是什么？", "plan", "plan", False, ("2024",), ("金融监管局",)),  # g143
    ("How to support new urban residents' finance?", "list", "done", False, (), ()),  # e001
    (
        "How many measures were issued to promote consumption through finance?",
        "fact",
        "done",
        False,
        (),
        (),
    ),  # e002
    (
        "What support do banks offer for buying an electric car or trading in a used car?",
        "list",
        "done",
        False,
        (),
        (),
    ),  # e003
    (
        'What are the "two mechanisms" for research and investigation?',
        "definition",
        "any",
        False,
        (),
        (),
    ),  # e004
    ("Where was the green finance pilot launched first?", "fact", "done", False, (), ()),  # e010
    ("What was the city's total loan balance at the end of May?", "fact", "done", False, (), ()),  # e013
    (
        "Why is it still hard for small and micro enterprises to get financing?",
        "problem",
        "problem",
        False,
        (),
        (),
    ),  # e015
    (
        'What are the five "strengthen" items in the city bureau\'s next-step plan?',
        "plan",
        "plan",
        False,
        (),
        (),
    ),  # e016
    (
        "What shortcomings did the Party group of the financial regulatory bureau identify?",
        "problem",
        "problem",
        False,
        (),
        (),
    ),  # e020
    ("新市民 finance support measures?", "list", "done", False, (), ()),  # e021
    # edge cases
    ("2022年房地产税试点在哪些城市？", "fact", "done", False, ("2022",), ()),
    ("那保险业呢？", "list", "done", False, (), ()),
    ("那2023年呢？", "list", "done", False, ("2023",), ()),
    ("2022年银保监局在小微企业方面做了哪些工作？", "list", "done", False, ("2022",), ("银保监局",)),
    ("2023年，金融监管局党组将如何推进清廉建设？", "plan", "plan", False, ("2023",), ("金融监管局",)),
    ("针对这些问题下一步怎么办？", "plan", "plan", True, (), ()),
    ("市局怎样帮助上市后备企业解决问题？", "list", "done", True, (), ()),
    ("当前小微企业融资难问题主要表现在哪些方面？", "problem", "problem", False, (), ()),
    (
        "What measures were taken to solve the financing problems of small firms?",
        "list",
        "done",
        True,
        (),
        (),
    ),
    ("What are the next steps for risk prevention?", "plan", "plan", False, (), ()),
    ("What is the 三位一体 mediation center?", "definition", "any", False, (), ()),
]


@pytest.mark.parametrize(("question", "intent", "facet", "wants_measures", "years", "issuers"), QUESTIONS)
def test_questions_are_understood(question, intent, facet, wants_measures, years, issuers):
    got = understand(question)
    assert (got.intent, got.facet, got.wants_measures, got.years, got.issuers) == (
        intent,
        facet,
        wants_measures,
        years,
        issuers,
    )


def test_the_table_holds_every_labelled_answer_question():
    labelled = [
        json.loads(line) for line in (REPO / "eval/data/answers.jsonl").read_text("utf-8").splitlines()
    ]
    table = {q: (i, f) for q, i, f, *_ in QUESTIONS}
    assert len(QUESTIONS) >= 70 and len(labelled) == 55
    disagree = [row["qid"] for row in labelled if table[row["query"]] != (row["intent"], row["facet"])]
    assert disagree == ["a001"]  # see the comment at a001


def test_topic_is_the_question_without_intent_scope_and_punctuation():
    assert understand("小微企业融资难的问题怎么解决？").topic == "小微企业融资难"
    assert understand("2022年金融监管局党组做了哪些工作？").topic == "党组"
    assert understand("防范化解金融风险方面做了哪些工作？").topic == "防范化解金融风险"
    assert understand("那保险业呢？").topic == "保险业"
    assert understand("“1+N”多元金融服务模式是怎么构建的？").topic == "1+N 多元金融服务模式 构建"
    assert (
        understand("How to support new urban residents' finance?").topic
        == "support new urban residents finance"
    )
    assert understand("市局下一步工作打算是什么？").topic == "市局"


def test_english_means_mostly_latin_letters():
    assert understand("What shortcomings did the Party group identify?").english
    assert understand("新市民 finance support measures?").english
    assert not understand("LPR利率是多少？").english
    assert not understand("金融促进消费有哪些措施？").english


def test_cues_load_from_the_core_package():
    path = Path(str(cue_file()))
    assert path.is_file() and path.parent.parent == Path(zhiwen.core.__file__).parent
    cues = load_cues(path)
    assert cues["下一步"] == "plan" and cues["what measures"] == "measures" and cues["的"] == "trailing"
    assert set(cues.values()) == {
        "list",
        "fact",
        "problem",
        "plan",
        "definition",
        "measures",
        "leading",
        "trailing",
        "generic",
        "aspect",
    }
    assert {"金融", "党组"} <= generic_words() and not generic_words() & {"措施怎么解决", "问题"}
    assert {"目的", "氛围"} <= aspect_words() and not aspect_words() & cue_words(), "aspects are no cues"
    assert understand("营造了什么氛围？").topic == "营造 氛围", "nor are they trimmed from the topic"


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("下一步\n", 1, "cue before the first \\[section\\] line"),
        ("[plan]\n下一步\n\n[plans]\n", 4, "'\\[plans\\]' is not one of the sections"),
        ("[plan]\n下一步 明年？\n", 2, "'明年？' is not a cue"),
        ("# cues\n[plan]\n下一步\n[list]\n怎么 下一步\n", 5, "'下一步' is already a cue of \\[plan\\]"),
    ],
)
def test_a_malformed_cue_line_names_the_file_and_line(tmp_path, text, line, reason):
    path = tmp_path / "cues.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CueFileError, match=f"cues.txt:{line}: {reason}"):
        load_cues(path)
