"""The chat window (``zhiwen serve``): ask, browse the knowledge base, test retrieval.

``ZhiwenApp`` holds the handlers as plain methods that take and return values, so they are tested
without a browser; ``build_blocks`` wires them to Gradio components and ``launch`` serves them.
Uploaded files are kept in ``<index_dir>/../uploads/`` (their file name is their document id) and
👍/👎 feedback is appended to ``<index_dir>/../feedback.jsonl``.
"""

from __future__ import annotations

import hmac
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gradio as gr
from zhiwen.core.index import Generation, live_manifest
from zhiwen.core.settings import Settings, SettingsError
from zhiwen.core.types import Answer, AnswerEvent, FinalAnswer, TextDelta
from zhiwen.core.vocab import STRATEGIES
from zhiwen.ingest.load import SUPPORTED_SUFFIXES
from zhiwen.retriever import Retriever

from .api import create_api
from .kb import KnowledgeBase, open_knowledge_base
from .keys import KeyStore, keys_path
from .mcp_server import build_mcp
from .render import CSS, HEAD, answer_html, escape, position_label, sources_panel, status_html
from .server import Served, serve

EXAMPLES = [
    "如何支持新市民金融？",
    "金融促进消费有哪些措施？",
    "如何防范化解金融风险？",
    "怎样提升金融服务实体经济质效？",
]
DOC_HEADERS = ["文档 ID", "标题", "段落数", "发布机构", "年份", "类型"]
HIT_HEADERS = ["排名", "得分", "BM25", "向量", "融合", "标题", "位置", "段落原文"]
FEEDBACK_ANSWER_CHARS = 20_000  # what one feedback line keeps of an answer
FEEDBACK_CITATIONS = 20
FEEDBACK_FILE_BYTES = 5 * 1024 * 1024  # feedback.jsonl is rotated past this (three files kept)
_FEEDBACK_LOCK = threading.Lock()
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
REVEAL_PAUSE = 0.03  # seconds between revealed pieces of an offline answer, so it streams like an LLM's
_REVEAL_BREAKS = "。！？；\n]"

Progress = Callable[[float, str], None]
TRACKED_PROGRESS = gr.Progress(track_tqdm=True)  # Gradio gives each call its own tracker via this default
History = list[dict[str, Any]]
Turns = list[dict[str, Any]]


def _no_progress(fraction: float, desc: str) -> None:
    """The progress callback used when nobody is watching."""


