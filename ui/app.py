"""The chat window (``zhiwen serve``): ask, browse the knowledge base, test retrieval.

``ZhiwenApp`` holds the handlers as plain methods that take and return values, so they are tested
without a browser; ``build_blocks`` wires them to Gradio components and ``launch`` serves them.
Uploaded files are kept in ``<index_dir>/../uploads/`` (their file name is their document id) and
👍/👎 feedback is appended to ``<index_dir>/../feedback.jsonl``.
"""

from __future__ import annotations

import atexit
import hmac
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gradio as gr
from zhiwen.core.index import Generation, live_manifest
from zhiwen.core.settings import Settings, SettingsError
from zhiwen.core.types import Answer, FinalAnswer, TextDelta
from zhiwen.core.vocab import STRATEGIES
from zhiwen.ingest.load import SUPPORTED_SUFFIXES
from zhiwen.retriever import Retriever
from zhiwen.retriever.search import CANDIDATES

from .api import create_api
from .conversations import (
    Conversation,
    ConversationStore,
    add_turn,
    answer_from_dict,
    blank_conversation,
    feedback_values,
    history_label,
    new_conversation,
    renamed,
    turn_of_message,
)
from .export import md_escape, to_markdown, write_docx
from .kb import KnowledgeBase, open_knowledge_base, report_summary
from .keys import KeyStore, keys_path
from .mcp_server import build_mcp
from .render import (
    CLOSE_SIDEBAR_ON_PHONE,
    CSS,
    EMPTY_SOURCES,
    HEAD,
    MARK_LOADED,
    answer_html,
    conversation_sources,
    escape,
    position_label,
    sources_panel,
    status_html,
)
from .server import Served, serve

EXAMPLES = [
    "如何支持新市民金融？",
    "金融促进消费有哪些措施？",
    "如何防范化解金融风险？",
    "怎样提升金融服务实体经济质效？",
]
DOC_HEADERS = ["文档 ID", "标题", "段落数", "发布机构", "年份", "类型"]
HIT_HEADERS = [
    "排名",
    "排序得分",
    "BM25 分数",
    "BM25 名次",
    "向量相似度",
    "向量名次",
    "对比拒答阈值",
    "标题",
    "位置",
    "段落原文",
]
HIT_LEGEND = """**各列含义**
- **排序得分**：所选检索方式用来排序的分数：混合检索为 BM25 与向量两路的融合分数，仅 BM25 或仅向量时即该路分数。
- **BM25 分数**、**BM25 名次**：关键词匹配（jieba 分词）的得分，及这一段在 BM25 结果中的名次。
- **向量相似度**、**向量名次**：问题与段落的语义相似度（余弦，越接近 1 越相关），及在向量结果中的名次。
- **对比拒答阈值**：向量相似度与拒答阈值 {threshold:g} 相比；问题的最佳段落低于阈值时，回答会拒答。
- **—**：该方法的前 {depth} 名中没有这一段（不是 0 分）。"""
FILTER_LABELS = {"issuer": "发布机构", "year": "年份", "doc_type": "文档类型", "doc_id": "文档"}
STRATEGY_LABELS = {"hybrid": "混合（BM25 + 向量）", "bm25": "仅 BM25 关键词", "dense": "仅向量"}
FEEDBACK_ANSWER_CHARS = 20_000  # what one feedback line keeps of an answer
FEEDBACK_CITATIONS = 20
FEEDBACK_FILE_BYTES = 5 * 1024 * 1024  # feedback.jsonl is rotated past this (three files kept)
_FEEDBACK_LOCK = threading.Lock()
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
REVEAL_PAUSE = 0.03  # seconds between revealed pieces of an offline answer, so it streams like an LLM's
_REVEAL_BREAKS = "。！？；\n]"

Progress = Callable[[float, str], None]
TRACKED_PROGRESS = gr.Progress(track_tqdm=True)  # Gradio gives each call its own tracker via this default
Messages = list[dict[str, Any]]


def _no_progress(fraction: float, desc: str) -> None:
    """The progress callback used when nobody is watching."""


