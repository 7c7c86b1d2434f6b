"""Document outlines and section roles: exact spans, the shape of each seed report, and a real-report sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from zhiwen.core.vocab import ROLES
from zhiwen.ingest.outline import build_outline, cued_roles
from zhiwen.ui.cli import main

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
REPORTS = (
    Path(__file__).resolve().parents[2] / "shared" / "evaldata" / "corpora" / "government_work_reports.jsonl"
)


def outline_of(name: str):
    text = (CORPUS / name).read_text(encoding="utf-8")
    return text, build_outline(text)


def heads(text, nodes, kind, role=None):
    return [n.head(text) for n in nodes if n.kind == kind and (role is None or n.role == role)]


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.txt")), ids=lambda p: p.stem[:8])
def test_every_node_is_an_exact_nested_span_with_a_role(path):
    text = path.read_text(encoding="utf-8")
    nodes = build_outline(text)
    assert nodes and all(n.index == i for i, n in enumerate(nodes))
    for node in nodes:
        assert 0 <= node.start < node.end <= len(text) and node.role in ROLES
        assert text[node.start : node.end].strip() == text[node.start : node.end]
        if node.parent is not None:
            parent = nodes[node.parent]
            assert parent.index < node.index and parent.start <= node.start and node.end <= parent.end
        if node.kind == "item":
            siblings = [n for n in nodes if n.parent == node.parent]
            assert [n.position for n in siblings] == list(range(1, len(siblings) + 1))
            assert all(n.count == len(siblings) for n in siblings)


def test_numbered_report_sections_have_the_roles_of_their_headings():
    text, nodes = outline_of("市局-能力作风建设年与金融重点工作推进情况.txt")
    top = [(n.head(text), n.role) for n in nodes if n.kind == "section" and n.parent is None]
    assert top == [
        ("一、能力作风建设年活动开展情况", "done"),
        ("二、重点工作推进情况", "done"),
        ("三、当前存在的主要问题", "problem"),
        ("四、下一步工作打算", "plan"),
    ]
    assert nodes[0].role == "overview", "the preamble"
    plans = heads(text, nodes, "item", "plan")
    assert (
        "（一）强化银企对接，更加注重实效。" in plans and len([p for p in plans if p.startswith("（")]) == 5
    )


def test_a_mixed_section_lets_its_parts_decide_problems_then_plans():
    text, nodes = outline_of("金融监管局党组-2022年度工作总结.txt")
    problems = heads(text, nodes, "item", "problem")
    assert problems == [
        "一是政治领导能力不强。",
        "二是理论武装头脑不够。",
        "三是责任没有层层压实。",
        "四是监督执纪存在短板。",
        "五是重点工作成效不足。",
    ]
    plan = [n for n in nodes if n.role == "plan"]
    assert plan and text[plan[0].start :].startswith("2023年，金融监管局党组将")
    assert len(heads(text, nodes, "section", "done")) == 7  # 一、 and its six （一）…（六）


def test_topic_sentences_head_paragraphs_and_short_headline_sentences_are_items():
    text, nodes = outline_of("银保监局-高标准高质量推动主题教育.txt")
    assert heads(text, nodes, "section") == [
        "发起总动员，在营造“最浓厚”氛围中激发斗志",
        "开展大学习，在夯实“最牢固”基础上提升能力",
        "练好真功夫，在落实“最关键”任务上敢于斗争",
        "突出主目标，在解决“最根本”问题上检验效果",
    ]
    assert ["以上率下抓“领学”。", "上下联动抓“共学”。", "创新形式抓“践学”。", "知行合一抓“考学”。"] == [
        h for h in heads(text, nodes, "item") if "学”" in h
    ]
    assert nodes[-1].kind == "paragraph" and nodes[-1].role == "plan", "下一步，*银保监局将继续……"
    assert {n.role for n in nodes if n.kind == "section"} == {"done"}


def test_cue_words_pick_the_earliest_role_and_what_follows_but():
    assert cued_roles("三、当前存在的主要问题") == ["problem"]
    assert cued_roles("二、存在的不足和下一步工作思路")[0] == "problem"
    assert cued_roles("推动各项重点工作取得了积极成效，但对标对表，还存在一些差距不足：") == ["problem"]
    assert cued_roles("2023年，金融监管局党组将坚持以习近平新时代中国特色社会主义思想为指导")[0] == "plan"
    assert cued_roles("突出主目标，在解决“最根本”问题上检验效果") == []


@pytest.mark.skipif(
    not REPORTS.exists(), reason=f"government work reports not found at {REPORTS} (shared evaldata absent)"
)
def test_government_work_reports_get_nested_outlines_with_work_done_and_plans():
    rows = [json.loads(line) for line in REPORTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    with_done = with_plan = 0
    for row in rows:
        text = row["content"]
        nodes = build_outline(text)
        for node in nodes:
            if node.parent is not None:
                assert nodes[node.parent].start <= node.start and node.end <= nodes[node.parent].end
        with_done += any(n.role == "done" for n in nodes)
        with_plan += any(n.role == "plan" for n in nodes)
    assert with_done >= 0.7 * len(rows) and with_plan >= 0.5 * len(rows), (with_done, with_plan, len(rows))
    latest = max(rows, key=lambda r: int(r.get("year") or 0))
    nodes = build_outline(latest["content"])
    top = [(n.head(latest["content"])[:8], n.role) for n in nodes if n.kind == "section" and n.parent is None]
    assert [role for _, role in top] == ["done", "plan", "plan"], top  # 工作回顾, 总体要求, 工作任务


@pytest.mark.slow
def test_outline_command_and_role_filter(corpus_settings, corpus_texts):
    index = str(corpus_settings.index_dir)
    result = CliRunner().invoke(main, ["outline", "党组", "--json", "--index", index])
    assert result.exit_code == 0, result.output
    (doc,) = json.loads(result.output)
    text = corpus_texts[doc["doc_id"]]
    assert any(text[n["head_start"] : n["head_end"]] == "四是监督执纪存在短板。" for n in doc["nodes"])
    shown = CliRunner().invoke(main, ["outline", "党组", "--index", index])
    assert "[item 4/5 · problem] 四是监督执纪存在短板。" in shown.output
    found = CliRunner().invoke(main, ["search", "小微企业融资", "--role", "plan", "--json", "--index", index])
    hits = json.loads(found.output)
    assert hits and all(h["meta"]["role"] == "plan" and h["meta"]["section_path"] for h in hits)
    for hit in hits:
        assert corpus_texts[hit["doc_id"]][hit["start"] : hit["end"]] == hit["text"]
