"""End to end in headless Chromium: the real server, the real index and model, clicks and uploads.

One server and one Chromium for the module. Every test runs twice, at desktop size (1440×1000) and at
phone size (390×844, touch): the module's one page per size is opened once, and pytest runs all the
tests in file order at one size, then at the other. The tests share the server's state (conversations,
feedback, uploads); each size's round leaves the knowledge base as it found it (the last steps delete
the uploads and empty the trash). The dark theme gets a page of its own. Screenshots go to a temporary
folder; ``scripts/screenshots.sh`` runs these tests with ``ZHIWEN_SCREENSHOTS_DIR=docs`` to refresh the
ones in docs/. Prints the measured answer latency (``-s``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from zhiwen.core.embed import Embedder
from zhiwen.core.settings import Settings, default_cache_dir
from zhiwen.ingest.pipeline import ingest_paths

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "corpus"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UNIQUE_FACT = "星河渔业互助基金由云杉县农商行于今年设立，首期规模为七千万元。"
INJECTION = (
    "注入测试\n珊瑚礁保护专项贷款说明<script>alert(1)</script><img src=x onerror=alert(2)>，额度**万元。\n"
)
DESKTOP = {"width": 1440, "height": 1000}
PHONE = {"width": 390, "height": 844}
VIEWS = {
    "desktop": {"viewport": DESKTOP},
    "phone": {"viewport": PHONE, "is_mobile": True, "has_touch": True},
}
# Latin words the window may show: names of formats, methods, settings and models, not UI English.
ALLOWED_LATIN = {
    "zhiwen", "markdown", "word", "docx", "txt", "md", "pdf", "bm25", "llm", "api", "id", "k", "utc",
    "refusal_threshold", "max_query_chars", "jieba", "s",  # s: seconds, in a progress timer
}  # fmt: skip
SERVE = (
    "import sys; from pathlib import Path; from zhiwen.core.settings import Settings; "
    "from zhiwen.ui.app import launch; launch(Settings.load(), corpus=Path(sys.argv[1]))"
)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$ZHIWEN_SCREENSHOTS_DIR`` (scripts/screenshots.sh sets docs/), else a temporary folder."""
    folder = os.environ.get("ZHIWEN_SCREENSHOTS_DIR")
    return Path(folder) if folder else tmp_path_factory.mktemp("screenshots")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[dict]:
    """``zhiwen serve`` as a user runs it, in a subprocess, over an index of corpus/ built beforehand."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    data = tmp_path_factory.mktemp("serve")
    settings = Settings(index_dir=data / "index", cache_dir=default_cache_dir())
    ingest_paths([CORPUS], settings, progress=False, embedder=embedder)
    port = free_port()
    env = {
        **os.environ,
        "ZHIWEN_INDEX_DIR": str(settings.index_dir),
        "ZHIWEN_CACHE_DIR": str(settings.cache_dir),
        "ZHIWEN_HOST": "127.0.0.1",
        "ZHIWEN_PORT": str(port),
        "ZHIWEN_AUTH": "",
        "ZHIWEN_CONFIG": "/dev/null",
    }
    log = (data / "serve.log").open("w")
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(CORPUS)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - started > 240:
                    pytest.fail(f"server did not start:\n{(data / 'serve.log').read_text()}")
                time.sleep(0.3)
        print(f"\ncold start with an existing index: {time.perf_counter() - started:.1f} s")
        yield {"url": url, "data": data}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def browser(server: dict) -> Iterator:
    """One headless Chromium for the module; the pages of both sizes and the dark theme open in it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, url: str, view: str, **context):
    """A page of the chat window at size ``view`` in a new context (dialogs are recorded and dismissed)."""
    page = browser.new_context(**VIEWS[view], **context).new_page()
    page.view = view
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    loaded(page)
    return page


def loaded(page) -> None:
    """Wait until the page has shown the conversation it reopens (clicks before that race with it)."""
    page.wait_for_selector("body[data-zw-loaded]", state="attached")


@pytest.fixture(scope="module", params=list(VIEWS))
def view(request: pytest.FixtureRequest) -> str:
    """The window size of this round of tests: "desktop" or "phone"."""
    return request.param


