"""Find files and load them as documents: plain text and Markdown, Word (.docx) and PDF.

Text files may be UTF-8 (with or without a BOM), UTF-16 with a BOM, or GB18030/GBK. Newlines are
normalised to ``\\n`` and the normalised text is what the document stores, so chunk offsets refer to
it. A file that cannot be used raises ``LoadError`` naming the file and the reason, in one line.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
import unicodedata
import zipfile
from pathlib import Path
from typing import Any

from zhiwen.core.types import Document
from zhiwen.core.vocab import ISSUER_NAME_ENDINGS, YEAR

SUPPORTED_SUFFIXES = (".txt", ".md", ".docx", ".pdf")
DEFAULT_MAX_UNPACKED = 200 * 1024 * 1024  # bytes a .docx may inflate to (settings.max_unpacked_mb)
DEFAULT_MAX_CHARS = 5_000_000  # characters of text one document may hold (settings.max_text_chars)
MAX_CONTROL_SHARE = 0.01  # more control characters than this (besides tabs, newlines) means binary

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_ISSUER_NAME = f"(?:{'|'.join(ISSUER_NAME_ENDINGS)})"
_ISSUER_PREFIX = re.compile(r"[\u4e00-\u9fff*]{0,12}?" + _ISSUER_NAME)  # the stem's 机构- prefix, whole
_ISSUER_IN_TEXT = re.compile(r"(?:[\u4e00-\u9fff]{1,6}?[省市区县])?" + _ISSUER_NAME)
DOC_TYPES = (
    "工作总结",
    "汇报发言",
    "政府工作报告",
    "工作报告",
    "推进情况",
    "工作要点",
    "实施方案",
    "工作方案",
    "讲话",
    "通知",
    "意见",
    "办法",
    "总结",
    "汇报",
    "报告",
)


class LoadError(Exception):
    """A file that cannot be loaded: ``str()`` is ``"{path}: {reason}"`` on one line."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = path
        self.reason = " ".join(reason.split())
        super().__init__(f"{path}: {self.reason}")


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def discover(paths: list[Path]) -> tuple[list[tuple[Path, str]], list[LoadError]]:
    """Files under ``paths`` with their document ids, in a stable order, and the files refused on sight.

    A folder is searched recursively (hidden files and folders skipped) and its files get their path
    relative to it (posix style) as id; a file given directly gets its file name. Files of unsupported
    types are listed too, so the caller can report them when ``load_document`` refuses them. A symbolic
    link in a folder that leads outside it is refused, not followed: ingesting a folder should never pull
    in (and serve to every user) a file from elsewhere on the machine. Given directly, such a file loads.
    """
    found: list[tuple[Path, str]] = []
    refused: list[LoadError] = []
    for path in paths:
        if path.is_dir():
            root = path.resolve()
            for file in sorted(path.rglob("*")):
                relative = file.relative_to(path)
                # A symlink that leads nowhere (broken, or a loop) is listed too, so loading names it.
                usable = file.is_file() or (file.is_symlink() and not file.exists())
                if not usable or _hidden(relative):
                    continue
                target = file.resolve() if file.exists() else None
                if target is not None and not target.is_relative_to(root):
                    refused.append(
                        LoadError(
                            file,
                            f"is a link to {target}, outside the folder {path}; skipped "
                            "(copy the file in, or ingest it directly)",
                        )
                    )
                else:
                    found.append((file, relative.as_posix()))
        elif path.is_file():
            found.append((path, path.name))
        else:
            raise LoadError(path, "no such file or folder")
    return found, refused


def _size(n: int) -> str:
    """A byte count for people: ``812 bytes``, ``17.6 KB``, ``50.0 MB``."""
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def _looks_binary(text: str) -> bool:
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f\v")
    return "\x00" in text or controls > MAX_CONTROL_SHARE * len(text)


def decode_text(path: Path, data: bytes) -> str:
    """Bytes of a text file as a string: BOM-marked UTF-8/16/32, else strict UTF-8, else GB18030."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding).lstrip("\ufeff")
            except UnicodeDecodeError as exc:
                raise LoadError(
                    path, f"starts with a {encoding} byte-order mark but is not {encoding} ({exc.reason})"
                )
            break
    else:
        if b"\x00" in data:
            return _utf16_without_bom(path, data)
        for encoding in ("utf-8", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise LoadError(path, "cannot decode the text as UTF-8, UTF-16 or GB18030; save it as UTF-8")
    if _looks_binary(text):
        raise LoadError(path, "binary file (control characters), not text")
    return text


def _utf16_without_bom(path: Path, data: bytes) -> str:
    """Text with NUL bytes is UTF-16 without a byte-order mark when its NULs sit on one side of each
    byte pair (the high byte of ASCII characters: newlines, digits, punctuation), else binary."""
    even, odd = data[0::2].count(0), data[1::2].count(0)
    if len(data) % 2 == 0 and max(even, odd) > 3 * min(even, odd):
        try:
            text = data.decode("utf-16-be" if even > odd else "utf-16-le")
        except UnicodeDecodeError:
            pass
        else:
            if not _looks_binary(text):
                return text
    raise LoadError(path, "binary file (contains NUL bytes), not text")


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _check_unpacked(path: Path, data: bytes, max_unpacked: int) -> None:
    """Refuse a .docx whose parts inflate past ``max_unpacked`` bytes before anything is decompressed.

    ``zipfile`` never reads past a member's declared size, so the declared sizes bound what parsing
    can allocate: a small file whose text node inflates to gigabytes is refused here, not in memory.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError) as exc:
        raise LoadError(path, f"not a valid .docx file (corrupt, or an old .doc?): {exc}") from None
    if unpacked > max_unpacked:
        raise LoadError(
            path, f"unpacks to {_size(unpacked)}, over the {_size(max_unpacked)} limit (max_unpacked_mb)"
        )


