"""The chat window's handlers, run on a real index built from corpus/ with the real embedding model."""

from __future__ import annotations

import json
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from itertools import pairwise
from pathlib import Path

import pytest
from zhiwen.core.embed import Embedder
from zhiwen.core.settings import Settings, SettingsError, default_cache_dir
from zhiwen.core.types import Document
from zhiwen.ingest.pipeline import ingest_paths
from zhiwen.retriever import Retriever
from zhiwen.retriever.answer import REFUSAL
from zhiwen.ui.app import ZhiwenApp, launch, parse_auth, prepare, reveal_prefixes
from zhiwen.ui.conversations import feedback_values, new_conversation
from zhiwen.ui.render import answer_html, escape, position_label

pytestmark = pytest.mark.slow
CORPUS = Path(__file__).parents[1] / "corpus"
INJECTION = (
    "测试机构-注入测试文档\n"
    "量子珊瑚贷款是本行为海洋牧场推出的专项信贷产品<script>alert(1)</script>，"
    "额度为**万元，<img src=x onerror=alert(2)>详见[链接](javascript:alert(3))。\n"
)
UNIQUE_FACT = "星河渔业互助基金由云杉县农商行于今年设立，首期规模为七千万元。"


def build_index(tmp: Path, embedder: Embedder) -> Settings:
    """A fresh index of the corpus plus the injection document under ``tmp``."""
    source = tmp / "docs"
    shutil.copytree(CORPUS, source)
    (source / "注入测试.txt").write_text(INJECTION, encoding="utf-8")
    settings = Settings(index_dir=tmp / "data" / "index", cache_dir=default_cache_dir())
    report = ingest_paths([source], settings, progress=False, embedder=embedder)
    assert not report.failed and report.documents == 6
    return settings


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> ZhiwenApp:
    """One app over one index, for tests that only read."""
    settings = build_index(tmp_path_factory.mktemp("ui"), embedder)
    return ZhiwenApp(settings, Retriever(settings, embedder=embedder))


@pytest.fixture
def fresh(shared: ZhiwenApp, tmp_path: Path) -> ZhiwenApp:
    """An app over its own index (for uploads and deletes), sharing the loaded embedding model."""
    settings = build_index(tmp_path, shared.retriever.embedder)
    return ZhiwenApp(settings, Retriever(settings, embedder=shared.retriever.embedder))


def run_chat(app: ZhiwenApp, question: str, conversation=None, **options) -> list[tuple]:
    return list(app.chat(question, conversation or new_conversation(), **options))


def test_chat_streams_an_answer_with_linked_citations_and_sources(shared: ZhiwenApp) -> None:
    steps = run_chat(shared, "如何支持新市民金融？")
    assert len(steps) > 3, "the answer should arrive in pieces"
    contents = [messages[-1]["content"] for messages, _, _, _ in steps[1:-1]]
    assert all(len(a) <= len(b) for a, b in pairwise(contents))
    messages, sources, conversation, _ = steps[-1]
    assert messages[0] == {"role": "user", "content": "如何支持新市民金融？"}
    answer = messages[-1]["content"]
    assert '<a class="zw-cite" href="#zw-t0-c1">[1]</a>' in answer
    assert "新市民" in answer
    assert 'id="zw-t0-c1"' in sources and "<mark>" in sources and "查看原文" in sources
    first_card = sources.split('id="zw-t0-c1"')[1].split('class="zw-source"')[0]
    assert "新市民" in first_card.split("<mark>")[1].split("</mark>")[0]
    assert "字符" in first_card and "段" in first_card
    assert conversation["messages"][0] == {"role": "user", "content": "如何支持新市民金融？"}
    assert (
        conversation["messages"][1]["role"] == "assistant" and "[1]" in conversation["messages"][1]["content"]
    )
    record = conversation["answers"][0]
    assert record["question"] == "如何支持新市民金融？" and record["positions"]["1"].endswith(
        "字符 " + (f"{record['answer']['citations'][0]['start']}–{record['answer']['citations'][0]['end']}")
    )


