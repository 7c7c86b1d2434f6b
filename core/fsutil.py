"""Files written atomically and hashed in blocks: what the index, the model cache and the GGUF set-up share.

A reader never sees a half-written file or folder: everything is written to a temporary sibling first and
moved into place with one ``os.replace``. Temporaries are hidden (``.NAME.tmp-PID-RANDOM``) so that a crash
leaves nothing a reader would mistake for the real thing, and ``stale_temporaries`` finds them afterwards.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BLOCK = 1 << 22


def temporary_sibling(target: Path) -> Path:
    """A fresh hidden name beside ``target`` for writing it: ``.NAME.tmp-PID-RANDOM``."""
    return target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def stale_temporaries(target: Path) -> list[Path]:
    """Temporaries of ``target`` left behind by writers that died (see ``temporary_sibling``)."""
    return sorted(target.parent.glob(f".{target.name}.tmp-*"))


def remove(path: Path) -> None:
    """Delete a file or a folder tree; nothing happens when it is already gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def fsync_path(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file below ``folder`` and the folder itself."""
    for path in folder.rglob("*"):
        if path.is_file():
            fsync_path(path)
    fsync_path(folder)


@contextmanager
def atomic_target(target: Path, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write ``target`` at (a file or a folder); move it into place on success.

    On an error the temporary is removed and ``target`` is untouched. ``durable`` flushes the written
    data and the rename to disk (the index does; caches need not). Replacing a non-empty folder fails
    with ``OSError``, which the caller handles (another writer got there first).
    """
    tmp = temporary_sibling(Path(target))
    try:
        yield tmp
        if durable:
            fsync_tree(tmp) if tmp.is_dir() else fsync_path(tmp)
        os.replace(tmp, target)
        if durable:
            fsync_path(Path(target).parent)
    finally:
        remove(tmp)


def atomic_write_text(target: Path, text: str, durable: bool = False) -> None:
    """Replace ``target``'s content with ``text`` (UTF-8) in one step."""
    with atomic_target(target, durable) as tmp:
        tmp.write_text(text, encoding="utf-8")


def file_blocks(path: Path) -> Iterator[bytes]:
    """The bytes of ``path`` in blocks of 4 MiB."""
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            yield block


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    for block in file_blocks(path):
        digest.update(block)
    return digest.hexdigest()
