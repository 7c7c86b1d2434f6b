"""HTML for the chat window: answers with clickable [n] markers, and the sources panel.

Every piece of document or user text goes through ``escape`` before it is placed in HTML, so a document
containing ``<script>`` or Markdown shows as text. The chat messages are rendered with Markdown off (the
Chatbot then shows sanitised HTML), so anonymisation marks ``*``/``**`` stay verbatim.
"""

from __future__ import annotations

import html
import re
from bisect import bisect_right
from collections.abc import Mapping
from typing import Any

from zhiwen.core.types import Answer, Document

CONTEXT_CHARS = 200
_MARKER = re.compile(r"\[(\d+)\]")


def escape(text: str) -> str:
    """``text`` made inert for HTML: ``& < > " '`` become entities."""
    return html.escape(text, quote=True)


def source_anchor(turn: int, n: int) -> str:
    """The element id of source ``n`` of conversation turn ``turn`` (what a ``[n]`` marker links to)."""
    return f"zw-t{turn}-c{n}"


def answer_html(text: str, turn: int, cited: set[int]) -> str:
    """The answer ``text`` escaped, with each marker ``[n]`` of a known citation turned into a link."""
    parts, pos = [], 0
    for match in _MARKER.finditer(text):
        n = int(match.group(1))
        if n not in cited:
            continue
        parts.append(escape(text[pos : match.start()]))
        parts.append(f'<a class="zw-cite" href="#{source_anchor(turn, n)}">[{n}]</a>')
        pos = match.end()
    parts.append(escape(text[pos:]))
    return "".join(parts)


def highlighted(text: str, start: int, end: int, context: int | None = CONTEXT_CHARS) -> str:
    """``text[start:end]`` in ``<mark>`` with ``context`` characters either side (all of it when None)."""
    lo = 0 if context is None else max(0, start - context)
    hi = len(text) if context is None else min(len(text), end + context)
    return (
        ("…" if lo > 0 else "")
        + escape(text[lo:start])
        + f"<mark>{escape(text[start:end])}</mark>"
        + escape(text[end:hi])
        + ("…" if hi < len(text) else "")
    )


def position_label(meta: Mapping[str, Any], document: Document | None, start: int, end: int) -> str:
    """Where a passage sits, for a reader: heading, paragraph, enumerated item, part, page, offsets."""
    parts = []
    if meta.get("heading_path"):
        parts.append(" › ".join(meta["heading_path"]))
    if meta.get("paragraph_index") is not None:
        parts.append(f"第{int(meta['paragraph_index']) + 1}段")
    if meta.get("item_label"):
        count = f"/{meta['item_count']}" if meta.get("item_count") else ""
        parts.append(f"第{meta.get('item_index', '?')}{count}项「{meta['item_label']}」")
    if meta.get("part_count", 1) > 1:
        parts.append(f"第{meta['part_index']}/{meta['part_count']}部分")
    page_starts = (document.meta if document else meta).get("page_starts")
    if page_starts:
        parts.append(f"第{bisect_right(page_starts, start)}页")
    parts.append(f"字符 {start}–{end}")
    return " · ".join(parts)


def source_card(
    anchor: str,
    label: str,
    title: str,
    doc_id: str,
    position: str,
    document: Document | None,
    span: tuple[int, int],
    passage: str,
) -> str:
    """One cited passage: title and position, the span marked in its surroundings, the whole document.

    When the document left the index, or changed so that ``span`` no longer holds ``passage``, the
    passage is shown as it was cited, with a note, rather than a wrong span of the new text.
    """
    start, end = span
    if document is None or document.text[start:end] != passage:
        note = "原文已更新" if document is not None else "原文已不在知识库中"
        body = (
            f'<div class="zw-snippet"><mark>{escape(passage)}</mark></div>'
            f'<div class="zw-pos">（{note}，以上为引用时的段落）</div>'
        )
    else:
        body = (
            f'<div class="zw-snippet">{highlighted(document.text, start, end)}</div>'
            f'<details class="zw-full"><summary>查看原文</summary>'
            f'<div class="zw-doc">{highlighted(document.text, start, end, None)}</div></details>'
        )
    return (
        f'<div class="zw-source" id="{escape(anchor)}">'
        f'<div class="zw-head"><span class="zw-n">{escape(label)}</span> <b>{escape(title)}</b></div>'
        f'<div class="zw-pos">{escape(position)} · {escape(doc_id)}</div>{body}</div>'
    )


