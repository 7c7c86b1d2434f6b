"""Refusal by class of question, on the real retriever over corpus/: issuing bodies under their other
names, figures of a thing no document names, personal how-to questions and advice, instruments by name,
which bank or office by name, the members of a named group or what its name stands for, a venue, a
person, a name, a part of a stated total, and everyday questions. Each class has a question that must be refused and one of the same shape that must not."""

from __future__ import annotations

import pytest
from zhiwen.core.text import curly_quotes
from zhiwen.core.types import Answer, FinalAnswer, Hit
from zhiwen.core.vocab import issuers_named, without_issuers
from zhiwen.retriever import Retriever
from zhiwen.retriever.answer import EVERYDAY_MARGIN, Evidence, Scope, ask, evidence
from zhiwen.retriever.answerability import (
    Gaps,
    MissingDetail,
    asked_detail,
    asked_units,
    breakdown,
    detail_given,
    foreign_modifier,
    group_passages,
    hidden_figures,
    holder,
    measured,
    names_of,
    places,
    subjects,
    uncovered_subject,
    unmet_detail,
    written_alike,
    written_with_insert,
)
from zhiwen.retriever.topics import load_glossary


def hit(text: str, context: str = "") -> Hit:
    """A passage of a document with no title or issuer of its own (as in the external sets)."""
    return Hit("c1", "d1", "", text, 0, len(text), context=context, rank=1, score=1.0)


def test_an_issuing_body_is_named_by_any_of_its_names():
    assert issuers_named("国家税务总局对捐赠物资如何征税？") == ("税务局",)
    assert issuers_named("国家发展改革委和央行出台了什么措施？") == ("发改委", "人民银行")
    assert issuers_named("地方金融监管局的汇报") == ("地方金融监管局",), "not 金融监管局 inside it"
    assert without_issuers("税务总局对企业的支持").strip() == "对企业的支持"


def test_a_body_is_in_scope_where_it_acts_under_another_name_or_after_a_place():
    scope = Scope.of("税务局是如何落实税收优惠政策的？")
    assert scope.admits(hit("下一步，税务部门将认真落实各项税收优惠政策。"))
    assert scope.admits(hit("对生产企业的增值税留抵退税。", context="国家税务总局重庆市税务局："))
    assert scope.admits(hit("重庆市税务局要求各办税服务厅提高网上办理覆盖面。"))
    assert not scope.admits(hit("海昌智能已于6月15日报**税务局备案。")), "merely mentioned"
    assert not scope.admits(hit("与市税务局密切配合，建立日报告机制。")), "a partner, not the actor"


def test_a_body_the_question_names_as_a_partner_is_no_scope():
    assert Scope.of("当地和人民银行等部门建立了什么制度？").issuers == ()
    assert Scope.of("工业和信息化厅会同卫健委、药监局进驻了多少家企业？").issuers == ()
    assert Scope.of("央行出台了哪些措施？").issuers == ("人民银行",)
    assert Scope.of("哪家企业去证监局做了上市辅导备案？").issuers == (), "a destination, not the actor"


def test_the_measured_word_is_the_one_before_the_figure_cue():
    glossary = load_glossary()

    def asked(question: str) -> str:
        found = measured(question, subjects(question, glossary))
        return found.word if found else ""

    assert asked("首贷续贷中心的贷款利率是多少？") == "利率"
    assert asked("绿色金融试点的负责人是谁？") == "负责人"
    assert asked("本市企业债余额是多少？") == "企业债", "余额 is a cue: the word before it is measured"
    assert asked("公司类借款的存量规模有多大？") == "", "规模 names only the kind of figure"
    assert asked("银行和企业见面会办了几次？") == "", "a count of events, not a figure of the word"


def test_which_bank_wants_a_bank_by_name():
    question = "围场绿色金融试点由哪家银行牵头？"
    assert asked_detail(question) == "具体名称"
    assert names_of("银行", "市农商银行成功摘掉高风险机构帽子", question) == ["农商银行"]
    assert names_of("银行", "由*银行牵头开展试点", question) == ["*银行"], "an anonymised name is a name"
    assert names_of("银行", "联合对我市中小银行开展多轮隐患排查", question) == [], "banks in general"
    assert names_of("银行", "引导各银行机构运用好再贷款", question) == []
    assert names_of("银行", "指导举办*银行业保险业知识竞赛", question) == [], "银行业 is no bank"


def test_a_figure_must_be_in_a_sentence_about_the_subject_unless_the_best_passage_paraphrases_it():
    elsewhere = "实施市县错位奖补，探索“基金+招商+上市”模式。截至一季度末，全省个人汽车贷款余额*.*亿元。"
    missing = unmet_detail("企业上市奖补多少钱？", [elsewhere], ("奖补", "上市"))
    assert missing == MissingDetail("奖补", "具体数字"), "a figure of car loans is no figure of 奖补"
    paraphrased = ["截至目前，全市新增脱贫人口小额信贷1309户。", "二是开展小额贷款公司监管评级工作。"]
    assert unmet_detail("刚脱贫的人新拿到多少户小额贷款？", paraphrased, ("小额贷款",)) is None