@pytest.fixture(scope="module")
def page(browser, server: dict, view: str) -> Iterator:
    page = open_page(browser, server["url"], view)
    yield page
    page.context.close()


def phone(page) -> bool:
    return page.view == "phone"


def height(page) -> int:
    return page.viewport_size["height"]


def snap(page, folder: Path, desktop: str | None = None, mobile: str | None = None) -> None:
    """Save a screenshot named ``desktop`` or ``mobile``, by the page's size (none when not named)."""
    name = mobile if phone(page) else desktop
    if name:
        page.screenshot(path=str(folder / name))


def fits(page) -> None:
    """Nothing sticks out sideways (a phone would have to scroll to reach it)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page is {width} px wide: it scrolls sideways"


def sidebar(page, open_: bool) -> None:
    """Open (or close) the history sidebar and wait until it is."""
    if page.locator("#zw-sidebar.open").count() != int(open_):
        page.click("#zw-sidebar .toggle-button")
    page.wait_for_selector("#zw-sidebar.open" if open_ else "#zw-sidebar:not(.open)")


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def last_answer(page) -> str:
    return page.locator("#zw-chat .message-content").last.inner_text()


def ask(page, question: str) -> tuple[float, float]:
    """Type and send ``question``; returns seconds to the first answer text and to the sources panel."""
    turns = page.locator("#zw-chat .message-content").count() // 2
    page.fill("#zw-question textarea", question)
    started = time.perf_counter()
    page.click("#zw-send")
    page.wait_for_function(
        """n => { const m = document.querySelectorAll('#zw-chat .message-content');
                  return m.length > 2 * n + 1 && !m[m.length - 1].innerText.includes('正在检索'); }""",
        arg=turns,
        timeout=60_000,
    )
    first = time.perf_counter() - started
    page.wait_for_selector(
        f"#zw-t{turns}-c1, #zw-sources-box .zw-turn[data-turn='{turns}'] h3:has-text('可能相关')",
        timeout=60_000,
    )
    return first, time.perf_counter() - started


def cleared(page) -> None:
    """Wait until the chat and the sources panel are both empty."""
    page.wait_for_function(
        """() => document.querySelectorAll('#zw-chat .message-content').length === 0
                 && document.querySelectorAll('#zw-sources-box .zw-source').length === 0""",
        timeout=10_000,
    )


def new_chat(page) -> None:
    """Start a new conversation from the sidebar (which, on a phone, closes again)."""
    sidebar(page, True)
    page.click("#zw-new-chat")
    if phone(page):
        page.wait_for_selector("#zw-sidebar:not(.open)")
    cleared(page)


def open_history(page, question: str) -> None:
    """Reopen the newest saved conversation that begins with ``question``, from the sidebar."""
    sidebar(page, True)
    page.locator("#zw-history label", has_text=question).first.click()
    if phone(page):
        page.wait_for_selector("#zw-sidebar:not(.open)")
    page.wait_for_function(
        """q => { const m = document.querySelector('#zw-chat .message-content');
                  return m && m.innerText.includes(q) && document.querySelector('#zw-t0-c1'); }""",
        arg=question,
    )


def pick(page, dropdown: str, option: str) -> None:
    """Choose ``option`` in the dropdown ``dropdown`` (an element id)."""
    page.click(f"{dropdown} input")
    page.locator(f"{dropdown} [role=option]", has_text=option).first.click()


def feedback_lines(server: dict, count: int) -> list[dict]:
    """The feedback entries once there are ``count`` of them (the click is saved asynchronously)."""
    path = server["data"] / "feedback.jsonl"
    deadline = time.time() + 10
    lines: list[str] = []
    while time.time() < deadline:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if len(lines) >= count:
            break
        time.sleep(0.2)
    return [json.loads(line) for line in lines]


def in_view(locator, height: int) -> bool:
    box = locator.bounding_box()
    return box is not None and 0 <= box["y"] < height


def contrast(page, selector: str) -> float:
    """The WCAG contrast ratio of the first ``selector`` element's text against its own background."""
    colours = page.evaluate(
        """s => { const st = getComputedStyle(document.querySelector(s));
                  return [st.color, st.backgroundColor]; }""",
        selector,
    )

    def luminance(css: str) -> float:
        channels = [int(v) / 255 for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(c) for c in colours), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_example_question_is_answered_with_clickable_citations(page, server: dict, screenshots: Path) -> None:
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert "首次启动" not in page.locator("#zw-status").inner_text(), "the index existed before this start"
    if phone(page):
        page.wait_for_selector("#zw-sidebar:not(.open)")  # the history starts closed on a phone
    new_chat(page)
    page.click("#zw-examples button.gallery-item:has-text('如何支持新市民金融？')")
    page.wait_for_function(
        "() => document.querySelector('#zw-question textarea').value === '如何支持新市民金融？'"
    )
    first, full = ask(page, "如何支持新市民金融？")
    print(f"\nexample question ({page.view}): first text {first:.2f} s, answer and sources {full:.2f} s")
    assert "[1]" in last_answer(page) and "新市民" in last_answer(page)
    source = page.locator("#zw-t0-c1")
    assert "新市民" in source.locator(".zw-snippet mark").inner_text()
    assert contrast(page, "#zw-t0-c1 mark") >= 7, "the cited span is readable (WCAG AAA)"
    fits(page)
    page.wait_for_selector("#zw-history label", state="attached")  # listed once answered
    page.wait_for_selector("#zw-export-md:not([disabled])")  # and ready to export
    page.evaluate("window.scrollTo(0, 0)")
    snap(page, screenshots, "screenshot-chat.png", "screenshot-mobile.png")

    page.locator("#zw-chat a.zw-cite", has_text="[1]").first.click()
    page.wait_for_timeout(700)
    assert in_view(source, height(page)), "clicking [1] scrolls its passage into view"
    source.locator("details.zw-full summary").click()
    page.wait_for_timeout(300)
    full_text = source.locator(".zw-doc")
    mark = full_text.locator("mark").bounding_box()
    shown = full_text.bounding_box()
    assert shown["y"] <= mark["y"] <= shown["y"] + shown["height"], (
        "the full text opens scrolled to the passage"
    )
    fits(page)
    snap(page, screenshots, "screenshot-sources.png")
    source.locator("details.zw-full summary").click()

    before = len(feedback_lines(server, 0))
    page.locator("#zw-chat button[aria-label='赞']").last.click()
    entry = feedback_lines(server, before + 1)[-1]
    assert entry["rating"] == "up" and entry["question"] == "如何支持新市民金融？" and entry["citations"]


