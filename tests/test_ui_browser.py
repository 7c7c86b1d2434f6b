"""End to end in headless Chromium: the real server, the real index and model, clicks and uploads.

Screenshots go to a temporary folder; ``scripts/screenshots.sh`` runs these tests with
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
def page(server: dict) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.dialogs = []
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        page.goto(server["url"])
        page.wait_for_selector("#zw-question textarea")
        yield page
        browser.close()


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
        f"#zw-t{turns}-c1, #zw-sources-box .zw-sources h3:has-text('可能相关')", timeout=60_000
    )
    return first, time.perf_counter() - started


def test_example_question_is_answered_with_clickable_citations(page, server: dict, screenshots: Path) -> None:
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
    box = source.bounding_box()
    assert box is not None and 0 <= box["y"] < 1000, "clicking [1] scrolls its passage into view"
    source.locator("details.zw-full summary").click()
    page.wait_for_timeout(300)
    full_text = source.locator(".zw-doc")
    mark = full_text.locator("mark").bounding_box()
    view = full_text.bounding_box()
    assert view["y"] <= mark["y"] <= view["y"] + view["height"], "the full text opens scrolled to the passage"
    page.screenshot(path=str(screenshots / "screenshot-sources.png"))
    source.locator("details.zw-full summary").click()

    page.locator("#zw-chat button[aria-label='Like']").last.click()
    feedback = server["data"] / "feedback.jsonl"
    deadline = time.time() + 10
    while not feedback.exists() and time.time() < deadline:
        time.sleep(0.2)
    entry = json.loads(feedback.read_text(encoding="utf-8").splitlines()[-1])
    assert entry["rating"] == "up" and entry["question"] == "如何支持新市民金融？" and entry["citations"]


def test_uploaded_document_is_found_and_injection_shows_as_text(
    page, tmp_path: Path, screenshots: Path
) -> None:
    fact = tmp_path / "星河基金.txt"
    fact.write_text(f"星河基金简报\n{UNIQUE_FACT}\n", encoding="utf-8")
    injection = tmp_path / "注入测试.txt"
    injection.write_text(INJECTION, encoding="utf-8")
    page.get_by_role("tab", name="知识库").click()
    page.locator("#zw-upload input[type=file]").set_input_files([str(fact), str(injection)])
    page.wait_for_selector("#zw-upload :text('注入测试')")  # shown once uploaded, as stem and suffix
    page.click("#zw-upload-btn")
    page.wait_for_selector("#zw-kb-status :text('✓ 星河基金.txt：已添加')", timeout=120_000)
    page.wait_for_selector("#zw-docs :text('星河基金.txt')")
    page.screenshot(path=str(screenshots / "screenshot-knowledge-base.png"))

    page.get_by_role("tab", name="问答").click()
    ask(page, "星河渔业互助基金的首期规模是多少？")
    assert "七千万元" in last_answer(page)
    ask(page, "珊瑚礁保护专项贷款的额度是多少？")
    assert "<script>alert(1)</script>" in last_answer(page)
    assert "<script>alert(1)</script>" in page.locator("#zw-sources-box").inner_text()
    assert page.locator("#zw-chat script, #zw-chat img[src='x'], #zw-sources-box script").count() == 0
    assert page.dialogs == []


def test_retrieval_test_tab_shows_scores(page, screenshots: Path) -> None:
    page.get_by_role("tab", name="命中测试").click()
    page.fill("#zw-probe textarea", "珊瑚礁保护专项贷款")
    page.click("#zw-probe-btn")
    page.wait_for_selector("#zw-hits :text('注入测试')")
    assert "<script>alert(1)</script>" in page.locator("#zw-hits").inner_text()
    page.fill("#zw-probe textarea", "新市民金融服务")
    page.click("#zw-probe-btn")
    page.wait_for_selector("#zw-hits :text('新市民')")
    page.screenshot(path=str(screenshots / "screenshot-retrieval-test.png"))
    assert page.dialogs == []