def test_a_figure_of_the_measure_without_its_qualifier_or_at_another_time_is_no_answer():
    assert holder("全市不良贷款余额具体是多少亿元？") == "不良贷款余额"
    assert holder("市农商银行现在的不良贷款率是百分之几？") == "不良贷款率"
    assert holder("全市贷款余额是多少？") == "贷款余额", "全市 is a scope, not a qualifier"
    assert holder("贷款利率是多少？") == "贷款利率" and holder("利率是多少？") == "", (
        "利率 alone says too little"
    )
    total = "截至5月末，全市贷款余额785.03亿元，剔除不良贷款处置因素较年初实际增加58亿元、增幅7.15%"
    assert not detail_given("具体数字", "全市不良贷款余额是多少亿元？", total), (
        "the total is not the bad loans"
    )
    assert detail_given("具体数字", "全市不良贷款余额是多少亿元？", "全市不良贷款余额12.5亿元")
    assert detail_given(
        "具体数字", "全市不良贷款余额是多少亿元？", "全市不良贷款余额和不良率双降，余额达到12.5亿元"
    )
    fell = "农信系统不良贷款率下降46.22%"
    assert not detail_given("具体数字", "不良贷款率具体是百分之几？", fell), "a fall is not the rate"
    assert detail_given("具体数字", "不良贷款率下降了百分之几？", fell), "unless the fall is asked"
    assert detail_given("具体数字", "不良贷款率是百分之几？", "不良率为1.8%"), "its short form"
    assert not detail_given("具体数字", "年末全市贷款余额是多少？", total), "as of 5月末, not the year end"
    assert detail_given("具体数字", "5月末全市贷款余额是多少？", total)
    assert detail_given("具体数字", "年底全市贷款余额是多少？", "截至12月末，全市贷款余额800亿元")


def test_an_as_of_date_a_sum_and_a_city_wide_figure_answer_no_date_duration_or_county():
    event = "促进消费的措施从哪天开始实施？"
    assert not detail_given("具体日期", event, "截至一季度末，全省个人消费贷款余额*.*亿元"), (
        "dates a statistic"
    )
    assert detail_given("具体日期", event, "海昌智能已于6月15日报**证监局辅导备案")
    term = "买车贷款最长能贷几年？"
    assert not detail_given("具体数字", term, "全省银行业个人汽车贷款余额*.*亿元"), "an amount, not a term"
    assert detail_given("具体数字", term, "个人汽车贷款期限最长不超过5年")
    county = "浚县有多少脱贫户拿到了小额信贷？"
    city = "截至目前，全市新增脱贫人口小额信贷1309户"
    assert not detail_given("具体数字", county, city), "the city's figure is not the county's"
    assert detail_given("具体数字", county, "浚县新增脱贫人口小额信贷300户")
    assert detail_given("具体数字", "全市有多少脱贫户拿到了小额信贷？", city)


def test_a_name_is_not_made_of_a_verb_or_a_report():
    question = "海昌智能去哪个交易所上市？"
    assert names_of("交易所", "拟于10月底前报交易所审核", question) == [], "报 is a report to the exchange"
    assert names_of("交易所", "与沪深北交易所开展多层次合作", question) == ["北交易所"]
    glossary = load_glossary()
    words = [s.word for s in subjects("给家里老人买重疾险选哪家保险公司好？", glossary)]
    assert "重疾险" in words and "买重疾险选" not in words, "买 and 选 are the question's verbs"
    assert "定投" in [s.word for s in subjects("基金定投每个月投多少合适？", glossary)]


def test_a_ranking_and_a_trade_are_given_only_where_the_passage_states_them():
    assert asked_detail("知识竞赛谁拿了一等奖？") == asked_detail("罚款最多的是哪家机构？") == "名次"
    took_part = ["指导举办*银行业保险业清廉金融文化知识竞赛，以赛促学、以学促廉。"]
    assert unmet_detail("知识竞赛谁拿了一等奖？", took_part, ("竞赛",)) == MissingDetail("竞赛", "名次")
    ranked = ["在全省清廉金融文化知识竞赛中，我局代表队获得一等奖。"]
    assert unmet_detail("知识竞赛谁拿了一等奖？", ranked, ("竞赛",)) is None
    assert asked_detail("天海集团是做什么行业的？") == asked_detail("海昌智能主营什么业务？") == "主营业务"
    assert asked_detail("新市民专属信贷产品有哪些？") == "", "products asked, not a company's trade"
    named = ["先后帮助海昌智能、天海集团等重点上市后备企业解决股份制改造等问题14个。"]
    assert unmet_detail("天海集团主营什么业务？", named, ("天海集团",)) == MissingDetail(
        "天海集团", "主营业务"
    )
    trade = ["天海集团主要从事汽车零部件制造，拟于明年申报上市。"]
    assert unmet_detail("天海集团主营什么业务？", trade, ("天海集团",)) is None