def test_a_follow_up_in_the_window_is_read_against_the_conversation(shared: ZhiwenApp) -> None:
    _, _, conversation, _ = run_chat(shared, "金融促进消费有哪些措施？")[-1]
    messages, _, conversation, _ = run_chat(shared, "第二项具体是什么？", conversation)[-1]
    answer = conversation["answers"][-1]["answer"]
    assert "理解为" in messages[-1]["content"] and not answer["refused"]
    text = (CORPUS / "银保监局-主题教育与金融促进消费工作.txt").read_text(encoding="utf-8")
    second = (text.index("二是在“准”字上下功夫"), text.index("三是在“新”字上求突破"))  # the item asked for
    cited = [(c["doc_id"], c["start"], c["end"]) for c in answer["citations"]]
    assert cited and all(
        d == "银保监局-主题教育与金融促进消费工作.txt" and second[0] <= a < b <= second[1]
        for d, a, b in cited
    ), cited


def test_every_answer_keeps_its_own_sources_and_selecting_shows_them(shared: ZhiwenApp) -> None:
    _, _, conversation, _ = run_chat(shared, "如何支持新市民金融？")[-1]
    messages, sources, conversation, _ = run_chat(shared, "金融促进消费有哪些措施？", conversation)[-1]
    assert 'href="#zw-t1-c1"' in messages[-1]["content"]
    assert 'id="zw-t0-c1"' in sources and 'id="zw-t1-c1"' in sources, "older answers' links stay live"
    assert '<div class="zw-turn" data-turn="0" hidden>' in sources
    assert '<div class="zw-turn" data-turn="1">' in sources
    panel, turn = shared.select(conversation, 1)
    assert turn == 0 and '<div class="zw-turn" data-turn="0">' in panel
    assert shared.select(conversation, 2)[1] == 1  # the question selects its answer
    assert shared.select(conversation, 9) is None
    blank = run_chat(shared, "   ", conversation)
    assert len(blank) == 1 and blank[0][2] == conversation and blank[0][0] == messages


def test_document_text_is_shown_escaped_in_answers_and_sources(shared: ZhiwenApp) -> None:
    messages, sources, conversation, _ = run_chat(shared, "量子珊瑚贷款是什么产品？")[-1]
    citation_docs = {c["doc_id"] for c in conversation["answers"][0]["answer"]["citations"]}
    assert "注入测试.txt" in citation_docs
    for html in (messages[-1]["content"], sources):
        assert "<script" not in html and "<img" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "**万元" in sources  # anonymisation marks stay verbatim
    assert "&lt;img src=x onerror=alert(2)&gt;" in sources


def test_question_text_is_escaped(shared: ZhiwenApp) -> None:
    messages, _, _, _ = run_chat(shared, "<b>新市民</b>金融？")[-1]
    assert messages[0]["content"] == "&lt;b&gt;新市民&lt;/b&gt;金融？"


def test_refused_answer_shows_possibly_related_passages(shared: ZhiwenApp) -> None:
    strict = shared.settings.replace(refusal_threshold=0.99)
    app = ZhiwenApp(strict, Retriever(strict, embedder=shared.retriever.embedder))
    messages, sources, conversation, _ = run_chat(app, "火星基地的氧气配额怎么分配？")[-1]
    answer = conversation["answers"][0]["answer"]
    assert answer["refused"]
    assert REFUSAL in messages[-1]["content"] and "zw-cite" not in messages[-1]["content"]
    assert "可能相关" in sources and sources.count('class="zw-source"') == len(answer["related"]) > 0


def test_filters_limit_the_answer_to_the_chosen_document(shared: ZhiwenApp) -> None:
    doc = "金融监管局党组-2022年度工作总结.txt"
    choices = shared.filter_choices()
    assert "2022" in choices["year"] and "银保监局" in choices["issuer"]
    assert (
        "金融监管局党组2022年度工作总结",
        doc,
    ) in choices["doc_id"]
    _, _, conversation, _ = run_chat(shared, "如何支持新市民金融？", filters={"doc_id": [doc], "year": []})[
        -1
    ]
    record = conversation["answers"][0]
    cited = {c["doc_id"] for c in record["answer"]["citations"]} | {
        h["doc_id"] for h in record["answer"]["related"]
    }
    assert cited == {doc} and record["filters"] == {"doc_id": [doc]}