class ZhiwenApp:
    """The handlers of the chat window over one index (``settings.index_dir``) and its retriever.

    A conversation (see ``conversations.py``) travels through the handlers as a value: each handler
    takes it and returns the new one, and the chat window keeps it per browser session.
    """

    def __init__(self, settings: Settings, retriever: Retriever, startup_note: str = ""):
        self.settings = settings
        self.retriever = retriever
        self.startup_note = startup_note
        self.kb = KnowledgeBase(settings, retriever)
        self.use_llm = self.kb.llm_configured
        self.data_dir = Path(settings.index_dir).parent
        self.uploads_dir = self.kb.uploads_dir
        self.feedback_path = self.data_dir / "feedback.jsonl"
        self.store = ConversationStore(self.data_dir / "conversations")
        self._exports: Path | None = None
        self._metas: tuple[Path | None, dict[str, dict[str, Any]]] = (None, {})

    # --- chat -------------------------------------------------------------------------------------

    def chat(
        self,
        question: str,
        conversation: Conversation,
        filters: dict[str, Any] | None = None,
        user: str | None = None,
    ) -> Iterator[tuple[Messages, str, Conversation, str]]:
        """Answer ``question`` in ``conversation``: yields (chat messages, sources panel HTML,
        conversation, status line) as the answer streams; the last has the conversation with the new
        turn, saved for ``user``. ``filters`` limits the search (issuer, year, doc_type, doc_id)."""
        question = question.strip()
        conversation = conversation if conversation["id"] else new_conversation()
        shown = chat_messages(conversation)
        if not question:
            yield shown, self.sources_html(conversation), conversation, ""
            return
        limit = self.settings.max_query_chars
        if len(question) > limit:
            note = f"问题太长：{len(question)} 个字符，最多 {limit} 个（max_query_chars）。请缩短后再问。"
            yield shown, self.sources_html(conversation), conversation, status_html(note, error=True)
            return
        filters = {k: v for k, v in (filters or {}).items() if v not in (None, "", [])}
        pending = [*shown, {"role": "user", "content": escape(question)}]
        yield [*pending, {"role": "assistant", "content": "正在检索…"}], gr.skip(), conversation, ""
        answer, streamed = None, ""
        # The conversation so far (OpenAI-style turns): follow-ups ("第二项具体是什么？") are read against it.
        events = self.kb.answer_events(
            question, use_llm=self.use_llm, filters=filters or None, history=conversation["messages"]
        )
        for event in events:
            match event:
                case FinalAnswer(final):
                    answer = final
                case TextDelta(text):
                    streamed += text
                    yield (
                        [*pending, {"role": "assistant", "content": escape(streamed)}],
                        gr.skip(),
                        conversation,
                        "",
                    )
        if not streamed:
            for prefix in reveal_prefixes(answer.answer):
                yield (
                    [*pending, {"role": "assistant", "content": escape(prefix)}],
                    gr.skip(),
                    conversation,
                    "",
                )
                time.sleep(REVEAL_PAUSE)
        conversation = add_turn(conversation, question, answer, self.positions(answer), filters)
        conversation = self.store.save(user, conversation)  # with the ratings given meanwhile
        yield chat_messages(conversation), self.sources_html(conversation), conversation, ""

    def positions(self, answer: Answer) -> dict[int, str]:
        """Where each citation of ``answer`` sits in its document, for the reader and for export."""
        with self.retriever.pinned() as gen:
            metas = self._chunk_metas(gen)
            return {
                c.n: position_label(metas.get(c.chunk_id, {}), gen.document(c.doc_id), c.start, c.end)
                for c in answer.citations
            }

    def sources_html(self, conversation: Conversation, shown: int | None = None) -> str:
        """The sources panel of ``conversation``, answer ``shown`` (default: the latest) visible."""
        answers = [answer_from_dict(r["answer"]) for r in conversation["answers"]]
        if not answers:
            return EMPTY_SOURCES
        doc_ids = {c.doc_id for a in answers for c in a.citations} | {
            h.doc_id for a in answers for h in a.related
        }
        with self.retriever.pinned() as gen:
            documents = {d: gen.document(d) for d in doc_ids}
            metas = self._chunk_metas(gen)
        panels = [sources_panel(t, a, documents, metas) for t, a in enumerate(answers)]
        return conversation_sources(panels, len(panels) - 1 if shown is None else shown)

    def _chunk_metas(self, gen: Generation) -> dict[str, dict[str, Any]]:
        if self._metas[0] != gen.path:
            self._metas = (gen.path, {c.chunk_id: c.meta for c in gen.chunks()})
        return self._metas[1]

    def select(self, conversation: Conversation, message_index: int) -> tuple[str, int] | None:
        """The sources panel showing the answer at (or answering) chat message ``message_index``, and
        that answer's number; None when the message is not part of an answered turn."""
        turn = turn_of_message(conversation, message_index)
        return None if turn is None else (self.sources_html(conversation, turn), turn)

    def feedback(
        self, conversation: Conversation, message_index: int, liked: bool | str, user: str | None = None
    ) -> str:
        """Record a 👍/👎 on the answer at chat message ``message_index``: appended to feedback.jsonl with
        that answer's own question and citations, and kept with the saved conversation (``user``'s) so
        it shows again when the conversation is reopened. ``liked`` is True (👍), False (👎), or "" when
        the user takes a rating back. Returns a status line."""
        turn = turn_of_message(conversation, message_index)
        if turn is None or message_index % 2 == 0:
            return status_html("只能评价回答。", error=True)
        record = conversation["answers"][turn]
        answer = record["answer"]
        rating = {True: "up", False: "down", "": "withdrawn"}.get(liked, str(liked))[:16]
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "rating": rating,
            "conversation": conversation["id"],
            "question": record["question"][: self.settings.max_query_chars],
            "answer": answer["answer"][:FEEDBACK_ANSWER_CHARS],
            "mode": answer["mode"],
            "refused": answer["refused"],
            "citations": answer["citations"][:FEEDBACK_CITATIONS],
        }
        self.store.rate(user, conversation["id"], turn, rating if rating in ("up", "down") else None)
        append_rotating(self.feedback_path, json.dumps(entry, ensure_ascii=False) + "\n")
        note = {"up": "已记录反馈 👍，谢谢！", "down": "已记录反馈 👎，谢谢！", "withdrawn": "已撤销反馈。"}
        return status_html(note.get(rating, "已记录反馈，谢谢！"))

    # --- history and export -----------------------------------------------------------------------

    def history(self, user: str | None) -> list[tuple[str, str]]:
        """The user's saved conversations as (label, id), newest first, for the history list."""
        return [(history_label(c), c["id"]) for c in self.store.for_user(user)]

    def open_conversation(self, user: str | None, conversation_id: str | None) -> Conversation:
        """The user's saved conversation ``conversation_id`` (a new one when there is none)."""
        return (conversation_id and self.store.load(user, conversation_id)) or new_conversation()

    def rename_conversation(
        self, user: str | None, conversation: Conversation, title: str
    ) -> tuple[str, Conversation]:
        """Give ``conversation`` (saved for ``user``) the name ``title``; returns a status line and the
        renamed conversation (the same one, with an error line, when the name is not usable)."""
        if not conversation["answers"]:
            return status_html("这个对话还没有内容，提问后才能重命名。", error=True), conversation
        try:
            named = renamed(conversation, title)
        except ValueError as error:
            return status_html(str(error), error=True), conversation
        return status_html(f"✓ 已重命名为“{named['title']}”。"), self.store.save(user, named)

    def delete_conversation_prompt(self, conversation: Conversation) -> str | None:
        """The confirmation question for deleting ``conversation``, naming it; None when it was never saved."""
        if not conversation["answers"]:
            return None
        return f"确定要删除对话“{conversation['title']}”（{len(conversation['answers'])} 轮问答）吗？删除后无法恢复。"

    def delete_conversation(self, user: str | None, conversation: Conversation) -> str:
        """Remove ``conversation`` from ``user``'s history for good; returns a status line."""
        self.store.delete(user, conversation["id"])
        return status_html(f"✓ 已删除对话“{conversation['title']}”。")

    @property
    def exports_dir(self) -> Path:
        """A temporary folder for exported answers, made at the first export and removed when the
        process exits (the chat window serves the files from it until then)."""
        if self._exports is None:
            self._exports = Path(tempfile.mkdtemp(prefix="zhiwen-exports-"))
            atexit.register(shutil.rmtree, self._exports, ignore_errors=True)
        return self._exports

    def export(self, conversation: Conversation, shown: int, whole: bool) -> tuple[Path | None, Path | None]:
        """The Markdown and Word files of answer ``shown`` (or, with ``whole``, of the conversation);
        (None, None) when there is no answer yet."""
        records = conversation["answers"]
        if not records:
            return None, None
        if not whole:
            records = [records[shown if 0 <= shown < len(records) else -1]]
        title = f"知问问答记录：{conversation['title']}" if whole else f"知问回答：{records[0]['question']}"
        folder = self.exports_dir / conversation["id"]
        folder.mkdir(parents=True, exist_ok=True)
        stem = "知问-对话" if whole else "知问-回答"
        markdown = folder / f"{stem}.md"
        markdown.write_text(to_markdown(title, records), encoding="utf-8")
        return markdown, write_docx(folder / f"{stem}.docx", title, records)

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
        self.startup_note = ""
        unsupported = f"不支持的文件类型，仅支持 {' '.join(SUPPORTED_SUFFIXES)}"
        lines = [
            (f"✗ {r.name}：{unsupported if r.status == 'unsupported' else r.reason}", True)
            if r.status in ("failed", "unsupported")
            else (f"✓ {r.name}：{_OUTCOMES[r.status]}", False)
            for r in results
        ]
        if report is not None:
            lines.append((report_summary(report), False))
        return "".join(status_html(text, error) for text, error in lines)

    def delete_prompt(self, doc_id: str | None) -> str | None:
        """The confirmation question for deleting ``doc_id``, naming the document; None when nothing
        (or an unknown document) is selected."""
        with self.retriever.pinned() as gen:
            document = gen.document(doc_id) if doc_id else None
        if document is None:
            return None
        return f"确定要删除《{document.title}》（{doc_id}）吗？删除后可在“回收站”中恢复。"

    def delete(self, doc_id: str | None) -> str:
        """Move document ``doc_id`` to the trash (out of the index, restorable); returns a status line."""
        if not doc_id:
            return status_html("请先选择要删除的文档。", error=True)
        report = self.kb.delete(doc_id, to_trash=True)
        self.startup_note = ""
        if report.failed:
            return status_html(f"✗ {doc_id}：{report.failed[0][1]}", error=True)
        return status_html(f"✓ 已删除 {doc_id}（已移入回收站，可恢复）；{report_summary(report)}")

    def trash_choices(self) -> list[tuple[str, str]]:
        """The documents in the trash as (label, key), newest first."""
        return [
            (f"{e['title']}（{e['doc_id']}，删除于 {e['deleted'][:16].replace('T', ' ')} UTC）", e["key"])
            for e in self.kb.trashed()
        ]

    def restore(self, key: str | None) -> str:
        """Put the trashed document ``key`` back into the index; returns a status line."""
        if not key:
            return status_html("请先在回收站中选择要恢复的文档。", error=True)
        try:
            report = self.kb.restore(key)
        except FileNotFoundError:
            return status_html("回收站中没有这篇文档（可能已恢复）。", error=True)
        self.startup_note = ""
        return status_html(f"✓ 已恢复；{report_summary(report)}")

    def empty_trash_prompt(self) -> str | None:
        """The confirmation question for emptying the trash, saying how many documents go for good;
        None when the trash is empty."""
        count = len(self.kb.trashed())
        if not count:
            return None
        return f"确定要清空回收站吗？其中的 {count} 篇文档将被永久删除，无法恢复。"

    def empty_trash(self) -> str:
        """Remove every document in the trash for good; returns a status line."""
        count = self.kb.empty_trash()
        if not count:
            return status_html("回收站已经是空的。", error=True)
        return status_html(f"✓ 已清空回收站：永久删除 {count} 篇文档。")

    def rebuild(self, progress: Progress = _no_progress) -> str:
        """Re-split and re-embed every stored document (after changing the chunker or model settings)."""
        progress(0.1, "重建索引")
        report = self.kb.rebuild()
        progress(1.0, "完成")
        return status_html(f"✓ 已重建索引：{report_summary(report)}")

    def filter_choices(self) -> dict[str, list[Any]]:
        """The choices of each filter (issuer, year, doc_type, doc_id) from what the index holds."""
        return self.kb.filter_options()

    # --- retrieval test ---------------------------------------------------------------------------

    def retrieval_test(self, query: str, strategy: str, k: float) -> tuple[list[list[Any]], str]:
        """Ranked chunks for ``query`` with each method's score and rank, and a line on how the best
        dense relevance compares with the refusal threshold: for checking why a passage ranks where it
        does and why a question is refused."""
        if not query.strip():
            return [], ""
        threshold = self.settings.refusal_threshold
        with self.retriever.pinned() as gen:  # positions from the generation the hits came from
            found = self.retriever.candidates(query.strip(), "hybrid", max(CANDIDATES, 4 * int(k)))
            hits = self.retriever.rank(query.strip(), found, int(k), strategy)
            documents = {hit.doc_id: gen.document(hit.doc_id) for hit in hits}
            bm25_rank = method_ranks(gen, found.bm25)
            dense_rank = method_ranks(gen, found.dense)
        rows = []
        for hit in hits:
            dense = hit.scores.get("dense")
            rows.append(
                [
                    hit.rank,
                    round(hit.score, 4),
                    _score(hit.scores.get("bm25"), bm25_rank.get(hit.chunk_id)),
                    bm25_rank.get(hit.chunk_id, "—"),
                    _score(dense, dense_rank.get(hit.chunk_id)),
                    dense_rank.get(hit.chunk_id, "—"),
                    (
                        "—"
                        if dense_rank.get(hit.chunk_id) is None
                        else "≥ 阈值"
                        if dense >= threshold
                        else "< 阈值"
                    ),
                    hit.title,
                    position_label(hit.meta, documents[hit.doc_id], hit.start, hit.end),
                    hit.text,
                ]
            )
        best = max(found.dense.values(), default=0.0)
        verdict = (
            "高于拒答阈值：相关度规则不会拒答" if best >= threshold else "低于拒答阈值：按相关度规则会拒答"
        )
        summary = (
            f"最高向量相似度 {best:.4f}，拒答阈值 {threshold:g}（refusal_threshold）→ {verdict}"
            "（主题、主体与范围规则另行检查）。"
        )
        return rows, summary