def test_conditions_and_steps_are_given_only_where_the_passage_states_them():
    question = "无还本续贷要满足哪些条件？"
    assert asked_detail(question) == "申请条件或标准"
    named_only = ["对符合续贷条件的市场主体实行无还本续贷。"]
    assert unmet_detail(question, named_only, ("无还本续贷",)) == MissingDetail(
        "无还本续贷", "申请条件或标准"
    )
    stated = ["无还本续贷的企业须正常经营，且贷款期限不超过一年。"]
    assert unmet_detail(question, stated, ("无还本续贷",)) is None
    assert asked_detail("办理续贷要准备哪些材料？") == "办理流程"
    assert asked_detail("警示教育用了哪些材料？") == "", "teaching material, not papers to hand in"
    assert asked_detail("四川省电子税务局网址是多少？") == "地址或联系方式"


def test_set_phrases_ending_in_a_noun_are_subject_words_and_foreign_modifiers_are_found():
    glossary = load_glossary()
    assert "个人所得税" in [s.word for s in subjects("个人所得税怎么申报？", glossary)]
    advice = [s.word for s in subjects("最近金价涨了，买金条还是积存金好？", glossary)]
    assert "金条" in advice and "金好" not in advice, "好 judges, it is no piece of a word"
    assert "融资难" not in [s.word for s in subjects("怎么解决融资难？", glossary)]
    holds = {"金融": ["绿色金融"], "小额": ["小额信贷"]}

    def contexts(term: str) -> list[str]:
        return holds.get(term, [])

    assert foreign_modifier("供应链金融", contexts) == "供应链"
    assert foreign_modifier("小额贷款", contexts) == "", "小额 is written"
    assert foreign_modifier("房地产税", contexts) == "", "no head of a term of art"


def test_a_figure_or_a_rank_the_question_states_itself_is_no_answer():
    subgroup = "39家重点上市后备企业里有几家是专精特新企业？"
    assert not detail_given("具体数字", subgroup, "明确39家重点企业分包市领导"), "the 39 it counts within"
    assert detail_given("具体数字", subgroup, "其中专精特新企业12家")
    # a figure the question names after its cue is a condition, not the context: still an answer
    assert detail_given("具体数字", "许可证时效是多长，两年不用是否收回？", "规划许可证时效为两年")
    third = "农信系统不良贷款率降幅全省排第三，那排第一的是哪个市？"
    assert not detail_given("名次", third, "农信系统不良贷款率降幅全省排第三"), "the rank it states"
    assert detail_given("名次", "农信系统不良贷款率降幅在全省排第几？", "农信系统不良贷款率降幅全省排第三")


def test_a_measure_asked_without_a_qualifier_is_not_given_by_a_qualified_one():
    total = "截至2022年末全市贷款余额达到多少亿元？"
    assert not detail_given("具体数字", total, "企业贷款余额444.86亿元"), "a figure of the firms' loans only"
    assert detail_given("具体数字", total, "截至12月末，全市贷款余额800亿元")
    assert not detail_given("具体数字", "全市不良率具体是多少？", "全市不良贷款率下降46.22%"), "a fall"
    assert detail_given("具体数字", "全市不良率具体是多少？", "全市不良贷款率为1.8%"), "its long form"
    housing = "一季度末全省个人房贷余额多少？"
    assert detail_given("具体数字", housing, "截至一季度末，全省银行业个人住房贷款余额*.*亿元"), "alias"


def test_the_members_of_a_group_are_given_only_where_a_passage_lists_them_beside_it():
    question = "五大产业集群分别是哪五个？"
    assert asked_detail(question) == "具体名单"
    named = ["指导金融机构围绕辖区五大产业集群和重点项目建设稳定金融供给。"]
    assert unmet_detail(question, named, ("集群",)) == MissingDetail("集群", "具体名单")
    listed = ["围绕装备制造、食品加工、新材料、电子信息、现代物流五大产业集群稳定金融供给。"]
    assert unmet_detail(question, listed, ("集群",)) is None, "a list before it in its clause"
    fused = "“四个深度融合”是哪四个？"
    headline = "注重“四个深度融合”，促进活动深入开展。"
    assert unmet_detail(fused, [headline], ("四个深度融合",)) == MissingDetail("四个深度融合", "具体名单")
    assert unmet_detail(fused, [headline + "一是与党建工作深度融合。"], ("四个深度融合",)) is None, "items"
    sibling = ["向金融机构推介“三个一批”、“双20”、灾后重建、绿色金融等重点项目融资需求。"]
    assert unmet_detail("“三个一批”是哪三个一批？", sibling, ("三个一批",)) == MissingDetail(
        "三个一批", "具体名单"
    ), "a list it is an item of names none of its members"
    aside = ["开展“双送双问”（送政策、送服务，问需求、问困难）帮扶活动。"]
    assert unmet_detail("“双送双问”分别指什么？", aside, ("双送双问",)) is None
    seven = [
        "重点支持七大重点领域：医疗类、生活物资类、交通物流类、装备制造类、能源化工类、电信运营类、外贸类。"
    ]
    assert unmet_detail("“春润行动”支持哪七大重点领域？", seven, ("春润行动",)) is None, "as many as asked"
    # a group named by no count or quote (主题教育) is not judged: its members may be anywhere
    assert (
        unmet_detail("主题教育的总要求是哪十二个字？", ["开展主题教育应知应会知识测试。"], ("主题教育",))
        is None
    )