def test_citations_in_older_answers_open_their_own_sources(page) -> None:
    new_chat(page)
    ask(page, "如何支持新市民金融？")
    ask(page, "金融促进消费有哪些措施？")
    assert page.locator("#zw-t0-c1").is_hidden() and page.locator("#zw-t1-c1").is_visible()
    page.locator("#zw-chat .message-content").nth(1).locator("a.zw-cite").first.click()
    page.wait_for_timeout(700)
    assert page.locator("#zw-t0-c1").is_visible() and page.locator("#zw-t1-c1").is_hidden()
    assert in_view(page.locator("#zw-t0-c1"), height(page))
    assert "新市民" in page.locator("#zw-t0-c1 mark").first.inner_text()
    page.locator("#zw-chat .message-content").nth(3).locator("a.zw-cite").last.click()
    page.wait_for_timeout(700)
    assert page.locator("#zw-t1-c1").is_visible() and page.locator("#zw-t0-c1").is_hidden()


def test_clearing_the_chat_clears_sources_and_feedback_goes_to_the_clicked_answer(page, server: dict) -> None:
    new_chat(page)
    ask(page, "如何支持新市民金融？")
    page.click("#zw-chat button[aria-label='清空对话']")
    cleared(page)  # the chat, and the cleared answer's sources too
    ask(page, "金融促进消费有哪些措施？")
    page.locator("#zw-chat .message-content").last.click()
    page.wait_for_timeout(500)
    assert page.locator("#zw-sources-box .zw-turn:not([hidden])").get_attribute("data-turn") == "0"
    assert "金融促进消费" in page.locator("#zw-t0-c1").inner_text()
    before = len(feedback_lines(server, 0))
    page.locator("#zw-chat button[aria-label='踩']").last.click()
    entry = feedback_lines(server, before + 1)[-1]
    assert entry["rating"] == "down" and entry["question"] == "金融促进消费有哪些措施？"
    assert all("新市民贷款" not in c["text"] for c in entry["citations"])


