"""Ingest: load files, split them, embed the chunks and write a new index generation.

Incremental by content hash: unchanged documents keep their chunks (and their ids), changed ones are
re-split, new ones added, and with ``prune`` documents no longer present are removed. Embeddings come
from the content-keyed cache, so only new text is embedded. A file that cannot be loaded is reported
and skipped; what the index already holds for it is kept.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm
from zhiwen.core.embed import Embedder
from zhiwen.core.index import (
    SCHEMA_VERSION,
    TOKENIZER_VERSION,
    IndexStateError,
    index_signature,
    open_generation,
    read_manifest,
    stored_documents,
)
from zhiwen.core.settings import Settings
from zhiwen.core.types import Chunk, Document

from .load import LoadError, discover, load_document
from .outline import build_outline, place_chunk
from .split import split_document
from .store import write_generation, writer_lock


@dataclass
class IngestReport:
    """What one ingest did, by document id."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    documents: int = 0
    chunks: int = 0
    seconds: float = 0.0
    index_dir: Path | None = None
    rebuilt: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.rebuilt)

    def summary(self) -> str:
        return (
            f"added {len(self.added)}, updated {len(self.updated)}, unchanged {len(self.unchanged)}, "
            f"removed {len(self.removed)}, failed {len(self.failed)}; "
            f"index: {self.documents} documents, {self.chunks} chunks ({self.seconds:.1f} s)"
        )


def load_paths(
    paths: Sequence[Path], settings: Settings, progress: bool = True
) -> tuple[list[Document], list[tuple[str, str]]]:
    """Load every supported file under ``paths``; returns documents and (path, reason) failures."""
    documents, failed, _ = _load_all(paths, settings, progress)
    return documents, failed


def _load_all(
    paths: Sequence[Path], settings: Settings, progress: bool
) -> tuple[list[Document], list[tuple[str, str]], set[str]]:
    """``load_paths``, plus the ids of files that exist but could not be loaded (``--prune`` keeps them).

    Each file fails alone: whatever a loader raises for it becomes one line naming the file, and the
    rest of the batch goes on.
    """
    documents: list[Document] = []
    failed: list[tuple[str, str]] = []
    unreadable: set[str] = set()
    limits = (
        int(settings.max_file_mb * 1024 * 1024),
        int(settings.max_unpacked_mb * 1024 * 1024),
        settings.max_text_chars,
    )
    for path in paths:
        if not Path(path).exists():
            failed.append((str(path), "no such file or folder"))
    found, refused = discover([Path(p) for p in paths if Path(p).exists()])
    failed.extend((str(exc.path), exc.reason) for exc in refused)
    for path, doc_id in tqdm(found, desc="loading", unit="file", disable=not progress, file=sys.stderr):
        try:
            documents.append(load_document(path, doc_id, *limits))
        except LoadError as exc:
            failed.append((str(exc.path), exc.reason))
        except Exception as exc:  # noqa: BLE001 - one bad file must not abort the batch
            failed.append((str(path), f"cannot load ({type(exc).__name__}: {' '.join(str(exc).split())})"))
        else:
            continue
        if path.exists() or path.is_symlink():
            unreadable.add(doc_id)
    return documents, failed, unreadable


def ingest_paths(
    paths: Sequence[Path], settings: Settings, progress: bool = True, **options: Any
) -> IngestReport:
    """Ingest files and folders into ``settings.index_dir``; ``options`` (prune, rebuild, embedder) as for
    ``ingest_documents``. Files that cannot be loaded are reported in ``failed`` and skipped."""
    documents, failed, unreadable = _load_all(paths, settings, progress)
    report = ingest_documents(documents, settings, progress=progress, keep=unreadable, **options)
    report.failed = failed + report.failed
    return report