def test_an_office_is_named_by_what_it_is_not_by_department_or_institution():
    assert names_of("部门", "与市人行、银保监局密切配合", "市局跟哪个部门配合？")
    partner = "民营企业融资难破解行动是银保监局跟哪个部门联合开展的？"
    assert names_of("部门", "*银保监局联合开展民营企业融资难破解行动", partner) == [], "the body it names"
    assert names_of("机构", "并聘请第三方机构参与监管评级工作", "评级请的是哪家第三方机构？") == []
    assert (
        names_of("部门", "如有疑问，可向所在区的停车管理部门进行咨询和投诉", "停车位有问题向哪个部门反映？")
        != []
    )
    assert asked_detail("参与评级的第三方机构是哪一家？") == "具体名称"
    called = "正在推进改革化险的那家城商行叫什么名字？"
    assert asked_detail(called) == "具体名称"
    assert not detail_given("具体名称", called, "稳步推进城商行改革化险，积极发挥地方政府作用")
    assert detail_given("具体名称", "调解纠纷的机构叫什么？", "牵头组建“三位一体”金融纠纷调解中心")


def test_a_figure_the_reports_anonymise_is_named_as_hidden():
    party = "重点项目成立临时党支部*个，发展接收预备党员*名，党内谈心谈话***人次。"
    assert hidden_figures("2022年发展接收了几名预备党员？", party, ("预备党员",)) == ["*名"]
    fines = "累计做出行政处罚**项、罚款***万元。"
    assert hidden_figures("罚款一共多少万元？", fines, ("罚款",)) == ["***万元"]
    assert hidden_figures("全市贷款余额是多少？", "截至5月末，全市贷款余额785.03亿元。", ("贷款余额",)) == []
    assert hidden_figures("预备党员是怎么发展的？", party, ("预备党员",)) == [], "no figure asked"


def test_a_comparison_is_given_only_where_a_passage_compares_with_the_thing_named():
    last_year = "今年延期还本付息的贷款金额跟去年比是多了还是少了？"
    assert asked_detail(last_year) == "对比情况"
    assert not detail_given("对比情况", last_year, "累计对265户、10.53亿元贷款实行延期还本付息")
    assert detail_given("对比情况", last_year, "延期还本付息贷款10.53亿元，同比减少2亿元")
    province = "和全省平均水平相比，我市贷款增速算高还是低？"
    assert not detail_given("对比情况", province, "全市贷款余额同比增长13.84%"), "全省 is not named"
    assert detail_given("对比情况", province, "全市贷款同比增长13.84%，高于全省平均水平2个百分点")
    assert asked_detail("研发费用加计扣除新政与原政策相比主要有哪些变化？") != "对比情况", (
        "changes, not a verdict"
    )


def test_a_level_reached_is_asked_as_a_level():
    assert holder("到6月底，全市贷款余额增长到多少了？") == "贷款余额"
    assert not detail_given("具体数字", "读书班一共花了多少经费？", "举办读书班3期，培训干部120人次"), (
        "an amount"
    )


def test_personal_advice_is_a_detail_no_report_gives():
    assert (
        asked_detail("出国旅游要买什么保险比较好？") == asked_detail("房贷提前还款划不划算？") == "个人建议"
    )
    assert asked_detail("哪个县区的工作做得比较好？") != "个人建议", "a judgement of the work, not advice"
    assert not detail_given("个人建议", "教育金保险划算吗？", "推动保险机构开发教育金保险产品")
    for advice in ["明天A股大盘会涨还是跌？", "推荐几只适合长期持有的白酒股", "装修贷和消费贷哪个利息更低？"]:
        assert asked_detail(advice) == "个人建议", advice
    # a thing no passage names is not said to be in the knowledge base
    assert unmet_detail("推荐几只白酒股", ["推动消费金融发展。"], ("白酒",)) == MissingDetail("", "个人建议")


def test_a_venue_a_person_and_a_name_are_given_only_where_a_passage_states_them():
    venue = "处级干部培训班是在哪里举办的？"
    assert asked_detail(venue) == asked_detail("对接会在什么地方召开的？") == "举办地点"
    assert detail_given("举办地点", venue, "联合内蒙古银保监局在石家庄市委党校举办了两期处级干部培训班")
    assert not detail_given(
        "举办地点", venue, "5月24日，举办的全市重点项目专项银企对接会暨签约仪式上，10家金融机构"
    )
    assert not places("全市、全省和各县区"), "scopes are no places"
    who = "领导小组的组长是谁？"
    assert asked_detail(who) == asked_detail("读书班请了哪些专家来讲课？") == "人员姓名"
    assert detail_given("人员姓名", who, "尊敬的**市长、各位领导")
    assert not detail_given("人员姓名", who, "在石家庄市委党校举办，学习习近平新时代中国特色社会主义思想")
    name = "党组书记讲的党课题目是什么？"
    assert asked_detail(name) == asked_detail("专属信贷产品具体叫什么名字？") == "具体名字"
    assert detail_given("具体名字", "帮扶活动叫什么名字？", "创新开展“双送双问”帮扶活动，下沉基层一线")
    # a quoted name in another clause names something else
    assert not detail_given(
        "具体名字", name, "通过开展党组书记带头讲党课，“关爱青少年 相伴共成长”支部共建等活动"
    )