def test_history_survives_a_reload_and_reopens_with_its_feedback(page, server: dict) -> None:
    new_chat(page)
    ask(page, "如何防范化解金融风险？")
    ask(page, "怎样提升金融服务实体经济质效？")
    before = len(feedback_lines(server, 0))
    page.locator("#zw-chat button[aria-label='踩']").first.click()
    page.locator("#zw-chat button[aria-label='赞']").last.click()  # at once: neither is dropped
    assert sorted(e["rating"] for e in feedback_lines(server, before + 2)[before:]) == ["down", "up"]
    page.reload()
    loaded(page)
    page.wait_for_selector("#zw-t1-c1")  # the latest conversation reopens, its last answer's sources shown
    assert "如何防范化解金融风险？" in page.locator("#zw-chat .message-content").first.inner_text()
    page.wait_for_selector("#zw-chat button[aria-label='已踩']")
    rated = page.locator("#zw-chat button[aria-label='已踩'], #zw-chat button[aria-label='已赞']")
    assert [rated.nth(i).get_attribute("aria-label") for i in range(rated.count())] == ["已踩", "已赞"], (
        "each answer shows the rating it was given"
    )
    sidebar(page, True)
    listed = page.locator("#zw-history label")
    assert listed.count() >= 3 and "如何防范化解金融风险？" in listed.first.inner_text()
    new_chat(page)
    assert page.locator("#zw-chat button[aria-label='已赞']").count() == 0
    open_history(page, "金融促进消费有哪些措施？")
    assert "金融促进消费有哪些措施？" in page.locator("#zw-chat .message-content").first.inner_text()
    assert page.locator("#zw-chat button[aria-label='已踩']").count() == 1, "the 👎 given to it earlier"
    page.locator("#zw-chat button[aria-label='已踩']").click()  # takes the rating back
    page.wait_for_selector("#zw-chat-status :text('已撤销反馈')")
    open_history(page, "如何防范化解金融风险？")
    open_history(page, "金融促进消费有哪些措施？")
    assert page.locator("#zw-chat button[aria-label='已踩']").count() == 0


def test_conversations_are_renamed_and_deleted_after_confirmation(page) -> None:
    name = f"风险防范笔记（{page.view}）"
    new_chat(page)
    ask(page, "如何防范化解金融风险？")
    sidebar(page, True)
    page.fill("#zw-conv-name textarea, #zw-conv-name input", name)
    page.click("#zw-conv-rename")
    page.wait_for_selector(f"#zw-conv-status :text('已重命名为“{name}”')")
    page.wait_for_selector(f"#zw-history label:has-text('{name}')")
    fits(page)
    page.reload()
    loaded(page)
    page.wait_for_selector("#zw-t0-c1")
    sidebar(page, True)
    page.wait_for_selector(f"#zw-history label:has-text('{name}') input:checked")  # the name is saved
    assert name in page.locator("#zw-history label").first.inner_text(), "and listed first"
    page.click("#zw-conv-delete")
    page.wait_for_selector(f"#zw-conv-confirm-text :text('确定要删除对话“{name}”')")
    page.click("#zw-conv-confirm-no")
    page.wait_for_selector("#zw-conv-confirm", state="hidden")
    assert page.locator(f"#zw-history label:has-text('{name}')").count() == 1, "cancel keeps it"
    page.click("#zw-conv-delete")
    page.click("#zw-conv-confirm-yes")
    page.wait_for_selector(f"#zw-conv-status :text('已删除对话“{name}”')")
    page.wait_for_selector(f"#zw-history label:has-text('{name}')", state="detached")
    cleared(page)  # a new conversation takes the deleted one's place
    new_chat(page)  # nothing of a new conversation is saved: nothing to confirm
    sidebar(page, True)
    page.click("#zw-conv-delete")
    page.wait_for_selector("#zw-conv-status :text('当前对话还没有保存')")
    assert page.locator("#zw-conv-confirm").is_hidden()
    sidebar(page, not phone(page))