class ZhiwenApp:
    """The handlers of the chat window over one index (``settings.index_dir``) and its retriever."""

    def __init__(self, settings: Settings, retriever: Retriever, startup_note: str = ""):
        self.settings = settings
        self.retriever = retriever
        self.startup_note = startup_note
        self.kb = KnowledgeBase(settings, retriever)
        self.use_llm = self.kb.llm_configured
        self.data_dir = Path(settings.index_dir).parent
        self.uploads_dir = self.kb.uploads_dir
        self.feedback_path = self.data_dir / "feedback.jsonl"
        self._metas: tuple[Path | None, dict[str, dict[str, Any]]] = (None, {})

    # --- chat -------------------------------------------------------------------------------------

    def chat(self, question: str, history: History, turns: Turns) -> Iterator[tuple[History, str, Turns]]:
        """Answer ``question``: yields (chat history, sources panel HTML, turns) as the answer streams.

        ``turns`` keeps one record per answered question (question, Answer, index of its chat message,
        sources HTML) for feedback and for showing an older answer's sources.
        """
        question = question.strip()
        if not question:
            yield history, turns[-1]["sources"] if turns else "", turns
            return
        limit = self.settings.max_query_chars
        if len(question) > limit:
            note = f"问题太长：{len(question)} 个字符，最多 {limit} 个（max_query_chars）。请缩短后再问。"
            yield [*history, {"role": "assistant", "content": escape(note)}], "", turns
            return
        turn = len(turns)
        history = [
            *history,
            {"role": "user", "content": escape(question)},
            {"role": "assistant", "content": "正在检索…"},
        ]
        yield history, "", turns
        answer, streamed = None, ""
        for event in self._answer_stream(question):
            match event:
                case FinalAnswer(final):
                    answer = final
                case TextDelta(text):
                    streamed += text
                    history[-1] = {"role": "assistant", "content": escape(streamed)}
                    yield history, "", turns
        if not streamed:
            for prefix in reveal_prefixes(answer.answer):
                history[-1] = {"role": "assistant", "content": escape(prefix)}
                yield history, "", turns
                time.sleep(REVEAL_PAUSE)
        content = answer_html(answer.answer, turn, {c.n for c in answer.citations})
        if answer.warnings:
            content += "\n" + "\n".join(f"⚠ {escape(w)}" for w in answer.warnings)
        history[-1] = {"role": "assistant", "content": content}
        sources = self.sources(turn, answer)
        record = {
            "question": question,
            "answer": answer,
            "message_index": len(history) - 1,
            "sources": sources,
        }
        yield history, sources, [*turns, record]

    def _answer_stream(self, question: str) -> Iterator[AnswerEvent]:
        return self.kb.answer_events(question, use_llm=self.use_llm)

    def sources(self, turn: int, answer: Answer) -> str:
        """The sources panel HTML for ``answer`` given in conversation turn ``turn``."""
        doc_ids = {c.doc_id for c in answer.citations} | {h.doc_id for h in answer.related}
        with self.retriever.pinned() as gen:
            documents = {d: gen.document(d) for d in doc_ids}
            return sources_panel(turn, answer, documents, self._chunk_metas(gen))

    def _chunk_metas(self, gen: Generation) -> dict[str, dict[str, Any]]:
        if self._metas[0] != gen.path:
            self._metas = (gen.path, {c.chunk_id: c.meta for c in gen.chunks()})
        return self._metas[1]

    def select_sources(self, turns: Turns, message_index: int) -> str | None:
        """The sources HTML of the answer at chat message ``message_index`` (None when it is not one)."""
        for record in turns:
            if record["message_index"] in (message_index, message_index + 1):
                return record["sources"]
        return None

    def feedback(self, turns: Turns, message_index: int, liked: bool | str) -> str:
        """Append a 👍/👎 on the answer at ``message_index`` to feedback.jsonl; returns a status line."""
        record = next((r for r in turns if r["message_index"] == message_index), None)
        if record is None:
            return status_html("只能评价回答。", error=True)
        answer: Answer = record["answer"]
        rating = {True: "up", False: "down"}.get(liked, str(liked))
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "rating": rating[:16],
            "question": record["question"][: self.settings.max_query_chars],
            "answer": answer.answer[:FEEDBACK_ANSWER_CHARS],
            "mode": answer.mode,
            "refused": answer.refused,
            "citations": [c.to_dict() for c in answer.citations[:FEEDBACK_CITATIONS]],
        }
        append_rotating(self.feedback_path, json.dumps(entry, ensure_ascii=False) + "\n")
        return status_html("已记录反馈 👍，谢谢！" if rating == "up" else "已记录反馈 👎，谢谢！")

    # --- knowledge base ---------------------------------------------------------------------------

    def status(self) -> str:
        """The status line: what the index holds and how answers are made."""
        manifest = live_manifest(self.settings) or {}
        docs, chunks = self.kb.counts()
        mode = "LLM 生成（附引用）" if self.use_llm else "离线摘录（原文句子+引用）"
        model = manifest.get("embed_model", "?")
        line = f"知识库：{docs} 篇文档，{chunks} 个段落 · 回答方式：{mode} · 嵌入模型：{model}"
        return status_html(f"{line}\n{self.startup_note}" if self.startup_note else line)

    def documents_table(self) -> list[list[Any]]:
        """One row per indexed document: id, title, chunk count, issuer, year, type."""
        return [
            [
                d["doc_id"],
                d["title"],
                d["chunks"],
                d["meta"].get("issuer", ""),
                d["meta"].get("year", ""),
                d["meta"].get("doc_type", ""),
            ]
            for d in self.kb.documents()
        ]

    def doc_ids(self) -> list[str]:
        """The ids of the indexed documents, for the delete selector."""
        with self.retriever.pinned() as gen:
            return sorted(gen.doc_meta)

    def upload(self, files: Sequence[str] | None, progress: Progress = _no_progress) -> str:
        """Save uploaded files into the uploads folder and ingest them; returns the per-file report HTML.

        A file of an unsupported type, or one that cannot be read, is reported with the reason and not
        kept; the rest are added (or updated, when a document of that name exists).
        """
        if not files:
            return status_html("请先选择要上传的文件（.txt .md .docx .pdf）。", error=True)
        staging = self.kb.staging_dir()
        for i, file in enumerate(files):
            progress(i / (2 * len(files)), "保存文件")
            shutil.copyfile(file, staging / Path(file).name)
        progress(0.5, "解析、切分并嵌入")
        results, report = self.kb.add_files(sorted(staging.iterdir()))
        progress(1.0, "完成")
        unsupported = f"不支持的文件类型，仅支持 {' '.join(SUPPORTED_SUFFIXES)}"
        lines = [
            (f"✗ {r.name}：{unsupported if r.status == 'unsupported' else r.reason}", True)
            if r.status in ("failed", "unsupported")
            else (f"✓ {r.name}：{_OUTCOMES[r.status]}", False)
            for r in results
        ]
        if report is not None:
            lines.append((report.summary(), False))
        return "".join(status_html(text, error) for text, error in lines)

    def delete(self, doc_id: str | None) -> str:
        """Remove document ``doc_id`` from the index (and its uploaded file); returns a status line."""
        if not doc_id:
            return status_html("请先选择要删除的文档。", error=True)
        report = self.kb.delete(doc_id)
        if report.failed:
            return status_html(f"✗ {doc_id}：{report.failed[0][1]}", error=True)
        return status_html(f"✓ 已删除 {doc_id}；{report.summary()}")

    def rebuild(self, progress: Progress = _no_progress) -> str:
        """Re-split and re-embed every stored document (after changing the chunker or model settings)."""
        progress(0.1, "重建索引")
        report = self.kb.rebuild()
        progress(1.0, "完成")
        return status_html(f"✓ 已重建索引：{report.summary()}")

    # --- retrieval test ---------------------------------------------------------------------------

    def retrieval_test(self, query: str, strategy: str, k: float) -> list[list[Any]]:
        """Ranked chunks for ``query`` with every score, for checking why a passage ranks where it does."""
        if not query.strip():
            return []
        with self.retriever.pinned() as gen:  # positions from the generation the hits came from
            hits = self.retriever.search(query.strip(), k=int(k), strategy=strategy)
            documents = {hit.doc_id: gen.document(hit.doc_id) for hit in hits}
        rows = []
        for hit in hits:
            position = position_label(hit.meta, documents[hit.doc_id], hit.start, hit.end)
            scores = hit.scores
            rows.append(
                [
                    hit.rank,
                    round(hit.score, 4),
                    round(scores.get("bm25", 0.0), 4),
                    round(scores.get("dense", 0.0), 4),
                    round(scores.get("fused", 0.0), 4),
                    hit.title,
                    position,
                    hit.text,
                ]
            )
        return rows