def test_what_a_quoted_name_stands_for_is_given_only_where_a_passage_spells_it_out():
    question = "“浦江经验”具体指的是什么经验？"
    assert asked_detail(question) == asked_detail("“千万”指的是什么？") == "具体含义"
    assert asked_detail("那个“1+N”是什么模式") != "具体含义", "a kind asked, not a meaning"
    named = ["深入学习“浦江经验”“千万工程”等经验案例，坚持以人民为中心的发展思想。"]
    assert unmet_detail(question, named, ("浦江经验",)) == MissingDetail("浦江经验", "具体含义")
    spelled = ["实施“红黄蓝”挂牌管理。对复产企业亮“蓝牌”，对发现问题的亮“黄牌”，屡教不改的亮“红牌”。"]
    assert unmet_detail("“红黄蓝”挂牌管理机制指什么？", spelled, ("红黄蓝",)) is None
    # a name counting its members ("三位一体") is spelled out beside it, not by a list elsewhere
    beside = ["牵头组建“三位一体”金融纠纷调解中心。联合市人行、银保监局、公安局开展宣传。"]
    assert unmet_detail("“三位一体”是由哪三方组成的？", beside, ("三位一体",)) == MissingDetail(
        "三位一体", "具体名单"
    )


def test_a_part_of_a_stated_total_is_given_only_beside_the_part_and_in_the_totals_clause():
    question = "实行延期还本付息的265户里面，小微企业有多少户？"
    assert breakdown(question) == ("小微企业",)
    assert breakdown("走访的943家企业里，一共解决了多少个问题？") == (), "another measure, not a part"
    sentence = "金融机构累计对265户、10.53亿元贷款实行延期还本付息，下调或减收822户贷款利息。"
    assert not detail_given("具体数字", question, sentence)
    assert detail_given("具体数字", question, "累计对265户贷款实行延期还本付息，其中小微企业**户。")
    # a figure asked of a stated one is in that figure's part of the sentence: 822户 saved no 亿元
    saved = "下调或减收利息的822户，一共为企业减少了多少利息支出？"
    assert not detail_given("具体数字", saved, sentence + "；帮扶困难企业219家，涉及金额4.79亿元。")
    assert detail_given(
        "具体数字", "走访的943家企业，一共解决了多少个问题？", "走访企业943家，解决问题278个。"
    )


def test_a_detail_asked_in_other_words_than_the_passages_is_looked_for_in_all_their_sentences():
    plan = ["2023年，党组将坚持学深悟透和学以致用，持续提升政治能力和履职能力。"]
    question = "2023年给辖区定的贷款增长目标是多少？"
    assert unmet_detail(question, plan, ("辖区", "目标")) == MissingDetail("", "具体数字")
    assert unmet_detail(question, [*plan, "力争全年新增贷款100亿元。"], ("辖区", "目标")) is None
    assert unmet_detail("缴费比例是多少？", plan, ()) is None, "no subject words: nothing to judge"


def test_which_places_an_item_of_a_list_and_a_stated_figure_written_apart():
    cities = "目前已经有哪几个市成立了融资担保集团？"
    assert asked_detail(cities) == "具体地方"
    assert not detail_given("具体地方", cities, "鼓励各市成立融资担保集团，提高融资增信能力。")
    assert not detail_given("具体地方", cities, "加快中原再担保**融资担保公司的设立。"), "a body's name"
    assert detail_given(
        "具体地方", "绿色金融试点放在哪个县？", "大力发展绿色金融，在围场开展绿色金融试点工作"
    )
    # a name that is an item of a list has no members beside it
    listed = ["向金融机构推介“三个一批”、“双20”、灾后重建等重点项目融资需求。"]
    assert unmet_detail("“双20”项目指的是什么？", listed, ("双20",)) == MissingDetail("双20", "具体含义")
    # "444.86 亿元" is the figure the question states as "444.86亿元": its growth is not the city's
    sentence = "全市贷款余额785.03亿元，同比增长13.84%；企业贷款余额444.86 亿元。"
    assert not detail_given("具体数字", "企业贷款余额444.86亿元比去年同期增长了百分之几？", sentence)
    assert asked_detail("民营企业想找金融顾问，应该通过什么渠道预约？") == "办理流程"
    assert asked_detail("车主可通过哪些渠道咨询投诉？") != "办理流程", "where to complain, not steps"
    assert asked_detail("附近有没有靠谱的托育机构推荐？") == "个人建议"
    assert asked_units("一万块人民币能换多少美元？") != ""


def test_a_name_in_ascii_quotes_is_quoted_as_the_reports_quote_it():
    assert curly_quotes('"浦江经验"具体讲的是什么经验？') == "“浦江经验”具体讲的是什么经验？"
    assert curly_quotes('What is the "NPL" ratio?') == 'What is the "NPL" ratio?', "English stays as typed"
    named = ["深入学习“浦江经验”“千万工程”等经验案例。"]
    words = ("浦江经验",)
    assert evidence('"浦江经验"指的是什么？', [hit(named[0])], Gaps(words=words)).unmet == MissingDetail(
        "浦江经验", "具体含义"
    )