def test_export_downloads_markdown_and_word_with_numbered_sources(page, screenshots: Path) -> None:
    from docx import Document as WordDocument

    new_chat(page)
    ask(page, "如何支持新市民金融？")
    ask(page, "金融促进消费有哪些措施？")
    page.get_by_role("radio", name="整个对话").check()
    page.wait_for_timeout(800)
    fits(page)
    with page.expect_download() as md_download:
        page.click("#zw-export-md")
    markdown = Path(md_download.value.path()).read_text(encoding="utf-8")
    assert md_download.value.suggested_filename.endswith(".md")
    assert markdown.count("## 问：") == 2 and "## 引用来源" in markdown and "**[5]**" in markdown
    assert "\\*.\\*亿元" in markdown, "anonymisation marks are escaped so they show as written"
    with page.expect_download() as docx_download:
        page.click("#zw-export-docx")
    word = "\n".join(p.text for p in WordDocument(docx_download.value.path()).paragraphs)
    assert "引用来源" in word and "[1] 《银保监局-主题教育与金融促进消费工作》" in word and "*.*亿元" in word
    page.get_by_role("radio", name="当前回答").check()

    if not phone(page):
        from markdown_it import MarkdownIt

        shown = page.context.new_page()
        shown.set_content(
            "<body style='font-family: WenQuanYi Micro Hei, sans-serif; max-width: 860px; margin: 2em auto'>"
            + MarkdownIt().render(markdown)
            + "</body>"
        )
        shown.screenshot(path=str(screenshots / "screenshot-export.png"))
        shown.close()


def test_filters_limit_answers_to_the_chosen_document(page) -> None:
    new_chat(page)
    page.click("#zw-filters button, #zw-filters .label-wrap")
    pick(page, "#zw-filter-doc_id", "金融监管局党组2022年度工作总结")
    page.keyboard.press("Escape")
    fits(page)
    ask(page, "如何支持新市民金融？")
    cards = page.locator("#zw-sources-box .zw-turn:not([hidden]) .zw-pos")
    assert cards.count() > 0
    assert all(
        "金融监管局党组-2022年度工作总结.txt" in cards.nth(i).inner_text() for i in range(cards.count())
    )
    page.click("#zw-filter-doc_id input")
    page.keyboard.press("Backspace")  # removes the chosen document, so later questions search everything
    page.keyboard.press("Escape")
    page.wait_for_function(
        "() => !document.querySelector('#zw-filter-doc_id').innerText.includes('2022年度')"
    )
    page.click("#zw-filters button, #zw-filters .label-wrap")


def test_uploaded_document_is_found_and_injection_shows_as_text(
    page, tmp_path: Path, screenshots: Path
) -> None:
    fact = tmp_path / "星河基金.txt"
    fact.write_text(f"星河基金简报\n{UNIQUE_FACT}\n", encoding="utf-8")
    injection = tmp_path / "注入测试.txt"
    injection.write_text(INJECTION, encoding="utf-8")
    program = tmp_path / "程序.exe"
    program.write_bytes(b"MZ\x00\x01")
    tab(page, "知识库")
    assert "将文件拖放到此处" in page.locator("#zw-upload").inner_text()
    page.locator("#zw-upload input[type=file]").set_input_files([str(fact), str(injection), str(program)])
    page.wait_for_selector("#zw-upload :text('注入测试')")  # shown once uploaded, as stem and suffix
    page.click("#zw-upload-btn")
    page.wait_for_selector("#zw-kb-status :text('✓ 星河基金.txt：已添加')", timeout=120_000)
    page.wait_for_selector("#zw-docs :text('星河基金.txt')")
    report = page.locator("#zw-kb-status").inner_text()
    assert "✗ 程序.exe：不支持的文件类型" in report and "新增 2 篇" in report and "added" not in report
    assert page.locator(".toast-body").count() == 0, "a mixed batch raises no error toast"
    fits(page)
    snap(page, screenshots, "screenshot-knowledge-base.png")

    tab(page, "问答")
    new_chat(page)
    ask(page, "星河渔业互助基金的首期规模是多少？")
    assert "七千万元" in last_answer(page)
    ask(page, "珊瑚礁保护专项贷款的额度是多少？")
    assert "<script>alert(1)</script>" in last_answer(page)
    assert "<script>alert(1)</script>" in page.locator("#zw-sources-box").inner_text()
    assert page.locator("#zw-chat script, #zw-chat img[src='x'], #zw-sources-box script").count() == 0
    assert page.dialogs == []