def test_feedback_is_recorded_against_the_answer_clicked_and_kept_with_it(
    shared: ZhiwenApp, tmp_path: Path
) -> None:
    app = ZhiwenApp(shared.settings.replace(index_dir=tmp_path / "index"), shared.retriever)
    _, _, conversation, _ = run_chat(app, "如何支持新市民金融？")[-1]
    _, _, conversation, _ = run_chat(app, "金融促进消费有哪些措施？", conversation)[-1]
    assert "👍" in app.feedback(conversation, 1, True)
    assert "👎" in app.feedback(conversation, 3, False)
    assert "只能评价回答" in app.feedback(conversation, 0, True)
    assert "只能评价回答" in app.feedback(new_conversation(), 1, True), "a cleared chat has no answers"
    lines = (tmp_path / "feedback.jsonl").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    assert [(e["rating"], e["question"]) for e in entries] == [
        ("up", "如何支持新市民金融？"),
        ("down", "金融促进消费有哪些措施？"),
    ]
    entry = entries[0]
    assert "[1]" in entry["answer"] and entry["conversation"] == conversation["id"]
    assert entry["citations"][0]["n"] == 1 and entry["citations"][0]["text"] in entry["answer"]
    assert entry["time"].endswith("+00:00")
    # The ratings are saved with the conversation, so reopening it shows them; "" takes one back.
    assert feedback_values(app.open_conversation(None, conversation["id"])) == ["Like", "Dislike"]
    assert "已撤销" in app.feedback(conversation, 3, "")
    last = (tmp_path / "feedback.jsonl").read_text(encoding="utf-8").splitlines()[-1]
    assert json.loads(last)["rating"] == "withdrawn"
    assert feedback_values(app.open_conversation(None, conversation["id"])) == ["Like", None]
    # A later answer, asked from the conversation as it was before the ratings, keeps them.
    _, _, longer, _ = run_chat(app, "如何防范化解金融风险？", conversation)[-1]
    assert feedback_values(longer) == ["Like", None, None]
    assert feedback_values(app.open_conversation(None, conversation["id"])) == ["Like", None, None]


def test_conversations_are_saved_per_user_and_reopened(shared: ZhiwenApp, tmp_path: Path) -> None:
    app = ZhiwenApp(shared.settings.replace(index_dir=tmp_path / "index"), shared.retriever)
    _, _, mine, _ = run_chat(app, "如何支持新市民金融？", user="alice")[-1]
    _, _, theirs, _ = run_chat(app, "金融促进消费有哪些措施？", user="bob")[-1]
    assert [label.split(" · ")[0] for label, _ in app.history("alice")] == ["如何支持新市民金融？"]
    assert [cid for _, cid in app.history("bob")] == [theirs["id"]]
    assert app.history(None) == [], "without a login, history is the shared local user's"
    assert app.open_conversation("alice", mine["id"]) == mine
    assert app.open_conversation("bob", mine["id"])["answers"] == [], "one user cannot open another's"
    assert app.open_conversation("alice", "../../etc/passwd")["answers"] == []
    again = run_chat(app, "如何防范化解金融风险？", app.open_conversation("alice", mine["id"]), user="alice")[
        -1
    ][2]
    assert len(again["messages"]) == 4 and app.history("alice")[0][1] == mine["id"]


def test_conversations_are_renamed_and_deleted_per_user(shared: ZhiwenApp, tmp_path: Path) -> None:
    app = ZhiwenApp(shared.settings.replace(index_dir=tmp_path / "index"), shared.retriever)
    _, _, mine, _ = run_chat(app, "如何支持新市民金融？", user="alice")[-1]
    _, _, theirs, _ = run_chat(app, "如何支持新市民金融？", user="bob")[-1]
    note, named = app.rename_conversation("alice", mine, "  新市民  金融笔记 ")
    assert "已重命名为“新市民 金融笔记”" in note and named["title"] == "新市民 金融笔记"
    assert named["messages"] == mine["messages"] and named["updated"] == mine["updated"]
    assert app.history("alice")[0][0].startswith("新市民 金融笔记 · ")
    assert app.history("bob")[0][0].startswith("如何支持新市民金融？ · "), "bob's own is unchanged"
    for bad, reason in (("   ", "请输入对话的新名称"), ("名" * 61, "名称太长：61 个字符")):
        note, same = app.rename_conversation("alice", named, bad)
        assert reason in note and "zw-error" in note and same is named
    assert "还没有内容" in app.rename_conversation("alice", new_conversation(), "空")[0]
    prompt = app.delete_conversation_prompt(named)
    assert prompt == "确定要删除对话“新市民 金融笔记”（1 轮问答）吗？删除后无法恢复。"
    assert app.delete_conversation_prompt(new_conversation()) is None
    assert "已删除对话“新市民 金融笔记”" in app.delete_conversation("alice", named)
    assert app.history("alice") == [] and app.open_conversation("alice", named["id"])["answers"] == []
    assert [cid for _, cid in app.history("bob")] == [theirs["id"]], "bob's history is his own"
    app.delete_conversation("alice", theirs)  # alice cannot delete bob's: ids are looked up per user
    assert [cid for _, cid in app.history("bob")] == [theirs["id"]]


