"""Chunking: exact slices that cover the text, and one chunk per enumerated measure."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zhiwen.core.types import Document
from zhiwen.core.vocab import CHUNKER_VERSIONS, CHUNKERS
from zhiwen.ingest.split import split_document, split_span

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
GOV_REPORTS = ROOT.parent / "shared" / "evaldata" / "corpora" / "government_work_reports.jsonl"


def check_chunks(doc: Document, strategy: str, **kwargs: int) -> list:
    """Split ``doc`` and assert the invariants every strategy promises; returns the chunks."""
    chunks = split_document(doc, strategy, **kwargs)
    covered = [False] * len(doc.text)
    previous_end = 0
    for chunk in chunks:
        assert 0 <= chunk.start < chunk.end <= len(doc.text)
        assert chunk.text == doc.text[chunk.start : chunk.end]
        assert chunk.text == chunk.text.strip()
        assert chunk.doc_id == doc.doc_id and chunk.title == doc.title
        if strategy != "window":
            assert chunk.start >= previous_end, "chunks overlap or are out of order"
        previous_end = chunk.end
        covered[chunk.start : chunk.end] = [True] * (chunk.end - chunk.start)
    missing = [i for i, ch in enumerate(doc.text) if not ch.isspace() and not covered[i]]
    assert not missing, f"characters not in any chunk: {doc.text[missing[0] : missing[0] + 20]!r}"
    ids = [c.chunk_id for c in chunks]
    assert len(ids) == len(set(ids))
    assert ids == [c.chunk_id for c in split_document(doc, strategy, **kwargs)]
    return chunks


# --- property tests on generated reports -------------------------------------------------------

CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF)
WORDS = st.text(CJK, min_size=1, max_size=30) | st.sampled_from(
    ["*", "**", "1.5亿元", "2022年", "第一次", "一是否", "统一是", "一是一，二是二", "增长*.*%", "（扩大）"]
)
SENTENCE = st.builds(
    lambda words, comma, end: comma.join(words) + end,
    st.lists(WORDS, min_size=1, max_size=6),
    st.sampled_from(["，", "、", ""]),
    st.sampled_from(["。", "；", "！", "？", "", "：", "。”"]),
)
SPACE = st.sampled_from(["", "", " ", "\u3000", "\t", "  "])
NUMERALS = "一二三四五六七八九十"


@st.composite
def enumeration(draw: st.DrawFn) -> str:
    count = draw(st.integers(1, 6))
    style = draw(st.sampled_from(["是", "要", "第", "（）", "1.", "1、", "(1)", "①", "首先"]))
    order = ["首先", "其次", "再次", "最后"]
    parts = ["".join(draw(st.lists(SENTENCE, max_size=2)))]
    for i in range(count):
        marker = {
            "是": f"{NUMERALS[i]}是",
            "要": f"{NUMERALS[i]}要",
            "第": f"第{NUMERALS[i]}，",
            "（）": f"（{NUMERALS[i]}）",
            "1.": f"{i + 1}.",
            "1、": f"{i + 1}、",
            "(1)": f"({i + 1})",
            "①": chr(ord("①") + i),
            "首先": order[min(i, 3)] + "，",
        }[style]
        parts.append(draw(SPACE) + marker + "".join(draw(st.lists(SENTENCE, min_size=1, max_size=4))))
    return "".join(parts)


HEADING = st.one_of(
    st.builds(lambda i, t: f"{NUMERALS[i]}、{t}", st.integers(0, 9), st.text(CJK, min_size=1, max_size=12)),
    st.builds(lambda i, t: f"（{NUMERALS[i]}）{t}", st.integers(0, 9), st.text(CJK, min_size=1, max_size=12)),
    st.builds(lambda i, t: f"第{NUMERALS[i]}章 {t}", st.integers(0, 9), st.text(CJK, min_size=1, max_size=8)),
    st.builds(lambda i: f"第{NUMERALS[i]}条", st.integers(0, 9)),
    st.text(CJK, min_size=1, max_size=20),
)
LINE = st.one_of(
    HEADING,
    enumeration(),
    st.builds("".join, st.lists(SENTENCE, min_size=1, max_size=8)),
    st.builds(lambda a, b: a + b, HEADING.map(lambda h: h + "。"), enumeration()),
    SPACE,
)


@st.composite
def report(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.tuples(SPACE, LINE, SPACE), min_size=1, max_size=12))
    breaks = draw(
        st.lists(st.sampled_from(["\n", "\n\n", "\r\n", "\n \n"]), min_size=len(lines), max_size=len(lines))
    )
    return "".join(a + line + b + brk for (a, line, b), brk in zip(lines, breaks))


@pytest.mark.parametrize("strategy", CHUNKERS)
@settings(max_examples=150, deadline=None)
@given(text=report(), max_chars=st.sampled_from([40, 120, 360]), min_chars=st.sampled_from([0, 8, 24]))
def test_chunks_are_exact_covering_slices(strategy: str, text: str, max_chars: int, min_chars: int) -> None:
    doc = Document("gen/report.txt", "生成的报告", text)
    chunks = check_chunks(doc, strategy, max_chars=max_chars, min_chars=min_chars)
    if not text.strip():
        assert chunks == []


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.sampled_from("一二是。；，\n *①1.（）、首先其次最后第") | CJK, max_size=300))
def test_arbitrary_marker_soup_keeps_invariants(text: str) -> None:
    for strategy in CHUNKERS:
        check_chunks(Document("soup", "", text), strategy, max_chars=60, min_chars=10)


@settings(max_examples=100, deadline=None)
@given(text=st.text(CJK | st.sampled_from("。；，\n "), max_size=2000), max_chars=st.integers(20, 400))
def test_split_span_respects_max_chars_at_sentence_ends(text: str, max_chars: int) -> None:
    pieces = split_span(text, 0, len(text), max_chars, 0)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(pieces))
    assert "".join(text[s:e] for s, e in pieces).split() == [] or "".join(
        "".join(text[s:e].split()) for s, e in pieces
    ) == "".join(text.split())
    for s, e in pieces:
        assert 0 < e - s <= max_chars and text[s:e] == text[s:e].strip()
        if e - s < max_chars // 2 and (s, e) != pieces[-1]:
            assert text[e - 1] in "。；", "a short piece ends only at a sentence end"


# --- behaviour on hand-written and real passages ------------------------------------------------


def items(chunks: list) -> list:
    return [c for c in chunks if "item_label" in c.meta]


def test_unknown_strategy_is_named() -> None:
    with pytest.raises(ValueError, match="'sentences'"):
        split_document(Document("d", "t", "正文。"), "sentences")
    assert set(CHUNKER_VERSIONS) == set(CHUNKERS)


def test_inline_items_get_their_own_chunks_with_the_lead_in_as_context() -> None:
    lead = "推动高质量发展，着力办实事、解民忧，出台了一系列务实有效的措施。"
    body = [
        "一是在稳字上做文章，推动增加服务消费供给，满足复苏性金融需求。",
        "二是在准字上下功夫，助力扩大居民消费需求，支持刚性住房需求。",
        "三是在新字上求突破，支持塑造消费新场景，发展智慧家政等新业态。",
    ]
    doc = Document("d.txt", "报告", "标题行\n\n" + lead + "".join(body) + "\n")
    chunks = check_chunks(doc, "structure")
    found = items(chunks)
    assert [c.text for c in found] == body
    assert [c.meta["item_label"] for c in found] == ["一是", "二是", "三是"]
    assert [(c.meta["item_index"], c.meta["item_count"]) for c in found] == [(1, 3), (2, 3), (3, 3)]
    assert all(lead in c.context and c.kind == "item" for c in found)
    assert chunks[0].kind == "leadin" and chunks[0].text.endswith(lead)


def test_false_markers_are_not_items() -> None:
    text = (
        "这是第一次召开此类会议，会议讨论了统一是否必要的问题，贷款余额1.5亿元。"
        "2022年，一是一，二是二，实事求是，各项工作扎实推进，取得积极成效。"
    )
    chunks = check_chunks(Document("d", "", text), "structure")
    assert items(chunks) == []


def test_markers_out_of_sequence_are_not_items() -> None:
    text = "会议认为，二是关键环节，必须抓紧抓好落实工作。三是重点任务，必须持续用力推进。"
    assert items(check_chunks(Document("d", "", text), "structure")) == []


@pytest.mark.parametrize(
    ("markers", "labels"),
    [
        (["（一）", "（二）"], ["（一）", "（二）"]),
        (["1.", "2."], ["1.", "2."]),
        (["1、", "2、"], ["1、", "2、"]),
        (["(1)", "(2)"], ["(1)", "(2)"]),
        (["①", "②"], ["①", "②"]),
        (["第一，", "第二，"], ["第一", "第二"]),
        (["首先，", "其次，", "最后，"], ["首先", "其次", "最后"]),
        (["一要", "二要"], ["一要", "二要"]),
    ],
)
def test_every_marker_style_makes_items(markers: list[str], labels: list[str]) -> None:
    text = "下一步工作安排如下：" + "".join(
        f"{m}坚持问题导向，推动各项工作落到实处，取得更大成效。" for m in markers
    )
    found = items(check_chunks(Document("d", "", text), "structure"))
    assert [c.meta["item_label"] for c in found] == labels
    assert all(c.context.endswith("下一步工作安排如下：") for c in found)


def test_nested_items_and_headings_build_the_context() -> None:
    text = (
        "一、重点工作推进情况。（一）金融支持实体经济作用进一步发挥。截至5月末，全市贷款余额785.03亿元。"
        "一是组织开展常态化银企对接活动，走访企业943家，解决问题278个。"
        "二是持续加大普惠金融共享平台推广应用，累计授信97.93亿元。"
        "（二）金融惠企政策红利进一步释放。一是认真研究稳经济一揽子政策，制定具体措施。"
        "二是印制惠企政策明白卡，利用多种形式大力宣传惠企政策。\n"
    )
    found = items(check_chunks(Document("d", "文档", text), "structure"))
    second = next(c for c in found if c.text.startswith("二是持续"))
    assert second.meta["item_path"] == ["（一）", "二是"]
    assert second.meta["heading_path"] == ["一、重点工作推进情况"]
    assert "截至5月末" in second.context and "一、重点工作推进情况" in second.context
    last = found[-1]
    assert last.text.startswith("二是印制") and "（二）金融惠企" in last.context


def test_over_long_items_are_split_into_parts_with_the_same_context() -> None:
    sentence = "围绕重点领域加大信贷投放力度，持续优化金融服务。"
    text = "工作如下：一是" + sentence * 30 + "二是" + sentence + "\n"
    chunks = check_chunks(Document("d", "", text), "structure", max_chars=120)
    parts = [c for c in chunks if c.meta.get("item_label") == "一是"]
    assert len(parts) > 2 and all(c.kind == "part" and len(c.text) <= 120 for c in parts)
    assert all(c.text.endswith("。") for c in parts)
    assert all("工作如下：" in c.context for c in parts)


def test_headings_and_tiny_fragments_join_a_neighbour() -> None:
    text = "年度工作总结\n\n一、总体情况\n各位领导：\n今年以来，我们坚持稳中求进工作总基调，各项工作取得新成效。\n谢谢大家！\n"
    chunks = check_chunks(Document("d", "年度工作总结", text), "structure")
    assert len(chunks) == 1
    assert chunks[0].meta["heading_path"] == ["一、总体情况"]


def test_paragraph_and_window_strategies() -> None:
    text = "第一段内容。\n\n  第二段内容，比第一段长一些。  \n" + "长" * 500
    paragraphs = check_chunks(Document("d", "题", text), "paragraph", max_chars=200)
    assert [c.text for c in paragraphs[:2]] == ["第一段内容。", "第二段内容，比第一段长一些。"]
    assert all(c.context == "题" for c in paragraphs)
    windows = check_chunks(Document("d", "题", text), "window")
    assert all(len(c.text) <= 200 for c in windows)
    assert windows[1].start == 160


def test_page_numbers_come_from_page_starts() -> None:
    text = "第一页的内容在这里。\n第二页的内容在这里，内容较多一些。\n第三页。"
    doc = Document("d.pdf", "", text, {"page_starts": [0, 11, 29]})
    assert [c.meta["page"] for c in check_chunks(doc, "paragraph", min_chars=0)] == [1, 2, 3]


def test_corpus_consumption_passage_has_one_chunk_per_measure() -> None:
    path = CORPUS / "银保监局-主题教育与金融促进消费工作.txt"
    doc = Document(path.name, path.stem, path.read_text(encoding="utf-8"))
    chunks = check_chunks(doc, "structure")
    found = [c for c in items(chunks) if "推动高质量发展，着力破难题" in c.context]
    assert [c.meta["item_label"] for c in found] == ["一是", "二是", "三是", "四是"]
    assert [c.text[:2] for c in found] == ["一是", "二是", "三是", "四是"]
    assert all("出台十六项措施" in c.context for c in found)
    assert all(c.meta["item_count"] == 4 for c in found)
    new_citizens = [c for c in chunks if "量身打造新市民专属信贷产品" in c.text]
    assert len(new_citizens) == 1 and new_citizens[0].meta["item_label"] == "二是"
    lead = next(c for c in chunks if c.text.startswith("推动高质量发展"))
    assert lead.kind == "leadin" and "一是" not in lead.text


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.txt")), ids=lambda p: p.name)
@pytest.mark.parametrize("strategy", CHUNKERS)
def test_corpus_documents_keep_invariants(path: Path, strategy: str) -> None:
    check_chunks(Document(path.name, path.stem, path.read_text(encoding="utf-8")), strategy)


@pytest.fixture(scope="module")
def gov_reports() -> dict[str, Document]:
    if not GOV_REPORTS.exists():
        pytest.skip(f"government work reports not found at {GOV_REPORTS} (shared evaldata absent)")
    rows = [json.loads(line) for line in GOV_REPORTS.read_text(encoding="utf-8").splitlines()]
    return {r["title"]: Document(f"gov/{i}", r["title"], r["content"]) for i, r in enumerate(rows)}


def test_government_reports_keep_invariants(gov_reports: dict[str, Document]) -> None:
    for doc in gov_reports.values():
        for strategy in CHUNKERS:
            check_chunks(doc, strategy)


def test_government_report_paragraph_items(gov_reports: dict[str, Document]) -> None:
    doc = gov_reports["2024年中华人民共和国国务院政府工作报告"]
    chunks = check_chunks(doc, "structure")
    review = [c for c in items(chunks) if "主要做了以下工作" in c.context]
    assert [c.meta["item_label"] for c in review if c.meta.get("part_index", 1) == 1] == [
        "一是",
        "二是",
        "三是",
        "四是",
        "五是",
        "六是",
    ]
    assert all(c.meta["heading_path"][-1] == "一、2023年工作回顾" for c in review)
    second = next(c for c in review if c.meta["item_label"] == "二是")
    assert second.text.startswith("二是依靠创新引领产业升级")


def test_government_report_inline_items(gov_reports: dict[str, Document]) -> None:
    doc = gov_reports["2016年中华人民共和国国务院政府工作报告"]
    chunks = check_chunks(doc, "structure")
    found = [c for c in items(chunks) if "今年将采取三项举措" in c.context]
    assert [c.meta["item_label"] for c in found] == ["一是", "二是", "三是"]
    assert found[0].text.startswith("一是全面实施营改增")
    assert "停征和归并一批政府性基金" in found[1].text
    assert all("适度扩大财政赤字" in c.context for c in found)
    lead = next(c for c in chunks if c.text.startswith("适度扩大财政赤字"))
    assert lead.kind == "leadin" and lead.text.endswith("今年将采取三项举措。")
    sections = {tuple(c.meta["heading_path"][-1:]) for c in chunks}
    assert ("（一）稳定和完善宏观经济政策，保持经济运行在合理区间",) in sections