def delete_document(page, doc_id: str, title: str) -> None:
    """Delete ``doc_id`` from the 知识库 tab, confirming the question that names it."""
    pick(page, "#zw-doc-choice", doc_id)
    page.click("#zw-delete")
    page.wait_for_selector(f"#zw-confirm-text :text('《{title}》（{doc_id}）')")
    page.click("#zw-confirm-yes")
    page.wait_for_selector(f"#zw-kb-status :text('✓ 已删除 {doc_id}')", timeout=60_000)
    page.wait_for_selector(f"#zw-docs :text('{doc_id}')", state="detached")


def test_delete_asks_naming_the_document_and_the_trash_restores_it(page, screenshots: Path) -> None:
    tab(page, "知识库")
    assert page.locator("#zw-doc-choice input").input_value() == "", "nothing is preselected for deletion"
    page.click("#zw-delete")
    page.wait_for_selector("#zw-kb-status :text('请先选择要删除的文档')")
    pick(page, "#zw-doc-choice", "星河基金.txt")
    page.click("#zw-delete")
    page.wait_for_selector("#zw-confirm-text :text('《星河基金简报》（星河基金.txt）')")
    fits(page)
    snap(page, screenshots, "screenshot-delete-confirm.png")
    page.click("#zw-confirm-no")
    page.wait_for_selector("#zw-confirm", state="hidden")
    assert page.locator("#zw-docs :text('星河基金.txt')").count() == 1, "cancel keeps the document"
    page.click("#zw-delete")
    page.click("#zw-confirm-yes")
    page.wait_for_selector("#zw-kb-status :text('✓ 已删除 星河基金.txt')", timeout=60_000)
    page.wait_for_selector("#zw-docs :text('星河基金.txt')", state="detached")
    pick(page, "#zw-trash", "星河基金简报（星河基金.txt")
    page.click("#zw-restore")
    page.wait_for_selector("#zw-kb-status :text('✓ 已恢复')", timeout=60_000)
    page.wait_for_selector("#zw-docs :text('星河基金.txt')")
    tab(page, "问答")


def test_retrieval_test_tab_explains_its_scores(page, screenshots: Path) -> None:
    tab(page, "命中测试")
    legend = page.locator("#zw-hits-legend").inner_text()
    threshold = f"拒答阈值 {Settings().refusal_threshold:g}"
    assert "排序得分" in legend and "BM25 名次" in legend and threshold in legend and "—" in legend
    page.fill("#zw-probe textarea", "珊瑚礁保护专项贷款")
    page.click("#zw-probe-btn")
    page.wait_for_selector("#zw-hits :text('注入测试')")
    assert "<script>alert(1)</script>" in page.locator("#zw-hits").inner_text()
    page.fill("#zw-probe textarea", "新市民金融服务")
    page.click("#zw-probe-btn")
    page.wait_for_selector("#zw-hits :text('新市民')")
    verdict = page.locator("#zw-hits-verdict").inner_text()
    assert "最高向量相似度" in verdict and threshold in verdict
    headers = page.locator("#zw-hits thead").inner_text()
    assert "向量名次" in headers and "对比拒答阈值" in headers and "融合" not in headers
    snap(page, screenshots, "screenshot-retrieval-test.png")
    tab(page, "问答")
    assert page.dialogs == []