_OUTCOMES = {"added": "已添加", "updated": "已更新", "unchanged": "内容未变化"}


def reveal_prefixes(text: str) -> list[str]:
    """Growing prefixes of ``text`` ending at sentence ends and citation markers, for a streamed look."""
    cuts = [i + 1 for i, ch in enumerate(text) if ch in _REVEAL_BREAKS]
    return [text[:cut] for cut in cuts if cut < len(text)] + [text]


def append_rotating(path: Path, line: str, max_bytes: int = FEEDBACK_FILE_BYTES, keep: int = 3) -> None:
    """Append ``line`` to ``path``; when that would pass ``max_bytes``, first shift ``path`` to
    ``path.1`` (``path.1`` to ``path.2`` …), so at most ``keep`` files of at most ``max_bytes`` remain."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _FEEDBACK_LOCK:
        if path.exists() and path.stat().st_size + len(line.encode()) > max_bytes:
            for n in range(keep - 2, 0, -1):
                older = path.with_name(f"{path.name}.{n}")
                if older.exists():
                    older.replace(path.with_name(f"{path.name}.{n + 1}"))
            path.replace(path.with_name(f"{path.name}.1"))
        with path.open("a", encoding="utf-8") as out:
            out.write(line)


class LoginGuard:
    """The chat window's login check, with a brake on guessing: after ``max_failures`` wrong logins
    within ``window`` seconds, every login (even a right one) is refused for ``lockout`` seconds.

    Gradio does not tell the check who is asking, so the brake is for the whole server: a guesser can
    lock the real user out for a minute, but cannot try more than a few passwords a minute.
    """

    def __init__(
        self, user: str, password: str, max_failures: int = 5, window: float = 60.0, lockout: float = 60.0
    ) -> None:
        self._user, self._password = user.encode(), password.encode()
        self.max_failures, self.window, self.lockout = max_failures, window, lockout
        self._failures: list[float] = []
        self._locked_until = 0.0
        self._lock = threading.Lock()

    def __call__(self, username: str, password: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now < self._locked_until:
                return False
            right = hmac.compare_digest(username.encode(), self._user) & hmac.compare_digest(
                password.encode(), self._password
            )
            if right:
                return True
            self._failures = [t for t in self._failures if now - t < self.window] + [now]
            if len(self._failures) >= self.max_failures:
                self._locked_until, self._failures = now + self.lockout, []
                print(
                    f"zhiwen: {self.max_failures} wrong logins within {self.window:g} s; "
                    f"logins refused for {self.lockout:g} s",
                    file=sys.stderr,
                )
            return False


def chat_concurrency() -> int:
    """How many chat-window requests run at once: 8 per core this process may use.

    An answer spends most of its time streaming (``REVEAL_PAUSE``) or waiting on an LLM, and searches
    are thread-safe (each holds its own generation), so several per core keep the cores busy; writes
    stay one at a time behind ``KnowledgeBase``'s lock.
    """
    return 8 * len(os.sched_getaffinity(0))


def parse_auth(auth: str) -> tuple[str, str] | None:
    """``"user:password"`` as a (user, password) pair; None when empty."""
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise SettingsError("auth must be 'user:password' (ZHIWEN_AUTH or auth in the config file)")
    return user, password


def build_blocks(app: ZhiwenApp) -> gr.Blocks:
    """The three tabs (问答, 知识库, 命中测试) wired to ``app``'s handlers."""
    with gr.Blocks(title="知问 Zhiwen", analytics_enabled=False) as demo:
        gr.Markdown("## 知问 · 工作报告知识库问答")
        status = gr.HTML(app.status, js_on_load=None)
        with gr.Tab("问答"):
            turns = gr.State([])
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="对话",
                        height=560,
                        render_markdown=False,
                        sanitize_html=True,
                        buttons=["copy", "copy_all"],
                        feedback_options=("Like", "Dislike"),
                        elem_id="zw-chat",
                        placeholder="请输入问题，回答中的 [n] 可点击查看出处。",
                    )
                    with gr.Row():
                        question = gr.Textbox(
                            placeholder="例如：如何支持新市民金融？",
                            show_label=False,
                            scale=5,
                            elem_id="zw-question",
                        )
                        send = gr.Button("提问", variant="primary", scale=1, elem_id="zw-send")
                    gr.Examples(EXAMPLES, inputs=question, label="示例问题", elem_id="zw-examples")
                    clear = gr.Button("清空对话", size="sm")
                    feedback_status = gr.HTML(js_on_load=None)
                with gr.Column(scale=2):
                    sources = gr.HTML(
                        '<div class="zw-status">回答的引用来源会显示在这里。</div>',
                        elem_id="zw-sources-box",
                        js_on_load=None,
                    )
            ask_event = {
                "fn": app.chat,
                "inputs": [question, chatbot, turns],
                "outputs": [chatbot, sources, turns],
            }
            send.click(**ask_event).then(lambda: "", outputs=question)
            question.submit(**ask_event).then(lambda: "", outputs=question)
            clear.click(lambda: ([], "", []), outputs=[chatbot, sources, turns])

            def on_like(records: Turns, data: gr.LikeData) -> str:
                return app.feedback(records, int(data.index), data.liked)

            def on_select(records: Turns, data: gr.SelectData) -> str:
                return gr.skip() if (html := app.select_sources(records, int(data.index))) is None else html

            chatbot.like(on_like, inputs=turns, outputs=feedback_status)
            chatbot.select(on_select, inputs=turns, outputs=sources)

        with gr.Tab("知识库"):
            documents = gr.Dataframe(
                app.documents_table,
                headers=DOC_HEADERS,
                interactive=False,
                wrap=True,
                label="已收录文档",
                elem_id="zw-docs",
            )
            with gr.Row():
                with gr.Column():
                    files = gr.File(
                        label="上传文档（.txt .md .docx .pdf，可多选）",
                        file_count="multiple",
                        file_types=list(SUPPORTED_SUFFIXES),
                        elem_id="zw-upload",
                    )
                    upload = gr.Button("上传并加入知识库", variant="primary", elem_id="zw-upload-btn")
                with gr.Column():
                    doc_choice = gr.Dropdown(choices=app.doc_ids(), label="选择文档", elem_id="zw-doc-choice")
                    delete = gr.Button("删除所选文档", variant="stop")
                    rebuild = gr.Button("重建索引（重新切分与嵌入全部文档）")
            kb_status = gr.HTML(js_on_load=None, elem_id="zw-kb-status")

            def refreshed() -> tuple[str, list[list[Any]], Any]:
                return app.status(), app.documents_table(), gr.Dropdown(choices=app.doc_ids(), value=None)

            def on_upload(paths: list[str] | None, progress: gr.Progress = TRACKED_PROGRESS) -> str:
                return app.upload(paths, lambda f, d: progress(f, desc=d))

            def on_rebuild(progress: gr.Progress = TRACKED_PROGRESS) -> str:
                return app.rebuild(lambda f, d: progress(f, desc=d))

            after = {"fn": refreshed, "outputs": [status, documents, doc_choice]}
            upload.click(on_upload, inputs=files, outputs=kb_status).then(**after).then(
                lambda: None, outputs=files
            )
            delete.click(app.delete, inputs=doc_choice, outputs=kb_status).then(**after)
            rebuild.click(on_rebuild, outputs=kb_status).then(**after)

        with gr.Tab("命中测试"):
            with gr.Row():
                probe = gr.Textbox(label="测试问题", scale=4, elem_id="zw-probe")
                strategy = gr.Radio(list(STRATEGIES), value=app.settings.strategy, label="检索方式")
                k = gr.Slider(1, 30, value=app.settings.top_k, step=1, label="返回条数 k")
            run = gr.Button("检索", variant="primary", elem_id="zw-probe-btn")
            hits = gr.Dataframe(
                headers=HIT_HEADERS,
                interactive=False,
                wrap=True,
                label="命中段落",
                column_widths=["5%", "7%", "7%", "7%", "7%", "14%", "18%", "35%"],
                elem_id="zw-hits",
            )
            run.click(app.retrieval_test, inputs=[probe, strategy, k], outputs=hits)
            probe.submit(app.retrieval_test, inputs=[probe, strategy, k], outputs=hits)
    return demo