def _docx_text(path: Path, data: bytes, max_unpacked: int = DEFAULT_MAX_UNPACKED) -> str:
    """Paragraphs and table rows (cells joined by `` | ``) of a Word file, in document order."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph
    from lxml.etree import LxmlError

    _check_unpacked(path, data, max_unpacked)
    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, LxmlError) as exc:
        raise LoadError(path, f"not a valid .docx file (corrupt, or an old .doc?): {exc}") from None
    lines: list[str] = []
    for element in document.element.body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            lines.append(Paragraph(element, document).text)
        elif tag == "tbl":
            for row in Table(element, document).rows:
                cells: list[str] = []
                for cell in row.cells:
                    value = " ".join(cell.text.split())
                    if not cells or cells[-1] != value:  # a merged cell is repeated once per grid column
                        cells.append(value)
                lines.append(" | ".join(cells))
    return "\n".join(lines)


def _pdf_text(path: Path, data: bytes, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[str, list[int]]:
    """The text layer of a PDF, pages joined by ``\\n``, and where each page starts in it.

    Extraction stops as soon as the text passes ``max_chars``; pypdf itself caps what one stream may
    inflate to. pypdf's own warnings (a missing EOF marker, a bad xref) are silenced: the file either
    loads or fails with one line.
    """
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    pages: list[str] = []
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError(path, "encrypted PDF; save an unprotected copy")
        for page in reader.pages:
            pages.append(normalise_newlines(page.extract_text() or ""))
            _check_chars(path, sum(len(p) + 1 for p in pages), max_chars)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, MemoryError) as exc:
        raise LoadError(path, f"not a valid PDF (corrupt?): {exc}") from None
    starts, offset = [], 0
    for page in pages:
        starts.append(offset)
        offset += len(page) + 1
    if not "".join(pages).strip():
        raise LoadError(path, "no text layer (scanned PDF?); run OCR on it first")
    return "\n".join(pages), starts


def _check_chars(path: Path, chars: int, max_chars: int) -> None:
    if chars > max_chars:
        raise LoadError(path, f"holds over {max_chars:,} characters of text, the limit (max_text_chars)")


def load_document(
    path: Path,
    doc_id: str,
    max_bytes: int,
    max_unpacked: int = DEFAULT_MAX_UNPACKED,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> Document:
    """Read one file as a ``Document`` with its metadata; raises ``LoadError`` when it cannot be used.

    ``max_bytes`` bounds the file, ``max_unpacked`` what a .docx inflates to, ``max_chars`` the text.
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        found = f"file type {suffix}" if suffix else "file without an extension"
        raise LoadError(path, f"unsupported {found}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LoadError(path, f"file is {_size(size)}, over the {_size(max_bytes)} limit (max_file_mb)")
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(path, f"cannot read: {exc.strerror or exc}") from None
    if not data:
        raise LoadError(path, "empty file")
    meta: dict[str, Any] = {"source": str(path.resolve()), "suffix": suffix}
    if suffix == ".docx":
        text = normalise_newlines(_docx_text(path, data, max_unpacked))
    elif suffix == ".pdf":
        text, meta["page_starts"] = _pdf_text(path, data, max_chars)
    else:
        text = normalise_newlines(decode_text(path, data))
    _check_chars(path, len(text), max_chars)
    if not text.strip():
        raise LoadError(path, "no text (the file holds only whitespace)")
    found = extract_metadata(path.stem, text)
    title = found.pop("title")
    return Document(doc_id=doc_id, title=title, text=text, meta={**found, **meta})


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.split("\n") if line.strip()), "")


def extract_metadata(title: str, text: str) -> dict[str, Any]:
    """Title, issuer, year and document type from a file's stem (``title``) and its first lines.

    The first line is the title when it looks like one (short, no closing punctuation), else the stem
    is. The stem's ``机构-主题`` prefix names the issuer when it is an organisation; otherwise the
    title or first lines are searched. Keys not found are left out (``title`` is always there).
    """
    first = _first_line(text).lstrip("#").strip()
    looks_like_title = 0 < len(first) <= 40 and first[-1] not in "。！？；：，、,.;:!?"
    # a generic first line ("政府工作报告") that the file name already contains says less than the name
    found: dict[str, Any] = {"title": first if looks_like_title and first not in title else title}
    prefix = re.split(r"[-－—_]", title, maxsplit=1)[0] if re.search(r"[-－—_]", title) else ""
    issuer = (
        _ISSUER_PREFIX.fullmatch(prefix)
        or _ISSUER_IN_TEXT.search(found["title"])
        or _ISSUER_IN_TEXT.search(text[:200])
    )
    if issuer:
        found["issuer"] = issuer[0].lstrip("*")
    year = YEAR.search(found["title"]) or YEAR.search(title) or YEAR.search(first)
    if year:
        found["year"] = int(year[0])
    doc_type = next((t for t in DOC_TYPES if t in found["title"] or t in title), None)
    if doc_type:
        found["doc_type"] = doc_type
    return found