def test_a_compound_written_with_a_modifier_inside_is_covered():
    kb = ["鼓励银行业金融机构设立促进消费专项信贷资金。", "推动供应链上的金融服务，支持房地产开发税收管理。"]
    found = lambda term: [p for p in kb if term in p]
    assert written_with_insert("专项资金", found)
    assert not written_with_insert("供应链金融", found), "上的 is no modifier of the compound"
    assert not written_with_insert("房地产税", found), "a one-character word is no half"
    assert uncovered_subject("鼓励银行设立什么专项资金来促消费？", found, load_glossary()) is None


def test_more_shapes_of_which_one_and_of_standards():
    assert asked_detail("城商行改革涉及的是哪家城商行？") == "具体名称"
    assert asked_detail("参与评级的第三方机构是哪家？") == "具体名称"
    assert asked_detail("两县农合机构是哪两个县？") == "具体名单", "counties asked, not the institutions"
    assert asked_detail("覆盖的是哪8个县区？") == "具体名单"
    assert asked_detail("创建五星级党支部要达到哪些评定标准？") == "申请条件或标准"
    assert asked_detail("元昊新材料这家公司主要是做什么产品的？") == "主营业务"
    assert asked_detail("“双送双问”帮扶活动是做什么的？") != "主营业务", "an activity has no trade"
    # a count comes in its own unit: 篇 is not answered by "*月以来"
    assert not detail_given("具体数字", "一共形成了多少篇调研报告？", "*月以来，班子成员先后到各区县调研。")
    assert detail_given("具体数字", "形成了多少篇心得体会？", "形成心得体会**余篇。")
    assert asked_units("达到退休年龄的人员，计发基数是多少？") == "", "an age named, not asked"
    for advice in ["现在三年期定期存款哪家银行利息最高？", "装修贷和信用消费贷哪个利息低？"]:
        assert asked_detail(advice) == "个人建议", advice


def test_a_month_a_cap_a_level_after_a_change_a_person_and_a_new_name():
    plan = "印发《**市企业上市挂牌培育提升三年行动计划》。"
    assert not detail_given("具体日期", "上市行动计划是哪年印发的？", plan), "三年 is a span, not a year"
    month = "上市行动方案是几月份出台的？"
    assert not detail_given("具体日期", month, "2022年出台上市行动方案。"), "the year alone"
    assert detail_given("具体日期", month, "2022年3月出台上市行动方案。")
    assert detail_given("具体日期", "上市行动方案是哪一年出台的？", "2022年出台上市行动方案。")
    total = "全市新增脱贫人口小额信贷1309户，贷款金额2375.99万元。"
    assert not detail_given("具体数字", "小额信贷单户最多能贷多少？", total), "a total, not a cap"
    assert detail_given("具体数字", "小额信贷单户最多能贷多少？", "小额信贷单户最高可贷30万元。")
    fell = "农信系统不良贷款率下降46.22%，排名全省第三。"
    assert not detail_given("具体数字", "不良贷款率下降了四成以后，现在的不良率是多少？", fell)
    assert detail_given("具体数字", "不良贷款率下降了多少？", fell), "the change asked"
    assert asked_detail("后备企业分别由哪几位市领导分包？") == "人员姓名"
    assert asked_detail("那2家公司改成了什么名字？") == "具体名字"
    assert asked_detail("平台上哪款贷款产品利率最低？") == "个人建议"
    assert asked_detail("“1+N”里的N具体包括什么？") == "具体名单"
    assert asked_detail("如何查询车辆年检日期？") == "", "a way to look it up, not a date"
    assert asked_detail("支部共建是和哪所学校一起搞的？") == "具体名称"
    assert names_of("学校", "与石家庄市第一中学开展支部共建", "哪所学校") == ["第一中学"], "a school by name"
    assert names_of("学校", "与学校开展支部共建", "哪所学校") == [], "schools in general"
    assert curly_quotes('"1+N"模式里的"N"指什么？') == "“1+N”模式里的“N”指什么？", "marks pair in order"
    standard = "把群众满意作为评判工作的根本标准。"
    assert detail_given("申请条件或标准", "评判工作的根本标准是什么？", standard)


def test_a_word_jieba_cuts_across_the_reports_wording_is_not_lacking():
    kb = ["在局内网开辟主题教育学习专栏。", "支持房地产税收征管。"]
    found = lambda term: [p for p in kb if term in p]
    assert written_alike("网开", "在局内网开了什么栏目？", found), "局内网开 is written as asked"
    assert uncovered_subject("在局内网开了什么栏目？", found, load_glossary()) is None
    assert not written_alike("房地产", "房地产市场怎么样？", found), "written only inside 房地产税收"
    roman = ["观看警示片《穿透III》。"]
    lacked = uncovered_subject(
        "巴塞尔协议III对银行资本计量有什么影响？", lambda t: [p for p in roman if t in p], load_glossary()
    )
    assert lacked is not None and lacked.word == "巴塞尔", "III is a number, no subject"