def sources_panel(
    turn: int,
    answer: Answer,
    documents: Mapping[str, Document | None],
    metas: Mapping[str, Mapping[str, Any]],
) -> str:
    """The sources of one answer: its citations, or the "可能相关" passages when it was refused.

    ``documents`` maps doc_id to the document (None when it left the index), ``metas`` chunk_id to the
    chunk's metadata.
    """
    cards = []
    if answer.refused:
        heading = "可能相关（未能据此作答，仅供参考）" if answer.related else "没有找到相关段落"
        for hit in answer.related:
            doc = documents.get(hit.doc_id)
            position = position_label(hit.meta, doc, hit.start, hit.end)
            cards.append(
                source_card(
                    f"zw-t{turn}-r{hit.rank}",
                    "可能相关",
                    hit.title,
                    hit.doc_id,
                    position,
                    doc,
                    (hit.start, hit.end),
                    hit.text,
                )
            )
    else:
        heading = f"引用来源（{len(answer.citations)}）"
        for c in answer.citations:
            doc = documents.get(c.doc_id)
            position = position_label(metas.get(c.chunk_id, {}), doc, c.start, c.end)
            cards.append(
                source_card(
                    source_anchor(turn, c.n),
                    f"[{c.n}]",
                    c.title,
                    c.doc_id,
                    position,
                    doc,
                    (c.start, c.end),
                    c.text,
                )
            )
    return f'<div class="zw-sources"><h3>{escape(heading)}</h3>{"".join(cards)}</div>'


def conversation_sources(panels: list[str], shown: int) -> str:
    """The sources panel of a whole conversation: every answer's sources, only answer ``shown``'s
    visible, so a ``[n]`` in any answer, old or new, finds its passage (the page script switches)."""
    if not panels:
        return EMPTY_SOURCES
    return "".join(
        f'<div class="zw-turn" data-turn="{t}"{"" if t == shown else " hidden"}>{panel}</div>'
        for t, panel in enumerate(panels)
    )


EMPTY_SOURCES = '<div class="zw-status">回答的引用来源会显示在这里。</div>'


def status_html(text: str, error: bool = False) -> str:
    """A one-line status message, escaped; multi-line text keeps its line breaks."""
    kind = "zw-error" if error else "zw-status"
    return f'<div class="{kind}">{escape(text)}</div>'


CSS = """
.zw-sources h3 { margin: 0 0 .5em; font-size: 1.05em; }
.zw-source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: .6em .8em;
             margin-bottom: .7em; background: var(--background-fill-primary); scroll-margin-top: 1em; }
.zw-source.zw-flash { outline: 3px solid #f5b301; }
.zw-head { font-size: 1em; }
.zw-n { color: #1d4ed8; font-weight: 700; margin-right: .2em; }
.zw-pos { color: var(--body-text-color-subdued); font-size: .85em; margin: .2em 0 .4em; }
.zw-snippet, .zw-doc { white-space: pre-wrap; line-height: 1.7; font-size: .92em; }
.zw-doc { position: relative; max-height: 420px; overflow-y: auto; border-top: 1px dashed
          var(--border-color-primary); margin-top: .4em; padding-top: .4em; }
.zw-source mark { background: #fde68a; color: #1f2937; padding: 0 1px; }
.zw-full summary { cursor: pointer; color: #1d4ed8; font-size: .9em; margin-top: .3em; }
a.zw-cite { color: #1d4ed8; font-weight: 700; text-decoration: none; margin: 0 1px; }
.zw-status { color: var(--body-text-color-subdued); font-size: .9em; white-space: pre-wrap; }
.zw-error { color: #b91c1c; font-size: .9em; white-space: pre-wrap; }
#zw-sources-box { max-height: 78vh; overflow-y: auto !important; position: sticky; top: .5em; }
.dark .zw-n, .dark a.zw-cite, .dark .zw-full summary { color: #93c5fd; }
.dark .zw-error { color: #fca5a5; }
.dark .zw-source mark { background: #facc15; color: #111827; }
.zw-confirm { border: 2px solid #b91c1c; border-radius: 8px; padding: .6em; }
.zw-legend { font-size: .88em; }
@media (max-width: 640px) { #zw-sources-box { max-height: none; position: static; } }
"""