def prepare(settings: Settings, corpus: Path | None = Path("corpus")) -> ZhiwenApp:
    """Open the index (ingesting ``corpus`` first when there is none) and warm up the model."""
    kb, note = open_knowledge_base(settings, corpus)
    return ZhiwenApp(settings, kb.retriever, startup_note=note)


def launch(
    settings: Settings,
    corpus: Path | None = Path("corpus"),
    open_browser: bool = False,
    block: bool = True,
) -> Served:
    """Serve the chat window and the HTTP API on ``settings.host:settings.port``, in one process.

    The chat window is password-protected when ``settings.auth`` is set; the API has its own keys (see
    ``api.py``). With no index yet, ``corpus`` is ingested first. ``block=False`` returns once the server
    runs (tests); ``close()`` stops it.
    """
    started = time.perf_counter()
    auth = parse_auth(settings.auth)
    if auth is None and settings.host not in LOCAL_HOSTS:
        print(
            f"zhiwen: warning: serving on {settings.host} without --auth: anyone who reaches port "
            f"{settings.port} can call every endpoint of the chat window, including delete and rebuild. "
            "That is acceptable only on 127.0.0.1; set --auth-file FILE or ZHIWEN_AUTH",
            file=sys.stderr,
        )
    app = prepare(settings, corpus)
    api = create_api(
        app.kb, KeyStore(keys_path(settings)), login_required=auth is not None, mcp=build_mcp(app.kb)
    )
    demo = build_blocks(app)
    demo.queue(default_concurrency_limit=chat_concurrency())
    gr.mount_gradio_app(
        api,
        demo,
        path="/",
        server_name=settings.host,
        server_port=settings.port,
        auth=LoginGuard(*auth) if auth else None,
        max_file_size=f"{settings.max_file_mb:g}mb",
        footer_links=[],
        css=CSS,
        head=HEAD,
        theme=gr.themes.Default(
            font=["WenQuanYi Micro Hei", "Noto Sans CJK SC", "sans-serif"], font_mono=["monospace"]
        ),
    )
    return serve(api, settings.host, settings.port, "chat window and API", block, open_browser, started)