def test_a_named_group_the_best_passages_miss_is_judged_where_the_knowledge_base_names_it():
    kb = [
        "指导金融机构围绕辖区五大产业集群和重点项目建设稳定金融供给。",
        "建立调研成果转化和督办落实两项机制。",
    ]
    found = lambda term: [p for p in kb if term in p]
    question, words = "辖区的五大产业集群具体是哪五个？", ("集群", "五大", "辖区")
    group = group_passages(question, words, found)
    assert group == (kb[0],)
    elsewhere = ["坚持规划先行、试点突破，构建多元金融服务模式。"]  # the search's passages: no 集群
    assert unmet_detail(question, elsewhere, words) is None, "not judged without the group's passages"
    assert unmet_detail(question, elsewhere, words, group) == MissingDetail("集群", "具体名单")
    listed = ("围绕装备制造、食品加工、新材料、新能源、文旅五大产业集群稳定金融供给。",)
    assert unmet_detail(question, elsewhere, words, listed) is None, "listed where the kb names it"
    assert group_passages("辖区产业集群发展得怎么样？", ("集群", "辖区"), found) == (), "no members asked"
    # a quoted name counting its members is spelled out beside it, not by a list in the clause before it
    help_ = ["坚持靶向施策、精准服务，创新开展“双送双问”帮扶活动，下沉基层一线，为企业纾困解难；"]
    two = "“双送双问”帮扶活动送的是哪两样东西？"
    assert unmet_detail(two, help_, ("双送双问",)) == MissingDetail("双送双问", "具体名单")
    assert unmet_detail(two, ["开展“双送双问”帮扶活动，送政策和送服务。"], ("双送双问",)) is None


def test_an_everyday_question_is_refused_only_when_its_best_passage_is_weak():
    weak, strong = 0.85, 0.93
    assert Evidence(weak, everyday=weak + EVERYDAY_MARGIN).refusal(0.8374).rule == "everyday"
    assert Evidence(weak, everyday=weak + EVERYDAY_MARGIN / 2).refusal(0.8374) is None, "not nearer by enough"
    # a knowledge base that covers everyday life answers it with a strong passage
    assert Evidence(strong, everyday=strong + 0.05).refusal(0.8374) is None


@pytest.fixture(scope="module")
def retriever(corpus_settings, embedder) -> Retriever:
    return Retriever(corpus_settings, embedder=embedder)


def final(question: str, retriever: Retriever) -> Answer:
    events = list(ask(question, retriever))
    assert isinstance(events[-1], FinalAnswer)
    return events[-1].answer


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "rule", "detail"),
    [
        ("首贷续贷中心的贷款利率是多少？", "subject", "利率"),  # a figure of a thing no document names
        ("首贷续贷中心的负责人是谁？", "subject", "负责人"),  # its holder
        ("支票丢了怎么挂失？", "subject", "支票"),  # a personal how-to question
        ("房产证怎么补办？", "subject", "房产证"),
        ("契税减免政策有哪些？", "subject", "契税"),  # an instrument no document names
        ("首贷续贷中心试点由哪家银行承办？", "detail", "首贷续贷：具体名称"),  # no bank named near it
        ("失业保险金怎么领？", "subject", "保险金"),  # a payment by name
        ("个人所得税怎么退？", "subject", "个人所得税"),  # a set phrase (jieba's l) ending in a noun
        ("供应链金融有哪些产品？", "subject", "供应链金融"),  # a term of art whose modifier no report writes
        ("全市建了多少个冷链仓库？", "subject", "冷链"),  # the thing counted
        ("消费贷款的利率是怎么规定的？", "subject", "利率"),  # how a term is set
        ("首贷续贷中心申请要满足哪些条件？", "detail", "首贷续贷：申请条件或标准"),  # conditions never stated
        ("办理无还本续贷要准备哪些材料？", "detail", "无还本续贷：办理流程"),  # steps never stated
        ("国家发改委出台了哪些支持新市民的措施？", "scope", "发改委"),  # the body under its other name
        ("税务总局对汽车消费有什么支持？", "scope", "税务局"),
        # the total 贷款余额 of 5月末 is given, never the bad loans' share of it
        ("5月末全市的不良贷款余额有多少亿元？", "detail", "不良贷款余额：具体数字"),
        ("海昌智能主营什么业务？", "detail", "海昌：主营业务"),  # named as a listed firm, its trade never
        ("清廉金融文化知识竞赛谁拿了一等奖？", "detail", "竞赛：名次"),  # held, never ranked
        ("黄金现在还适合买吗？", "subject", "黄金"),  # investment advice on a thing no report names
        ("海昌智能打算去哪个交易所挂牌？", "detail", "海昌：具体名称"),  # "报交易所审核" names none
        ("买新能源汽车的贷款期限最长几年？", "detail", "新能源汽车：具体数字"),  # amounts only, no term
        ("异地看病的医保怎么报销？", "subject", "异地"),  # a citizen's claim, no report's subject
        ("社保断缴了几个月怎么补缴？", "subject", "社保"),  # a citizen's own dues
        ("养老保险交满15年退休后每月能领多少钱？", "subject", "养老保险"),  # 15 is no subject
        ("给孩子买教育金保险划算吗？", "detail", "保险：个人建议"),  # advice, on a thing the reports name
        ("房贷提前还款到底划不划算？", "detail", "个人建议"),  # whichever passages come back
        ("今年延期还本付息的贷款金额跟去年比是多了还是少了？", "detail", "贷款：对比情况"),  # no 同比 given
        ("到6月底，全市贷款余额增长到多少了？", "detail", "贷款余额：具体数字"),  # 5月末 only
        ("已经完成改名的2家融资担保公司原来叫什么名字？", "detail", "融资担保：具体名称"),  # never named
        ("辖区五大产业集群分别是哪五个？", "detail", "集群：具体名单"),  # named, never listed
        ("“双送双问”帮扶活动中的双送、双问分别指什么？", "detail", "双送双问：具体名单"),
        ("民营企业融资难破解行动是银保监局跟哪个部门联合搞的？", "detail", "民营企业：具体名称"),
        ("农信系统不良贷款率降幅全省排第三，那排第一的是哪个市？", "detail", "农信：名次"),  # its own rank
        ("5月24日的重点项目银企对接会在什么地方召开的？", "detail", "银企：举办地点"),  # date, no place
        ("银保监局主题教育读书班请了哪几位专家？", "detail", "读书班：人员姓名"),
        ("党组书记讲的那堂党课题目叫什么？", "detail", "党课：具体名字"),
        ("“浦江经验”指的是什么？", "detail", "浦江经验：具体含义"),  # named, never explained
        ("对822户下调或减收利息，一共少收了多少利息？", "detail", "利息：具体数字"),  # 户 only
        ("哪家银行的定期存款利息最高？", "detail", "利息：个人建议"),
        ("天海集团打算什么时候上市？", "detail", "天海：具体日期"),  # 海昌智能's date is not its
        ("城商行改革化险涉及的是哪家城商行？", "detail", "化险：具体名称"),
        ("高血压病人平时吃饭要注意什么？", "everyday", None),
        (
            "全市不良贷款余额现在还有多少亿元？",
            "detail",
            "不良贷款余额：具体数字",
        ),  # 双降, no figure  # nearer to everyday life than to any report
    ],
)
def test_each_class_of_unanswerable_question_is_refused_by_its_rule(retriever, question, rule, detail):
    answer = final(question, retriever)
    assert answer.refused and not answer.citations, answer.answer
    assert answer.refusal.rule == rule and detail in (None, answer.refusal.detail), answer.refusal


