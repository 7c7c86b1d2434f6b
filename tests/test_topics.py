"""Topic coverage: glossary parsing, region matching, and the knowledge-base lookup on a real index."""

from __future__ import annotations

import pytest
from zhiwen.core.index import open_generation
from zhiwen.retriever.topics import BUILTIN, GlossaryError, glossary_from_settings, load_glossary, parse


def glossary_file(tmp_path, text: str) -> str:
    path = tmp_path / "terms.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_regions_are_covered_by_any_alias_of_any_overlapping_concept(tmp_path):
    path = glossary_file(
        tmp_path,
        "# 测试\n小额贷款公司 小贷公司\n普惠型小微企业贷款 普惠小微贷款\n小微企业贷款\n"
        "偿付能力\n不良贷款\n不良贷款容忍度 不良容忍度\n",
    )
    glossary = load_glossary((path,), builtin=False)
    kb = "全市小额贷款公司监管评级，普惠小微贷款余额增长，不良贷款双降"
    mentions = kb.__contains__
    # an alias in the question, the canonical term in the knowledge base: covered
    assert glossary.uncovered("小贷公司打分评级是谁来评？", mentions) == []
    # the longest term of a region decides: its alias is in the knowledge base
    assert glossary.uncovered("普惠型小微企业贷款增长多少？", mentions) == []
    # ... and a text about 不良贷款 that never names the tolerance does not cover it
    assert glossary.uncovered("不良贷款容忍度是多少？", mentions) == ["不良贷款容忍度"]
    assert glossary.matches("不良贷款容忍度") == [(0, 4, 4), (0, 7, 5)]
    # a term of art nowhere in the knowledge base: named in the answer
    assert glossary.uncovered("保险公司偿付能力监管有什么新要求？", mentions) == ["偿付能力"]
    # everyday words are not in the glossary and never refuse
    assert glossary.uncovered("刚进城安家的人能申请什么专门的贷款？", mentions) == []


def test_glossary_errors_name_file_and_line(tmp_path):
    with pytest.raises(GlossaryError, match=r"terms.txt:2: term '贷' is shorter than 2 characters"):
        parse(["偿付能力", "贷 信贷"], "terms.txt")
    with pytest.raises(GlossaryError, match=r"missing.txt: cannot read glossary"):
        load_glossary((str(tmp_path / "missing.txt"),))


def test_setting_selects_builtin_extra_or_nothing(tmp_path):
    path = glossary_file(tmp_path, "自定义术语 自定术语\n")
    assert glossary_from_settings("") is None
    builtin = glossary_from_settings("builtin")
    both = glossary_from_settings(f"builtin, {path}")
    only = glossary_from_settings(path)
    assert "自定义术语" in both.index and "自定义术语" not in builtin.index
    assert only.concepts == (("自定义术语", "自定术语"),)
    assert len(both.concepts) == len(builtin.concepts) + 1


def test_builtin_glossary_is_well_formed():
    concepts = parse(BUILTIN.read_text(encoding="utf-8").splitlines(), str(BUILTIN))
    terms = [t for c in concepts for t in c]
    assert len(concepts) >= 300
    assert len(terms) == len(set(terms)), "a term belongs to one concept"
    # generic words would refuse nearly every question about a corpus that happens not to use them
    assert not {"金融", "银行", "保险", "贷款", "风险", "监管", "融资", "信贷", "普惠金融"} & set(terms)


def test_knowledge_base_lookup_reads_the_stored_documents(corpus_settings):
    gen = open_generation(corpus_settings.index_dir)
    try:
        assert gen.mentions("新市民") and gen.mentions("*.*亿元")
        assert not gen.mentions("存款准备金率")
        assert gen.mentioned == {"新市民": True, "*.*亿元": True, "存款准备金率": False}
    finally:
        gen.close()