# Links inside chat messages are intercepted: a [n] marker shows its answer's sources (the panel holds
# every answer's, one visible) and scrolls to its passage (waiting briefly while the panel re-renders);
# opening "查看原文" scrolls the full text to the marked span; copying a message copies its plain text,
# not its HTML; Gradio's English-only button labels are translated.
HEAD = """
<script>
const PHONE_WIDTH = 768;
(() => {
  const plain = (s) => new DOMParser().parseFromString(s, "text/html").body.textContent;
  document.addEventListener("click", (e) => {
    const link = e.target.closest && e.target.closest("a.zw-cite");
    if (!link) return;
    e.preventDefault();
    e.stopPropagation();
    const id = link.getAttribute("href").slice(1);
    const turn = id.match(/^zw-t([0-9]+)-/);
    if (turn) {
      document.querySelectorAll("#zw-sources-box .zw-turn").forEach((el) => {
        el.hidden = el.dataset.turn !== turn[1];
      });
    }
    let tries = 0;
    const go = () => {
      const el = document.getElementById(id);
      if (!el) { if (tries++ < 30) setTimeout(go, 100); return; }
      el.scrollIntoView({ behavior: "smooth", block: "start" });
      el.classList.add("zw-flash");
      setTimeout(() => el.classList.remove("zw-flash"), 1600);
    };
    go();
  }, true);
  document.addEventListener("toggle", (e) => {
    const box = e.target.classList && e.target.classList.contains("zw-full") && e.target.open
      && e.target.querySelector(".zw-doc");
    const mark = box && box.querySelector("mark");
    if (mark) box.scrollTop = mark.offsetTop - box.clientHeight / 3;
  }, true);
  document.addEventListener("click", (e) => {  // on a phone, picking a conversation closes the sidebar
    const picked = e.target.closest && e.target.closest("#zw-new-chat, #zw-history label");
    if (picked && window.innerWidth < PHONE_WIDTH) {
      setTimeout(() => document.querySelector("#zw-sidebar.open .toggle-button")?.click(), 50);
    }
  }, true);
  // Gradio writes a few button labels in English whatever the language (they are not in its
  // translations): they are put into Chinese as they appear.
  const LABELS = { "Copy conversation": "复制整个对话", "Copied conversation": "已复制整个对话",
                   "Liked": "已赞", "Disliked": "已踩", "Feedback": "反馈", "Copy table data": "复制表格",
                   "Fullscreen": "全屏", "Exit fullscreen mode": "退出全屏", "Table actions": "表格操作",
                   "Toggle Sidebar": "展开或收起侧栏", "Click to upload or drop files": "点击上传或拖放文件",
                   "chatbot conversation": "对话", "Scroll down": "滚动到底部" };
  const TEXTS = { "processing |": "处理中 |" };  // the timer of a pending event
  const translate = (el) => {
    if (el.nodeType === Node.TEXT_NODE) {
      const text = el.data.trim();
      if (TEXTS[text]) el.data = TEXTS[text];
      return;
    }
    for (const name of ["aria-label", "title"]) {
      const text = el.getAttribute && el.getAttribute(name);
      if (text && LABELS[text]) el.setAttribute(name, LABELS[text]);
    }
  };
  const walk = (n) => {
    translate(n);
    if (n.querySelectorAll) n.querySelectorAll("[aria-label], [title]").forEach(translate);
    if (n.nodeType === Node.ELEMENT_NODE && n.textContent.includes("processing")) {
      const texts = document.createTreeWalker(n, NodeFilter.SHOW_TEXT);
      for (let t = texts.nextNode(); t; t = texts.nextNode()) translate(t);
    }
  };
  new MutationObserver((changes) => changes.forEach((c) => {
    if (c.type === "attributes" || c.type === "characterData") translate(c.target);
    c.addedNodes.forEach(walk);
  })).observe(document.documentElement, { subtree: true, childList: true, characterData: true,
                                           attributes: true, attributeFilter: ["aria-label", "title"] });
  const isHtml = (t) => /<a class="zw-cite"|&(amp|lt|gt|quot|#x27);/.test(t);
  if (navigator.clipboard && navigator.clipboard.writeText) {
    const write = navigator.clipboard.writeText.bind(navigator.clipboard);
    navigator.clipboard.writeText = (t) => write(isHtml(t) ? plain(t) : t);
  }
  document.addEventListener("copy", (e) => {
    const el = document.body.firstElementChild;  // where Gradio puts its fallback copy textarea
    if (el && el.tagName === "TEXTAREA" && isHtml(el.value)) {
      e.clipboardData.setData("text/plain", plain(el.value));
      e.preventDefault();
    }
  }, true);
})();
</script>
"""

# Run once the window has loaded: the history sidebar starts open, which on a phone would cover the chat.
CLOSE_SIDEBAR_ON_PHONE = """() => {
  if (window.innerWidth < PHONE_WIDTH) document.querySelector("#zw-sidebar.open .toggle-button")?.click();
}"""

# Run once the saved conversation is shown: marks the page as loaded (``<body data-zw-loaded>``), so a
# script or a test knows that a click now acts on that conversation.
MARK_LOADED = """() => { document.body.dataset.zwLoaded = "1"; }"""