def test_export_numbers_citations_once_and_lists_exact_sources(shared: ZhiwenApp, tmp_path: Path) -> None:
    from docx import Document as WordDocument

    _, _, conversation, _ = run_chat(shared, "如何支持新市民金融？")[-1]
    _, _, conversation, _ = run_chat(shared, "金融促进消费有哪些措施？", conversation)[-1]
    md, docx = shared.export(conversation, 1, whole=True)
    text = md.read_text(encoding="utf-8")
    citations = [c for r in conversation["answers"] for c in r["answer"]["citations"]]
    unique = {(c["doc_id"], c["start"], c["end"]) for c in citations}
    assert text.count("**[") == len(unique) and "## 引用来源" in text
    assert "## 问：如何支持新市民金融？" in text and "## 问：金融促进消费有哪些措施？" in text
    with shared.retriever.pinned() as gen:
        for c in citations:
            source = gen.document(c["doc_id"]).text[c["start"] : c["end"]]
            assert "> " + source.split("\n")[0].replace("*", "\\*") in text
    word = "\n".join(p.text for p in WordDocument(str(docx)).paragraphs)
    assert "引用来源" in word and all(c["text"].split("\n")[0] in word for c in citations)
    assert "*.*亿元" in word, "anonymisation marks stay verbatim"
    one, _ = shared.export(conversation, 0, whole=False)
    assert "金融促进消费有哪些措施" not in one.read_text(encoding="utf-8")
    assert shared.export(new_conversation(), -1, whole=True) == (None, None)


def test_the_exports_folder_is_made_at_the_first_export_only(fresh: ZhiwenApp) -> None:
    assert fresh._exports is None, "an app that never exports leaves no folder behind"
    _, _, conversation, _ = run_chat(fresh, "如何支持新市民金融？")[-1]
    md, _ = fresh.export(conversation, 0, whole=False)
    assert md.is_relative_to(fresh.exports_dir) and fresh.exports_dir.name.startswith("zhiwen-exports-")


def test_upload_adds_good_files_and_reports_bad_ones(fresh: ZhiwenApp, tmp_path: Path) -> None:
    incoming = tmp_path / "browser-upload"
    incoming.mkdir()
    good = incoming / "星河基金.txt"
    good.write_text(f"星河基金简报\n{UNIQUE_FACT}\n", encoding="utf-8")
    broken = incoming / "坏文件.pdf"
    broken.write_bytes(b"this is not a pdf at all")
    unsupported = incoming / "程序.exe"
    unsupported.write_bytes(b"MZ\x00\x01")
    steps: list[tuple[float, str]] = []
    status = fresh.upload([str(good), str(broken), str(unsupported)], lambda f, d: steps.append((f, d)))

    assert "✓ 星河基金.txt：已添加" in status
    assert "✗ 坏文件.pdf：" in status and "zw-error" in status
    assert "✗ 程序.exe：不支持的文件类型" in status
    assert steps[-1] == (1.0, "完成")
    assert sorted(p.name for p in fresh.uploads_dir.iterdir() if p.is_file()) == ["星河基金.txt"]
    table = {row[0]: row for row in fresh.documents_table()}
    assert table["星河基金.txt"][1] == "星河基金简报" and table["星河基金.txt"][2] >= 1
    assert "坏文件.pdf" not in table
    top = fresh.retrieval_test("星河渔业互助基金的首期规模是多少？", "hybrid", 3)[0][0]
    assert top[7] == "星河基金简报" and UNIQUE_FACT in top[9]
    assert "新增 1 篇" in status and "added" not in status

    again = fresh.upload([str(good)])
    assert "✓ 星河基金.txt：内容未变化" in again
    assert "请先选择" in fresh.upload([])