def test_emptying_the_trash_says_how_many_documents_go_for_good(page) -> None:
    tab(page, "知识库")
    page.click("#zw-empty-trash")
    page.wait_for_selector("#zw-kb-status :text('回收站是空的')")
    assert page.locator("#zw-empty-confirm").is_hidden()
    delete_document(page, "星河基金.txt", "星河基金简报")
    delete_document(page, "注入测试.txt", "注入测试")
    page.click("#zw-empty-trash")
    page.wait_for_selector("#zw-empty-confirm-text :text('其中的 2 篇文档将被永久删除')")
    fits(page)
    page.click("#zw-empty-confirm-no")
    page.wait_for_selector("#zw-empty-confirm", state="hidden")
    page.click("#zw-trash input")
    assert page.locator("#zw-trash [role=option]").count() == 2, "cancel keeps them"
    page.keyboard.press("Escape")
    page.click("#zw-empty-trash")
    page.click("#zw-empty-confirm-yes")
    page.wait_for_selector("#zw-kb-status :text('✓ 已清空回收站：永久删除 2 篇文档')")
    page.click("#zw-trash input")
    assert page.locator("#zw-trash [role=option]").count() == 0
    page.keyboard.press("Escape")
    tab(page, "问答")


def test_no_english_is_left_in_the_window(page) -> None:
    """The window's own words (labels, buttons, tooltips, placeholders, messages) are Chinese; document
    text, conversation titles, file names and the names of formats, methods and models may be Latin.
    Screen-reader labels are not read (Gradio names some regions in English)."""
    new_chat(page)
    ask(page, "如何支持新市民金融？")
    page.locator("#zw-chat button[aria-label='赞']").last.click()
    page.wait_for_selector("#zw-chat button[aria-label='已赞']")
    page.click("#zw-filters button, #zw-filters .label-wrap")
    model = Settings().embed_model.lower()
    content = (
        "#zw-chat .message-content, #zw-sources-box, #zw-docs tbody, #zw-hits tbody, #zw-history, "
        "#zw-status, [role=listbox]"
    )
    found: dict[str, str] = {}
    for name in ("问答", "知识库", "命中测试"):
        tab(page, name)
        sidebar(page, True)
        texts = page.evaluate(
            """skip => {
              const out = [];
              const shown = (el) => el.checkVisibility ? el.checkVisibility() : el.offsetParent !== null;
              const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
              for (let n = walker.nextNode(); n; n = walker.nextNode()) {
                const el = n.parentElement;
                if (el && !el.closest(skip) && !el.closest("script, style") && shown(el)) out.push(n.data);
              }
              for (const el of document.querySelectorAll("[title], [placeholder]")) {
                if (el.closest(skip) || !shown(el)) continue;
                for (const a of ["title", "placeholder"]) {
                  if (el.getAttribute(a)) out.push(el.getAttribute(a));
                }
              }
              return out;
            }""",
            content,
        )
        for text in texts:
            for word in re.findall(r"[A-Za-z][A-Za-z0-9_]*", text):
                if word.lower() not in ALLOWED_LATIN and word.lower() not in model:
                    found.setdefault(word, f"{name}: {text.strip()[:80]}")
        sidebar(page, not phone(page))
    tab(page, "问答")
    page.click("#zw-filters button, #zw-filters .label-wrap")
    assert found == {}, f"English left in the window: {found}"


def test_highlighted_span_is_readable_in_the_dark_theme(
    browser, server: dict, view: str, screenshots: Path
) -> None:
    page = open_page(browser, server["url"], view, color_scheme="dark")
    try:
        assert page.evaluate("document.body.classList.contains('dark')")
        new_chat(page)
        ask(page, "如何支持新市民金融？")
        assert contrast(page, "#zw-t0-c1 mark") >= 7, "the cited span is readable (WCAG AAA)"
        assert contrast(page, "#zw-chat a.zw-cite") >= 3, "the [n] links stand out"
        fits(page)
        snap(page, screenshots, "screenshot-dark.png")
    finally:
        page.context.close()
