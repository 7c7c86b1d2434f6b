"""End to end in headless Chromium: the real server, the real index and model, clicks and uploads.

One server and one Chromium for the module: the tests share the server's state (its conversations,
feedback and uploads) and run in file order; the dark theme and the 390×844 phone view get pages of
their own. Screenshots go to a temporary folder; ``scripts/screenshots.sh`` runs these tests with
``ZHIWEN_SCREENSHOTS_DIR=docs`` to refresh the ones in docs/. Prints the measured answer latency (``-s``).
"""

from __future__ import annotations

import json
import os
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
    """One headless Chromium for the module; each test that needs another viewport or theme opens a
    context of its own in it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, url: str, **context):
    """A page of the chat window in a new context (dialogs are recorded and dismissed)."""
    page = browser.new_context(**{"viewport": DESKTOP, **context}).new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    page.wait_for_selector("#zw-question textarea")
    return page


@pytest.fixture(scope="module")
def page(browser, server: dict) -> Iterator:
    page = open_page(browser, server["url"])
    yield page
    page.context.close()


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
    page.click("#zw-new-chat")
    cleared(page)


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
    page.click("#zw-examples button.gallery-item:has-text('如何支持新市民金融？')")
    page.wait_for_function(
        "() => document.querySelector('#zw-question textarea').value === '如何支持新市民金融？'"
    )
    first, full = ask(page, "如何支持新市民金融？")
    print(f"\nexample question in the browser: first text {first:.2f} s, answer and sources {full:.2f} s")
    assert "[1]" in last_answer(page) and "新市民" in last_answer(page)
    source = page.locator("#zw-t0-c1")
    assert "新市民" in source.locator(".zw-snippet mark").inner_text()
    page.screenshot(path=str(screenshots / "screenshot-chat.png"))

    page.locator("#zw-chat a.zw-cite", has_text="[1]").first.click()
    page.wait_for_timeout(700)
    assert in_view(source, DESKTOP["height"]), "clicking [1] scrolls its passage into view"
    source.locator("details.zw-full summary").click()
    page.wait_for_timeout(300)
    full_text = source.locator(".zw-doc")
    mark = full_text.locator("mark").bounding_box()
    view = full_text.bounding_box()
    assert view["y"] <= mark["y"] <= view["y"] + view["height"], "the full text opens scrolled to the passage"
    page.screenshot(path=str(screenshots / "screenshot-sources.png"))
    source.locator("details.zw-full summary").click()

    page.locator("#zw-chat button[aria-label='赞']").last.click()
    entry = feedback_lines(server, 1)[-1]
    assert entry["rating"] == "up" and entry["question"] == "如何支持新市民金融？" and entry["citations"]


def test_citations_in_older_answers_open_their_own_sources(page) -> None:
    new_chat(page)
    ask(page, "如何支持新市民金融？")
    ask(page, "金融促进消费有哪些措施？")
    assert page.locator("#zw-t0-c1").is_hidden() and page.locator("#zw-t1-c1").is_visible()
    page.locator("#zw-chat .message-content").nth(1).locator("a.zw-cite").first.click()
    page.wait_for_timeout(700)
    assert page.locator("#zw-t0-c1").is_visible() and page.locator("#zw-t1-c1").is_hidden()
    assert in_view(page.locator("#zw-t0-c1"), DESKTOP["height"])
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


def test_history_survives_a_reload_and_reopens(page, server: dict) -> None:
    new_chat(page)
    ask(page, "如何防范化解金融风险？")
    page.reload()
    page.wait_for_selector("#zw-t0-c1")
    assert "如何防范化解金融风险？" in page.locator("#zw-chat .message-content").first.inner_text()
    listed = page.locator("#zw-history label")
    assert listed.count() >= 3 and "如何防范化解金融风险？" in listed.first.inner_text()
    new_chat(page)
    page.locator("#zw-history label", has_text="金融促进消费有哪些措施？").first.click()
    page.wait_for_selector("#zw-t0-c1")
    assert "金融促进消费有哪些措施？" in page.locator("#zw-chat .message-content").first.inner_text()


def test_export_downloads_markdown_and_word_with_numbered_sources(
    page, tmp_path: Path, screenshots: Path
) -> None:
    from docx import Document as WordDocument

    new_chat(page)
    ask(page, "如何支持新市民金融？")
    ask(page, "金融促进消费有哪些措施？")
    page.get_by_label("整个对话").check()
    page.wait_for_timeout(800)
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
    page.click("#zw-filter-doc_id input")
    page.locator("#zw-filter-doc_id [role=option]", has_text="金融监管局党组2022年度工作总结").click()
    page.keyboard.press("Escape")
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


def test_uploaded_document_is_found_and_injection_shows_as_text(
    page, tmp_path: Path, screenshots: Path
) -> None:
    fact = tmp_path / "星河基金.txt"
    fact.write_text(f"星河基金简报\n{UNIQUE_FACT}\n", encoding="utf-8")
    injection = tmp_path / "注入测试.txt"
    injection.write_text(INJECTION, encoding="utf-8")
    program = tmp_path / "程序.exe"
    program.write_bytes(b"MZ\x00\x01")
    page.get_by_role("tab", name="知识库").click()
    assert "将文件拖放到此处" in page.locator("#zw-upload").inner_text()
    page.locator("#zw-upload input[type=file]").set_input_files([str(fact), str(injection), str(program)])
    page.wait_for_selector("#zw-upload :text('注入测试')")  # shown once uploaded, as stem and suffix
    page.click("#zw-upload-btn")
    page.wait_for_selector("#zw-kb-status :text('✓ 星河基金.txt：已添加')", timeout=120_000)
    page.wait_for_selector("#zw-docs :text('星河基金.txt')")
    report = page.locator("#zw-kb-status").inner_text()
    assert "✗ 程序.exe：不支持的文件类型" in report and "新增 2 篇" in report and "added" not in report
    assert page.locator(".toast-body").count() == 0, "a mixed batch raises no error toast"
    page.screenshot(path=str(screenshots / "screenshot-knowledge-base.png"))

    page.get_by_role("tab", name="问答").click()
    new_chat(page)
    ask(page, "星河渔业互助基金的首期规模是多少？")
    assert "七千万元" in last_answer(page)
    ask(page, "珊瑚礁保护专项贷款的额度是多少？")
    assert "<script>alert(1)</script>" in last_answer(page)
    assert "<script>alert(1)</script>" in page.locator("#zw-sources-box").inner_text()
    assert page.locator("#zw-chat script, #zw-chat img[src='x'], #zw-sources-box script").count() == 0
    assert page.dialogs == []


def test_delete_asks_naming_the_document_and_the_trash_restores_it(page, screenshots: Path) -> None:
    page.get_by_role("tab", name="知识库").click()
    assert page.locator("#zw-doc-choice input").input_value() == "", "nothing is preselected for deletion"
    page.click("#zw-delete")
    page.wait_for_selector("#zw-kb-status :text('请先选择要删除的文档')")
    page.click("#zw-doc-choice input")
    page.locator("#zw-doc-choice [role=option]", has_text="星河基金.txt").click()
    page.click("#zw-delete")
    page.wait_for_selector("#zw-confirm-text :text('《星河基金简报》（星河基金.txt）')")
    page.screenshot(path=str(screenshots / "screenshot-delete-confirm.png"))
    page.click("#zw-confirm-no")
    page.wait_for_selector("#zw-confirm", state="hidden")
    assert page.locator("#zw-docs :text('星河基金.txt')").count() == 1, "cancel keeps the document"
    page.click("#zw-delete")
    page.click("#zw-confirm-yes")
    page.wait_for_selector("#zw-kb-status :text('✓ 已删除 星河基金.txt')", timeout=60_000)
    page.wait_for_selector("#zw-docs :text('星河基金.txt')", state="detached")
    page.click("#zw-trash input")
    page.locator("#zw-trash [role=option]", has_text="星河基金简报（星河基金.txt").click()
    page.click("#zw-restore")
    page.wait_for_selector("#zw-kb-status :text('✓ 已恢复')", timeout=60_000)
    page.wait_for_selector("#zw-docs :text('星河基金.txt')")
    page.get_by_role("tab", name="问答").click()


def test_retrieval_test_tab_explains_its_scores(page, screenshots: Path) -> None:
    page.get_by_role("tab", name="命中测试").click()
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
    page.screenshot(path=str(screenshots / "screenshot-retrieval-test.png"))
    page.get_by_role("tab", name="问答").click()
    assert page.dialogs == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_highlighted_span_is_readable_in_light_and_dark(
    browser, server: dict, scheme: str, screenshots: Path
) -> None:
    page = open_page(browser, server["url"], color_scheme=scheme)
    try:
        assert page.evaluate("document.body.classList.contains('dark')") == (scheme == "dark")
        new_chat(page)
        ask(page, "如何支持新市民金融？")
        assert contrast(page, "#zw-t0-c1 mark") >= 7, "the cited span is readable (WCAG AAA)"
        assert contrast(page, "#zw-chat a.zw-cite") >= 3, "the [n] links stand out"
        if scheme == "dark":
            page.screenshot(path=str(screenshots / "screenshot-dark.png"))
    finally:
        page.context.close()


def test_phone_sized_window_answers_and_shows_sources(browser, server: dict, screenshots: Path) -> None:
    page = open_page(browser, server["url"], viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page.wait_for_selector("#zw-sidebar:not(.open)")  # the history starts closed on a phone
        page.click("#zw-sidebar .toggle-button")
        page.wait_for_selector("#zw-sidebar.open")
        new_chat(page)
        page.wait_for_selector("#zw-sidebar:not(.open)")  # and closes once a conversation is picked
        ask(page, "如何支持新市民金融？")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], (
            "no sideways scrolling"
        )
        page.screenshot(path=str(screenshots / "screenshot-mobile.png"))
        page.locator("#zw-chat a.zw-cite").first.click()
        page.wait_for_timeout(800)
        assert in_view(page.locator("#zw-t0-c1"), PHONE["height"]), "[1] scrolls to its passage on a phone"
        assert page.locator("#zw-export-md").is_visible() and page.locator("#zw-new-chat").count() == 1
    finally:
        page.context.close()