def ingest_documents(
    documents: Iterable[Document],
    settings: Settings,
    prune: bool = False,
    rebuild: bool = False,
    progress: bool = True,
    embedder: Embedder | None = None,
    keep: frozenset[str] | set[str] = frozenset(),
) -> IngestReport:
    """Bring the index in line with ``documents`` (already loaded), incrementally.

    ``prune`` removes stored documents not among ``documents``, except those named in ``keep``: files
    still present that could not be read this time stay in the index until they are really gone.
    """
    started = time.perf_counter()
    index_dir = Path(settings.index_dir)
    signature = index_signature(settings)
    report = IngestReport(index_dir=index_dir)
    incoming: dict[str, Document] = {}
    for doc in documents:
        if doc.doc_id in incoming:
            report.failed.append((doc.doc_id, "duplicate document id in this ingest; kept the first"))
            continue
        incoming[doc.doc_id] = doc

    with writer_lock(index_dir):
        old_docs, old_chunks = _previous(index_dir, signature, rebuild, report)
        kept: dict[str, Document] = {}
        chunks_by_doc: dict[str, list[Chunk]] = {}
        for doc_id, doc in old_docs.items():
            if doc_id in incoming:
                continue
            if prune and doc_id not in keep:
                report.removed.append(doc_id)
            else:
                kept[doc_id] = doc
        for doc_id, doc in incoming.items():
            old = old_docs.get(doc_id)
            if old is None:
                report.added.append(doc_id)
            elif old.content_hash == doc.content_hash:
                report.unchanged.append(doc_id)
            else:
                report.updated.append(doc_id)
            kept[doc_id] = doc
        for doc_id, doc in kept.items():
            if doc_id in old_chunks and old_docs[doc_id].content_hash == doc.content_hash:
                chunks_by_doc[doc_id] = old_chunks[doc_id]
        to_split = [doc for doc_id, doc in kept.items() if doc_id not in chunks_by_doc]
        for doc in tqdm(
            to_split, desc="splitting", unit="doc", disable=not progress or not to_split, file=sys.stderr
        ):
            chunks_by_doc[doc.doc_id] = split_document(
                doc, settings.chunker, settings.max_chunk_chars, settings.min_chunk_chars
            )

        ordered = [kept[d] for d in sorted(kept)]
        chunks = [c for d in ordered for c in chunks_by_doc[d.doc_id]]
        report.documents, report.chunks = len(ordered), len(chunks)
        if report.changed or read_manifest(index_dir) is None:
            _write(settings, signature, ordered, chunks, embedder or Embedder(settings), progress)
    report.seconds = time.perf_counter() - started
    return report


def remove_documents(
    doc_ids: Sequence[str], settings: Settings, embedder: Embedder | None = None
) -> IngestReport:
    """Remove documents from the index by id; unknown ids are reported as failed, the rest stays."""
    started = time.perf_counter()
    index_dir = Path(settings.index_dir)
    signature = index_signature(settings)
    report = IngestReport(index_dir=index_dir)
    with writer_lock(index_dir):
        docs, chunks = _previous(index_dir, signature, False, report)
        if report.rebuilt:
            raise IndexStateError(
                f"index at {index_dir} was built with other settings ({report.rebuilt}); "
                "run `zhiwen ingest --rebuild` first"
            )
        for doc_id in doc_ids:
            if doc_id in docs:
                del docs[doc_id]
                report.removed.append(doc_id)
            else:
                report.failed.append((doc_id, "not in the index"))
        ordered = [docs[d] for d in sorted(docs)]
        kept = [c for d in ordered for c in chunks[d.doc_id]]
        report.documents, report.chunks = len(ordered), len(kept)
        if report.removed:
            _write(settings, signature, ordered, kept, embedder or Embedder(settings), False)
    report.seconds = time.perf_counter() - started
    return report


def _write(
    settings: Settings,
    signature: dict[str, str],
    documents: list[Document],
    chunks: list[Chunk],
    embedder: Embedder,
    progress: bool,
) -> None:
    """Outline the documents, mark each chunk with its place in the outline, embed, write a generation."""
    outlines = {doc.doc_id: build_outline(doc.text) for doc in documents}
    texts = {doc.doc_id: doc.text for doc in documents}
    placed = [place_chunk(c, texts[c.doc_id], outlines[c.doc_id]) for c in chunks]
    vectors = embedder.encode_passages([c.indexed_text for c in placed], progress=progress)
    write_generation(
        settings.index_dir,
        documents,
        placed,
        vectors,
        signature,
        settings.dense_index,
        settings.ann_threshold,
        outlines,
        settings.keep_generations,
    )


def _previous(
    index_dir: Path, signature: dict[str, str], rebuild: bool, report: IngestReport
) -> tuple[dict[str, Document], dict[str, list[Chunk]]]:
    """Documents and chunks of the live generation; no chunks when everything must be re-split.

    ``rebuild`` reads only the stored texts (of the live generation, or the newest one whose store still
    reads), so it works whatever state the derived files are in.
    """
    if rebuild:
        documents, source = stored_documents(index_dir)
        report.rebuilt = "--rebuild" + (f" from the texts stored in {source.name}" if source else "")
        return {d.doc_id: d for d in documents}, {}
    manifest = read_manifest(index_dir)
    if manifest is None:
        return {}, {}
    expected = {**signature, "schema_version": SCHEMA_VERSION, "tokenizer_version": TOKENIZER_VERSION}
    mismatched = [k for k, v in expected.items() if manifest.get(k) != v]
    if mismatched:
        # Keep every stored document (its full text is in the index) but re-split and re-embed all of them.
        report.rebuilt = ", ".join(f"{k} {manifest.get(k)!r} -> {expected[k]!r}" for k in mismatched)
        return {d.doc_id: d for d in stored_documents(index_dir)[0]}, {}
    gen = open_generation(index_dir, signature)
    try:
        docs = {d.doc_id: d for d in gen.documents()}
        chunks: dict[str, list[Chunk]] = {d: [] for d in docs}
        for chunk in gen.chunks():
            chunks[chunk.doc_id].append(chunk)
    finally:
        gen.close()
    return docs, chunks