def test_delete_asks_first_and_a_deleted_document_can_be_restored(fresh: ZhiwenApp, tmp_path: Path) -> None:
    upload = tmp_path / "删除我.md"
    upload.write_text(f"# 待删除\n{UNIQUE_FACT}\n", encoding="utf-8")
    fresh.upload([str(upload)])
    assert "删除我.md" in fresh.doc_ids()
    assert (
        fresh.delete_prompt("删除我.md") == "确定要删除《待删除》（删除我.md）吗？删除后可在“回收站”中恢复。"
    )
    assert fresh.delete_prompt(None) is None and fresh.delete_prompt("没有这篇.txt") is None
    assert "✓ 已删除 删除我.md（已移入回收站，可恢复）" in fresh.delete("删除我.md")
    assert "删除我.md" not in fresh.doc_ids() and not (fresh.uploads_dir / "删除我.md").exists()
    assert all(row[0] != "删除我.md" for row in fresh.documents_table())
    assert "not in the index" in fresh.delete("删除我.md")
    assert "请先选择" in fresh.delete(None)
    [(label, key)] = fresh.trash_choices()
    assert label.startswith("待删除（删除我.md，删除于 ")
    assert "✓ 已恢复" in fresh.restore(key)
    assert "删除我.md" in fresh.doc_ids() and (fresh.uploads_dir / "删除我.md").read_text(encoding="utf-8")
    assert fresh.trash_choices() == [] and "回收站中没有" in fresh.restore(key)
    assert fresh.empty_trash_prompt() is None and "回收站已经是空的" in fresh.empty_trash()
    top = fresh.retrieval_test("星河渔业互助基金的首期规模是多少？", "hybrid", 1)[0][0]
    assert top[7] == "待删除" and UNIQUE_FACT in top[9]


def test_emptying_the_trash_removes_its_documents_for_good(fresh: ZhiwenApp, tmp_path: Path) -> None:
    for name in ("甲.md", "乙.md"):
        (tmp_path / name).write_text(f"# {name}\n{UNIQUE_FACT}{name}\n", encoding="utf-8")
        fresh.upload([str(tmp_path / name)])
        fresh.delete(name)
    assert fresh.empty_trash_prompt() == "确定要清空回收站吗？其中的 2 篇文档将被永久删除，无法恢复。"
    assert "✓ 已清空回收站：永久删除 2 篇文档" in fresh.empty_trash()
    assert fresh.trash_choices() == [] and not any(fresh.kb.trash_dir.iterdir())
    assert "甲.md" not in fresh.doc_ids() and not (fresh.uploads_dir / "甲.md").exists()


def test_rebuild_keeps_every_document(fresh: ZhiwenApp) -> None:
    before = fresh.documents_table()
    status = fresh.rebuild()
    assert "已重建索引" in status and "知识库现有 6 篇文档" in status
    assert fresh.documents_table() == before


def test_documents_table_lists_metadata(shared: ZhiwenApp) -> None:
    table = {row[0]: row for row in shared.documents_table()}
    assert len(table) == 6
    row = table["金融监管局党组-2022年度工作总结.txt"]
    assert row[2] > 0 and str(row[4]) == "2022"
    assert sum(r[2] for r in table.values()) == len(shared.retriever.generation.doc_ids)
    assert "6 篇文档" in shared.status()


def test_retrieval_test_shows_each_methods_score_and_rank_and_the_threshold(shared: ZhiwenApp) -> None:
    hybrid, verdict = shared.retrieval_test("新市民金融服务", "hybrid", 4)
    assert [r[0] for r in hybrid] == [1, 2, 3, 4]
    assert all(isinstance(r[3], int) or isinstance(r[5], int) for r in hybrid), "each hit has a method rank"
    assert f"拒答阈值 {shared.settings.refusal_threshold:g}" in verdict and "高于拒答阈值" in verdict
    bm25, _ = shared.retrieval_test("新市民金融服务", "bm25", 2)
    assert [r[3] for r in bm25] == [1, 2] and all(r[1] == r[2] for r in bm25)
    dense, _ = shared.retrieval_test("新市民金融服务", "dense", 2)
    assert [r[5] for r in dense] == [1, 2] and all(r[1] == r[4] for r in dense)
    assert all(r[6] in ("≥ 阈值", "< 阈值") for r in dense)
    assert shared.retrieval_test("  ", "hybrid", 3) == ([], "")