def method_ranks(gen: Generation, scores: dict[int, float]) -> dict[str, int]:
    """Each chunk's rank (1 = best) by one method's scores, keyed by chunk id."""
    order = sorted(scores, key=lambda row: (-scores[row], row))
    return {gen.chunk(row).chunk_id: rank for rank, row in enumerate(order, 1)}


def _score(value: float | None, rank: int | None) -> float | str:
    return "—" if rank is None or value is None else round(value, 4)


def chat_messages(conversation: Conversation) -> Messages:
    """The chat window's messages for ``conversation``: questions escaped, answers with their ``[n]``
    markers linked to their own turn's sources."""
    messages: Messages = []
    for turn, record in enumerate(conversation["answers"]):
        answer = record["answer"]
        content = answer_html(answer["answer"], turn, {c["n"] for c in answer["citations"]})
        if answer["warnings"]:
            content += "\n" + "\n".join(f"⚠ {escape(w)}" for w in answer["warnings"])
        messages += [
            {"role": "user", "content": escape(record["question"])},
            {"role": "assistant", "content": content},
        ]
    return messages


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


# Gradio's Chinese translation lacks these; without them the buttons fall back to English.
GRADIO_MISSING_ZH = {
    "chatbot.copy_message": "复制消息",
    "chatbot.copied_message": "已复制",
    "common.complete": "完成",  # shown by a finished progress bar (upload, rebuild)
}
_FORCE_CHINESE = (
    b"<head><script>(() => { const l = ['zh-CN', 'zh'];"
    b" Object.defineProperty(navigator, 'language', { get: () => l[0] });"
    b" Object.defineProperty(navigator, 'languages', { get: () => l }); })();</script>"
)


