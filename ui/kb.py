"""One knowledge base shared by every caller of a process: the chat window, the HTTP API and MCP.

``KnowledgeBase`` holds the process's one ``Retriever`` (one model, one open index generation) and does
what each front end needs: search, answer, list and read documents and passages, add and remove files.
Writes are serialised inside the process; each writes a complete new index generation and then switches
the retriever to it, so a search runs on the old generation or the new one, never on half an ingest.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zhiwen.core.fsutil import atomic_write_text
from zhiwen.core.index import live_manifest
from zhiwen.core.settings import Settings
from zhiwen.core.types import Answer, AnswerEvent, Chunk, Document, FinalAnswer
from zhiwen.ingest.load import SUPPORTED_SUFFIXES
from zhiwen.ingest.pipeline import IngestReport, ingest_documents, ingest_paths, remove_documents
from zhiwen.retriever import Retriever
from zhiwen.retriever.answer import ask

WARM_UP = "如何支持新市民金融？"


@dataclass(frozen=True)
class FileResult:
    """What happened to one uploaded file: ``added``, ``updated``, ``unchanged``, or ``unsupported`` and
    ``failed`` (with the reason); its document id is its file name."""

    name: str
    status: str
    reason: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "doc_id": self.name, "status": self.status, "reason": self.reason}


class KnowledgeBase:
    """The operations every front end shares, over ``settings.index_dir`` and one ``Retriever``.

    Uploaded files are kept in ``<index_dir>/../uploads/`` (the file name is the document id); a
    document deleted with ``to_trash`` is kept in ``<index_dir>/../trash/`` until it is restored.
    """

    def __init__(self, settings: Settings, retriever: Retriever):
        self.settings = settings
        self.retriever = retriever
        self.uploads_dir = Path(settings.index_dir).parent / "uploads"
        self.trash_dir = Path(settings.index_dir).parent / "trash"
        self.llm_configured = bool(settings.llm_base_url or settings.llm_gguf)
        self._writing = threading.Lock()

    # --- reading ----------------------------------------------------------------------------------

    def answer_events(
        self,
        question: str,
        use_llm: bool = False,
        filters: dict | None = None,
        history: Sequence[Mapping[str, str]] = (),
        k: int | None = None,
    ) -> Iterator[AnswerEvent]:
        """``ask`` in the chosen mode; an LLM that fails is reported and the answer given offline.

        ``history`` is the conversation before ``question`` as {role, content} messages: follow-ups are
        read against it.
        """
        if not use_llm:
            yield from ask(question, self.retriever, k=k, filters=filters, history=history)
            return
        try:
            yield from ask(question, self.retriever, k=k, use_llm=True, filters=filters, history=history)
        except Exception as exc:  # noqa: BLE001 - any LLM failure is reported with the offline answer
            offline = self.answer(question, filters=filters, history=history, k=k)
            warnings = (*offline.warnings, f"LLM 不可用，已改用离线摘录回答：{exc}")
            yield FinalAnswer(replace(offline, warnings=warnings))

    def answer(self, question: str, **options: Any) -> Answer:
        """The final answer of ``answer_events`` (options as there)."""
        *_, final = self.answer_events(question, **options)
        return final.answer

    def documents(self) -> list[dict[str, Any]]:
        """One entry per indexed document: doc_id, title, chunk count and metadata."""
        with self.retriever.pinned() as gen:
            counts = Counter(gen.doc_ids.tolist())
            return [
                {"doc_id": d.doc_id, "title": d.title, "chunks": counts[d.doc_id], "meta": d.meta}
                for d in gen.documents()
            ]

    def document(self, doc_id: str) -> tuple[Document, list[Chunk]] | None:
        """The document ``doc_id`` with its chunks in reading order, or None when it is not indexed."""
        with self.retriever.pinned() as gen:
            doc = gen.document(doc_id)
            if doc is None:
                return None
            rows = [int(r) for r in (gen.doc_ids == doc_id).nonzero()[0]]
            return doc, gen.chunks(rows)

    def passage(self, chunk_id: str) -> Chunk | None:
        with self.retriever.pinned() as gen:
            return gen.chunk_by_id(chunk_id)

    def filter_options(self) -> dict[str, list[Any]]:
        """What a search can be limited to, from what the index holds: issuers, years and document
        types (sorted), and documents as (title, doc_id) pairs."""
        with self.retriever.pinned() as gen:
            docs = gen.documents()
        values = {
            key: sorted({str(d.meta[key]) for d in docs if d.meta.get(key) not in (None, "")})
            for key in ("issuer", "year", "doc_type")
        }
        return {**values, "doc_id": sorted((d.title, d.doc_id) for d in docs)}

    def counts(self) -> tuple[int, int]:
        """How many documents and chunks the live index holds."""
        with self.retriever.pinned() as gen:
            return len(gen.doc_meta), int(gen.manifest["counts"]["chunks"])

    # --- writing ----------------------------------------------------------------------------------

    def staging_dir(self) -> Path:
        """A fresh folder to put files in before ``add_files`` (one per upload, so uploads never mix)."""
        folder = self.uploads_dir / f".incoming-{uuid.uuid4().hex[:12]}"
        folder.mkdir(parents=True)
        return folder

    def add_files(self, staged: Sequence[Path]) -> tuple[list[FileResult], IngestReport | None]:
        """Ingest files placed in a ``staging_dir`` folder; keep the good ones in the uploads folder.

        A file of an unsupported type, or one that cannot be read, is reported with the reason and not
        kept; the rest are added (or updated, when a document of that name exists). The staging folder
        is removed afterwards.
        """
        results: list[FileResult] = []
        supported = []
        for path in staged:
            if path.suffix.lower() in SUPPORTED_SUFFIXES:
                supported.append(path)
            else:
                reason = f"unsupported file type; Zhiwen reads {' '.join(SUPPORTED_SUFFIXES)}"
                results.append(FileResult(path.name, "unsupported", reason))
        report = None
        try:
            if supported:
                with self._writing:
                    report = ingest_paths(
                        supported, self.settings, progress=False, embedder=self.retriever.embedder
                    )
                    self.retriever.refresh()
                failed = {Path(path).name: reason for path, reason in report.failed}
                for path in supported:
                    if path.name in failed:
                        results.append(FileResult(path.name, "failed", failed[path.name]))
                    else:
                        path.replace(self.uploads_dir / path.name)
                        results.append(FileResult(path.name, _outcome(report, path.name)))
        finally:  # staged files never linger, whatever happened
            for folder in {p.parent for p in staged}:
                shutil.rmtree(folder, ignore_errors=True)
        return results, report

    def delete(self, doc_id: str, to_trash: bool = False) -> IngestReport:
        """Remove document ``doc_id`` from the index (and its uploaded file); ``failed`` says when unknown.

        With ``to_trash`` the document (its stored text and metadata) and its uploaded file are first
        kept in the trash folder, so ``restore`` can bring it back exactly as it was.
        """
        with self._writing:
            with self.retriever.pinned() as gen:
                document = gen.document(doc_id)
            if to_trash and document is not None:
                self._keep_in_trash(document)
            report = remove_documents([doc_id], self.settings, embedder=self.retriever.embedder)
            self.retriever.refresh()
        if not report.failed:
            (self.uploads_dir / doc_id).unlink(missing_ok=True)
        return report

    def _keep_in_trash(self, document: Document) -> None:
        folder = self.trash_dir / uuid.uuid4().hex
        folder.mkdir(parents=True)
        upload = self.uploads_dir / document.doc_id
        if upload.is_file():
            shutil.copyfile(upload, folder / "file")
        entry = {**asdict(document), "deleted": datetime.now(UTC).isoformat(timespec="seconds")}
        atomic_write_text(folder / "document.json", json.dumps(entry, ensure_ascii=False))

    def trashed(self) -> list[dict[str, Any]]:
        """Documents in the trash, newest first: doc_id, title and when each was deleted (``key`` names
        the trash entry for ``restore``)."""
        entries = []
        for path in self.trash_dir.glob("*/document.json") if self.trash_dir.is_dir() else []:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            entries.append({"key": path.parent.name, **{k: data[k] for k in ("doc_id", "title", "deleted")}})
        return sorted(entries, key=lambda e: e["deleted"], reverse=True)

    def restore(self, key: str) -> IngestReport:
        """Put the trashed document ``key`` back into the index (and its file back into uploads)."""
        folder = self.trash_dir / key
        if not key.isalnum() or not (folder / "document.json").is_file():
            raise FileNotFoundError(f"no document {key!r} in the trash")
        data = json.loads((folder / "document.json").read_text(encoding="utf-8"))
        document = Document(data["doc_id"], data["title"], data["text"], data.get("meta", {}))
        with self._writing:
            report = ingest_documents(
                [document], self.settings, progress=False, embedder=self.retriever.embedder
            )
            self.retriever.refresh()
        if (folder / "file").is_file():
            self.uploads_dir.mkdir(parents=True, exist_ok=True)
            (folder / "file").replace(self.uploads_dir / document.doc_id)
        shutil.rmtree(folder, ignore_errors=True)
        return report

    def empty_trash(self) -> int:
        """Remove every document in the trash for good; returns how many there were."""
        with self._writing:
            entries = self.trashed()
            for entry in entries:
                shutil.rmtree(self.trash_dir / entry["key"], ignore_errors=True)
        return len(entries)

    def rebuild(self) -> IngestReport:
        """Re-split and re-embed every stored document (after changing the chunker or model settings)."""
        with self._writing:
            report = ingest_documents(
                [], self.settings, rebuild=True, progress=True, embedder=self.retriever.embedder
            )
            self.retriever.refresh()
        return report


def report_summary(report: IngestReport) -> str:
    """What an ingest, delete or restore did, in Chinese, for the chat window."""
    return (
        f"新增 {len(report.added)} 篇，更新 {len(report.updated)} 篇，未变 {len(report.unchanged)} 篇，"
        f"移除 {len(report.removed)} 篇，失败 {len(report.failed)} 篇；"
        f"知识库现有 {report.documents} 篇文档、{report.chunks} 个段落（用时 {report.seconds:.1f} 秒）"
    )


def _outcome(report: IngestReport, doc_id: str) -> str:
    if doc_id in report.added:
        return "added"
    if doc_id in report.updated:
        return "updated"
    return "unchanged"


def open_knowledge_base(
    settings: Settings, corpus: Path | None = None, background: bool = False
) -> tuple[KnowledgeBase, str]:
    """Open the index (ingesting ``corpus`` first when there is none) and load the model now, not on the
    first question; with ``background``, on a thread, so a client's handshake need not wait for it (MCP
    over stdio). Returns the knowledge base and a note on what was ingested ("" when nothing was)."""
    note = ""
    if live_manifest(settings) is None:
        if corpus is None or not Path(corpus).is_dir():
            raise FileNotFoundError(
                f"no index at {settings.index_dir}"
                + (f" and no corpus folder {corpus}" if corpus is not None else "")
                + "; run `zhiwen ingest PATH` first"
            )
        print(f"no index at {settings.index_dir} yet: ingesting {corpus} …", file=sys.stderr)
        report = ingest_paths([Path(corpus)], settings, progress=True)
        for path, reason in report.failed:
            print(f"error: {path}: {reason}", file=sys.stderr)
        note = f"启动时还没有索引，已从 {corpus} 建立：{report_summary(report)}"
    retriever = Retriever(settings)
    if background:
        threading.Thread(
            target=retriever.search, args=(WARM_UP, 1), name="zhiwen-warm-up", daemon=True
        ).start()
    else:
        retriever.search(WARM_UP, k=1)
    return KnowledgeBase(settings, retriever), note