@pytest.mark.slow
@pytest.mark.parametrize(
    "question",
    [
        "全市贷款余额是多少？",  # the measured word (贷款) is in the knowledge base
        "5月末全市贷款余额是多少？",  # at the time the report gives it
        "市里和哪几家交易所开展合作？",  # 沪深北交易所
        "海昌智能什么时候报的辅导备案？",  # 6月15日, an event's date
        "不良贷款率下降了多少？",  # an instrument the knowledge base names
        "哪家银行摘掉了高风险机构的帽子？",  # a bank by name: 市农商银行
        "银保监局跟哪家法院签署了战略合作框架协议？",  # a court by name: 成渝金融法院
        "外地来城里打工的人能办什么专门的贷款？",  # plain words of a paraphrase
        "全市贷款余额比去年同期增长了百分之几？",  # a share asked, a percentage given
        "对地方金融组织下发了多少份整改通知书？",  # the figure is in the item the headline opens
        "“四个深度融合”是哪四个？",  # the items after its headline
        "调研这块建立了哪两项机制？",  # listed in the clause that names them
        "农信系统不良贷款率降幅在全省排第几？",  # 第三
        "对村镇银行取款难，市里和哪些部门密切配合？",  # 市人行、银保监局
        "处级干部培训班在哪里举办的？",  # 石家庄市委党校
        "“双送双问”帮扶活动是做什么的？",
        "能力作风建设年活动建了哪两本台账？",  # "A台账和B台账"
        "局里打造的廉洁文化品牌叫什么名字？",  # quoted in the clause of 品牌
        "走访的943家企业里，一共解决了多少个问题？",  # 278个, beside the stated 943家
        "调查研究建立的“两项机制”指什么？",
        "刚进城安家的人能申请什么专门的贷款？",  # everyday words, a report's subject
    ],
)
def test_the_same_shapes_are_answered_when_the_knowledge_base_has_it(retriever, question):
    answer = final(question, retriever)
    assert not answer.refused and answer.citations, answer.answer


@pytest.mark.slow
def test_an_anonymised_figure_is_quoted_with_a_note_that_it_is_hidden(retriever):
    answer = final("金融监管局2022年发展接收了几名预备党员？", retriever)
    assert not answer.refused and "发展接收预备党员*名" in answer.answer
    assert "原文中这一数字已作脱敏处理（“*名”）" in answer.answer, answer.answer
    # the passage giving the figure is quoted though the report's opening paragraph ranks above it
    meetings = final("金融监管局党组2022年一共开了多少次党组会议？", retriever)
    assert "组织召开党组会议**次" in meetings.answer and "（“**次”）" in meetings.answer, meetings.answer
    legible = final("5月末全市贷款余额是多少？", retriever)
    assert "785.03亿元" in legible.answer and "脱敏" not in legible.answer