class ChineseLocale:
    """Serve the chat window's page in Chinese whatever the browser's language: ``lang="zh-CN"``, and
    Gradio's own texts ("Drop File Here", toasts) in its Chinese translation.

    Gradio picks its interface language from ``navigator.language`` and writes ``lang="en"`` into the
    page; this rewrites only the page itself (``GET /``), before any of Gradio's scripts run.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != "/":
            await self.app(scope, receive, send)
            return
        start: dict = {}
        body = b""

        async def rewritten(message: dict) -> None:
            nonlocal body
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body += message.get("body", b"")
            if message.get("more_body"):
                return
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            if any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                body = body.replace(b'lang="en"', b'lang="zh-CN"', 1).replace(b"<head>", _FORCE_CHINESE, 1)
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewritten)


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


def _user(request: gr.Request | None) -> str | None:
    """The logged-in user of a request (None when the chat window has no login)."""
    return getattr(request, "username", None) if request is not None else None


def confirmation(elem_id: str, yes: str) -> tuple[gr.Group, gr.Markdown, gr.Button]:
    """A hidden confirmation box: the box, its question and the ``yes`` button; 取消 hides it (element
    ids ``elem_id``, ``elem_id``-text, -yes, -no)."""
    with gr.Group(visible=False, elem_id=elem_id, elem_classes="zw-confirm") as box:
        question = gr.Markdown(elem_id=f"{elem_id}-text")
        with gr.Row():
            confirm = gr.Button(yes, variant="stop", size="sm", elem_id=f"{elem_id}-yes")
            cancel = gr.Button("取消", size="sm", elem_id=f"{elem_id}-no")
    cancel.click(lambda: gr.Group(visible=False), outputs=box)
    return box, question, confirm


def asked(prompt: str | None, nothing: str) -> tuple[Any, Any, str]:
    """Show a confirmation box with ``prompt`` (shown as written: a title's ``*`` is no emphasis), or
    (when there is nothing to confirm) the ``nothing`` error line instead: the outputs (box, its
    question, status line)."""
    if prompt is None:
        return gr.Group(visible=False), gr.skip(), status_html(nothing, error=True)
    return gr.Group(visible=True), md_escape(prompt), ""


def build_blocks(app: ZhiwenApp) -> gr.Blocks:
    """The three tabs (问答, 知识库, 命中测试) and the history sidebar, wired to ``app``'s handlers."""
    with gr.Blocks(title="知问 Zhiwen", analytics_enabled=False) as demo:
        # Not gr.State(new_conversation): Gradio calls a callable default in a load event of its own,
        # which can finish after on_load and replace the reopened conversation with an empty one.
        conversation = gr.State(blank_conversation())
        shown = gr.State(-1)  # the answer whose sources are shown (and "当前回答" exports)
        with gr.Sidebar(label="历史对话", open=True, elem_id="zw-sidebar"):
            new_chat = gr.Button("＋ 新对话", variant="primary", elem_id="zw-new-chat")
            history = gr.Radio(choices=[], label="历史对话", elem_id="zw-history")
            conv_name = gr.Textbox(
                label="对话名称",
                placeholder="当前对话的新名称（回车即重命名）",
                show_label=False,
                container=False,
                max_lines=1,
                elem_id="zw-conv-name",
            )
            with gr.Row():
                rename_conv = gr.Button("重命名", size="sm", min_width=60, elem_id="zw-conv-rename")
                delete_conv = gr.Button(
                    "删除对话", size="sm", variant="stop", min_width=60, elem_id="zw-conv-delete"
                )
            conv_confirm, conv_prompt, conv_yes = confirmation("zw-conv-confirm", "确认删除")
            conv_status = gr.HTML(js_on_load=None, elem_id="zw-conv-status")
        gr.Markdown("## 知问 · 工作报告知识库问答")
        status = gr.HTML(app.status, js_on_load=None, elem_id="zw-status")
        with gr.Tab("问答"):
            with gr.Row():
                with gr.Column(scale=3, min_width=320):
                    chatbot = gr.Chatbot(
                        label="对话",
                        height=560,
                        render_markdown=False,
                        sanitize_html=True,
                        buttons=["copy", "copy_all"],  # English labels: translated in render.HEAD
                        feedback_options=("Like", "Dislike"),
                        elem_id="zw-chat",
                        placeholder="请输入问题，回答中的 [n] 可点击查看出处。",
                    )
                    with (
                        gr.Accordion(
                            "筛选范围（发布机构、年份、类型、文档）", open=False, elem_id="zw-filters"
                        ),
                        gr.Row(),
                    ):
                        filter_boxes = {
                            key: gr.Dropdown(
                                choices=[],
                                value=[],
                                multiselect=True,
                                label=label,
                                elem_id=f"zw-filter-{key}",
                                min_width=160,
                            )
                            for key, label in FILTER_LABELS.items()
                        }
                    with gr.Row():
                        question = gr.Textbox(
                            label="问题",
                            placeholder="例如：如何支持新市民金融？",
                            show_label=False,
                            scale=5,
                            elem_id="zw-question",
                        )
                        send = gr.Button("提问", variant="primary", scale=1, min_width=80, elem_id="zw-send")
                    gr.Examples(EXAMPLES, inputs=question, label="示例问题", elem_id="zw-examples")
                    chat_status = gr.HTML(js_on_load=None, elem_id="zw-chat-status")
                    with gr.Row(elem_id="zw-export"):
                        scope = gr.Radio(
                            [("当前回答", False), ("整个对话", True)],
                            value=False,
                            label="导出（编号引用，文末附出处原文）",
                            elem_id="zw-export-scope",
                            scale=2,
                        )
                        export_md = gr.DownloadButton(
                            "导出 Markdown", interactive=False, size="sm", elem_id="zw-export-md", scale=1
                        )
                        export_docx = gr.DownloadButton(
                            "导出 Word", interactive=False, size="sm", elem_id="zw-export-docx", scale=1
                        )
                with gr.Column(scale=2, min_width=300):
                    sources = gr.HTML(EMPTY_SOURCES, elem_id="zw-sources-box", js_on_load=None)

            filter_inputs = list(filter_boxes.values())

            def on_chat(
                text: str,
                current: Conversation,
                issuer: list[str],
                year: list[str],
                doc_type: list[str],
                doc_id: list[str],
                request: gr.Request,
            ) -> Iterator[tuple[Any, ...]]:
                filters = {"issuer": issuer, "year": year, "doc_type": doc_type, "doc_id": doc_id}
                for messages, panel, updated, note in app.chat(text, current, filters, _user(request)):
                    # The saved ratings go with the finished answer; mid-stream (no sources panel yet) the
                    # ones shown stay as they are.
                    done = isinstance(panel, str)
                    shown_chat = (
                        gr.Chatbot(messages, feedback_value=feedback_values(updated)) if done else messages
                    )
                    yield shown_chat, panel, updated, note, len(updated["answers"]) - 1

            def on_exports(current: Conversation, turn: int, whole: bool) -> tuple[Any, Any]:
                md, docx = app.export(current, turn, whole)
                return (
                    gr.DownloadButton(value=md, interactive=md is not None),
                    gr.DownloadButton(value=docx, interactive=docx is not None),
                )

            def on_history(current: Conversation, request: gr.Request) -> Any:
                saved = current["id"] if current["answers"] else None
                return gr.Radio(choices=app.history(_user(request)), value=saved)

            exports = {
                "fn": on_exports,
                "inputs": [conversation, shown, scope],
                "outputs": [export_md, export_docx],
            }
            listed = {"fn": on_history, "inputs": conversation, "outputs": history}
            ask_event = {
                "fn": on_chat,
                "inputs": [question, conversation, *filter_inputs],
                "outputs": [chatbot, sources, conversation, chat_status, shown],
                # A question sent while the last answer is still being finished waits for it.
                "trigger_mode": "always_last",
            }
            send.click(**ask_event, api_name="chat").then(**exports).then(**listed)
            question.submit(**ask_event).then(**exports).then(**listed)
            # The box is emptied as the question is sent (its value already taken), so what the user
            # types next while the answer streams is kept.
            for trigger in (send.click, question.submit):
                trigger(lambda: "", outputs=question, queue=False, show_progress="hidden")

            def show(current: Conversation) -> tuple[Any, ...]:
                return (
                    gr.Chatbot(chat_messages(current), feedback_value=feedback_values(current)),
                    app.sources_html(current),
                    current,
                    len(current["answers"]) - 1,
                    "",
                    gr.Group(visible=False),  # a pending "删除对话" confirmation was for another one
                    "",
                )

            opened = [chatbot, sources, conversation, shown, chat_status, conv_confirm, conv_status]

            def on_new() -> tuple[Any, ...]:
                return show(new_conversation())

            def on_open(conversation_id: str | None, request: gr.Request) -> tuple[Any, ...]:
                return show(app.open_conversation(_user(request), conversation_id))

            def on_load(request: gr.Request) -> tuple[Any, ...]:
                saved = app.history(_user(request))
                current = app.open_conversation(_user(request), saved[0][1] if saved else None)
                choices = app.filter_choices()
                boxes = [gr.Dropdown(choices=choices[key], value=[]) for key in FILTER_LABELS]
                radio = gr.Radio(choices=saved, value=current["id"] if current["answers"] else None)
                return (*show(current), radio, *boxes)

            # The chat box's own trash icon starts a new conversation too, so nothing of the cleared
            # one (its sources, its feedback target) lingers.
            for trigger in (new_chat.click, chatbot.clear):
                trigger(on_new, outputs=opened).then(**exports).then(**listed)
            history.input(on_open, inputs=history, outputs=opened).then(**exports)
            demo.load(on_load, outputs=[*opened, history, *filter_inputs]).then(**exports).then(
                None, js=MARK_LOADED
            )
            demo.load(None, js=CLOSE_SIDEBAR_ON_PHONE)
            scope.change(**exports)

            def on_select(current: Conversation, data: gr.SelectData) -> tuple[Any, Any]:
                picked = app.select(current, int(data.index))
                return (gr.skip(), gr.skip()) if picked is None else picked

            def on_rename(current: Conversation, title: str, request: gr.Request) -> tuple[Any, ...]:
                note, updated = app.rename_conversation(_user(request), current, title)
                return note, updated, "" if updated is not current else gr.skip()

            def on_delete_conversation(current: Conversation, request: gr.Request) -> tuple[Any, Any]:
                return gr.Group(visible=False), app.delete_conversation(_user(request), current)

            for trigger in (rename_conv.click, conv_name.submit):
                trigger(
                    on_rename,
                    inputs=[conversation, conv_name],
                    outputs=[conv_status, conversation, conv_name],
                ).then(**listed)
            delete_conv.click(
                lambda current: asked(
                    app.delete_conversation_prompt(current), "当前对话还没有保存，无需删除。"
                ),
                inputs=conversation,
                outputs=[conv_confirm, conv_prompt, conv_status],
            )
            conv_yes.click(
                on_delete_conversation, inputs=conversation, outputs=[conv_confirm, conv_status]
            ).then(lambda: show(new_conversation())[:5], outputs=opened[:5]).then(**exports).then(**listed)

            def on_like(current: Conversation, data: gr.LikeData, request: gr.Request) -> str:
                return app.feedback(current, int(data.index), data.liked, _user(request))

            # "multiple": a rating clicked while another is being saved is not dropped (Gradio's default).
            chatbot.like(
                on_like,
                inputs=conversation,
                outputs=chat_status,
                trigger_mode="multiple",
                show_progress="hidden",
            )
            chatbot.select(on_select, inputs=conversation, outputs=[sources, shown]).then(**exports)

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
                        label="上传文档（支持 .txt .md .docx .pdf，可多选；其他类型会被跳过并说明原因）",
                        file_count="multiple",
                        elem_id="zw-upload",
                    )
                    upload = gr.Button("上传并加入知识库", variant="primary", elem_id="zw-upload-btn")
                with gr.Column():
                    doc_choice = gr.Dropdown(
                        choices=app.doc_ids(), value=None, label="选择文档", elem_id="zw-doc-choice"
                    )
                    delete = gr.Button("删除所选文档", variant="stop", elem_id="zw-delete")
                    confirm, prompt, really = confirmation("zw-confirm", "确认删除")
                    trash = gr.Dropdown(
                        choices=[], value=None, label="回收站（已删除的文档）", elem_id="zw-trash"
                    )
                    with gr.Row():
                        restore = gr.Button("恢复所选文档", elem_id="zw-restore")
                        empty = gr.Button("清空回收站", variant="stop", elem_id="zw-empty-trash")
                    empty_confirm, empty_prompt, really_empty = confirmation("zw-empty-confirm", "永久删除")
                    rebuild = gr.Button("重建索引（重新切分与嵌入全部文档）")
            kb_status = gr.HTML(js_on_load=None, elem_id="zw-kb-status")

            def refreshed() -> tuple[Any, ...]:
                choices = app.filter_choices()
                return (
                    app.status(),
                    app.documents_table(),
                    gr.Dropdown(choices=app.doc_ids(), value=None),
                    gr.Dropdown(choices=app.trash_choices(), value=None),
                    *(gr.Dropdown(choices=choices[key]) for key in FILTER_LABELS),
                )

            def on_upload(paths: list[str] | None, progress: gr.Progress = TRACKED_PROGRESS) -> str:
                return app.upload(paths, lambda f, d: progress(f, desc=d))

            def on_rebuild(progress: gr.Progress = TRACKED_PROGRESS) -> str:
                return app.rebuild(lambda f, d: progress(f, desc=d))

            def on_confirm(doc_id: str | None) -> tuple[Any, str]:
                return gr.Group(visible=False), app.delete(doc_id)

            after = {
                "fn": refreshed,
                "outputs": [status, documents, doc_choice, trash, *filter_inputs],
            }
            upload.click(on_upload, inputs=files, outputs=kb_status).then(**after).then(
                lambda: None, outputs=files
            )
            delete.click(
                lambda doc_id: asked(app.delete_prompt(doc_id), "请先选择要删除的文档。"),
                inputs=doc_choice,
                outputs=[confirm, prompt, kb_status],
            )
            empty.click(
                lambda: asked(app.empty_trash_prompt(), "回收站是空的。"),
                outputs=[empty_confirm, empty_prompt, kb_status],
            )
            really_empty.click(
                lambda: (gr.Group(visible=False), app.empty_trash()), outputs=[empty_confirm, kb_status]
            ).then(**after)
            doc_choice.change(lambda: gr.Group(visible=False), outputs=confirm)
            really.click(on_confirm, inputs=doc_choice, outputs=[confirm, kb_status]).then(**after)
            restore.click(app.restore, inputs=trash, outputs=kb_status).then(**after)
            rebuild.click(on_rebuild, outputs=kb_status).then(**after)
            demo.load(lambda: gr.Dropdown(choices=app.trash_choices(), value=None), outputs=trash)

        with gr.Tab("命中测试"):
            with gr.Row():
                probe = gr.Textbox(label="测试问题", scale=4, elem_id="zw-probe")
                strategy = gr.Radio(
                    [(STRATEGY_LABELS[name], name) for name in STRATEGIES],
                    value=app.settings.strategy,
                    label="检索方式",
                )
                k = gr.Slider(1, 30, value=app.settings.top_k, step=1, label="返回条数 k")
            run = gr.Button("检索", variant="primary", elem_id="zw-probe-btn")
            gr.Markdown(
                HIT_LEGEND.format(threshold=app.settings.refusal_threshold, depth=CANDIDATES),
                elem_id="zw-hits-legend",
                elem_classes="zw-legend",
            )
            verdict = gr.Markdown(elem_id="zw-hits-verdict")
            hits = gr.Dataframe(
                headers=HIT_HEADERS,
                interactive=False,
                wrap=True,
                label="命中段落",
                column_widths=["5%", "7%", "7%", "6%", "7%", "6%", "7%", "12%", "15%", "28%"],
                elem_id="zw-hits",
            )
            run.click(app.retrieval_test, inputs=[probe, strategy, k], outputs=[hits, verdict])
            probe.submit(app.retrieval_test, inputs=[probe, strategy, k], outputs=[hits, verdict])
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
    api.add_middleware(ChineseLocale)
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
        i18n=gr.I18n(**{"zh-CN": GRADIO_MISSING_ZH}),
        theme=gr.themes.Default(
            font=["WenQuanYi Micro Hei", "Noto Sans CJK SC", "sans-serif"], font_mono=["monospace"]
        ),
    )
    return serve(api, settings.host, settings.port, "chat window and API", block, open_browser, started)