def test_prepare_ingests_the_corpus_when_there_is_no_index(tmp_path: Path) -> None:
    app = prepare(Settings(index_dir=tmp_path / "index", cache_dir=default_cache_dir()), CORPUS)
    assert "启动时还没有索引" in app.startup_note and "新增 5 篇" in app.startup_note
    assert len(app.doc_ids()) == 5
    with pytest.raises(FileNotFoundError, match="no index"):
        prepare(Settings(index_dir=tmp_path / "other"), tmp_path / "missing")


def test_launch_binds_the_configured_address_behind_auth(shared: ZhiwenApp) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo = launch(shared.settings.replace(port=port, auth="admin:s3cret"), corpus=None, block=False)
    base = f"http://127.0.0.1:{port}"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/config", timeout=10)
        assert refused.value.code == 401
        login = urllib.parse.urlencode({"username": "admin", "password": "s3cret"}).encode()
        assert json.load(urllib.request.urlopen(f"{base}/login", data=login, timeout=10)) == {"success": True}
    finally:
        demo.close()


def test_answer_html_links_only_known_citations() -> None:
    html = answer_html("甲<乙>[1]，见[7]。", 2, {1})
    assert html == '甲&lt;乙&gt;<a class="zw-cite" href="#zw-t2-c1">[1]</a>，见[7]。'
    assert escape("\"a\" & 'b'") == "&quot;a&quot; &amp; &#x27;b&#x27;"


def test_position_label_names_item_part_and_page() -> None:
    doc = Document("a.pdf", "A", "x" * 300, {"page_starts": [0, 100, 200]})
    meta = {
        "heading_path": ["一、总体情况"],
        "paragraph_index": 2,
        "item_label": "（二）",
        "item_index": 2,
        "item_count": 5,
        "part_index": 1,
        "part_count": 2,
    }
    label = position_label(meta, doc, 150, 180)
    assert label == "一、总体情况 · 第3段 · 第2/5项「（二）」 · 第1/2部分 · 第2页 · 字符 150–180"
    assert position_label({}, None, 0, 5) == "字符 0–5"


def test_reveal_prefixes_end_with_the_whole_answer() -> None:
    text = "第一句。第二句[1]\n第三句"
    prefixes = reveal_prefixes(text)
    assert prefixes == ["第一句。", "第一句。第二句[1]", "第一句。第二句[1]\n", text]


def test_parse_auth() -> None:
    assert parse_auth("") is None
    assert parse_auth("admin:s3:cret") == ("admin", "s3:cret")
    with pytest.raises(SettingsError, match="user:password"):
        parse_auth("admin")


def test_wrong_logins_lock_the_window_and_hosts_beyond_localhost_warn(shared: ZhiwenApp, capfd) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo = launch(shared.settings.replace(port=port, auth="admin:s3cret"), corpus=None, block=False)
    base = f"http://127.0.0.1:{port}"

    def login(password: str) -> bool:
        data = urllib.parse.urlencode({"username": "admin", "password": password}).encode()
        try:
            return json.load(urllib.request.urlopen(f"{base}/login", data=data, timeout=10))["success"]
        except urllib.error.HTTPError:
            return False

    try:
        assert not any(login(f"guess{i}") for i in range(5))
        assert not login("s3cret"), "after 5 wrong logins even the right one waits out the lockout"
    finally:
        demo.close()
    open_demo = launch(shared.settings.replace(port=port, host="0.0.0.0"), corpus=None, block=False)
    open_demo.close()
    assert "serving on 0.0.0.0 without --auth" in capfd.readouterr().err


def test_feedback_and_questions_are_bounded(shared: ZhiwenApp, tmp_path) -> None:
    from zhiwen.ui.app import append_rotating

    app = ZhiwenApp(shared.settings, shared.retriever)
    messages, _, conversation, note = run_chat(app, "问" * 100_000)[-1]
    assert (
        messages == [] and conversation["answers"] == [] and "问题太长" in note and "max_query_chars" in note
    )
    log = tmp_path / "feedback.jsonl"
    for _ in range(40):
        append_rotating(log, "x" * 1000 + "\n", max_bytes=10_000, keep=3)
    sizes = [p.stat().st_size for p in sorted(tmp_path.glob("feedback.jsonl*"))]
    assert len(sizes) == 3 and max(sizes) <= 10_000
