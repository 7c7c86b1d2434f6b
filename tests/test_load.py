"""Loading files: good text, Word and PDF files, and a clear one-line error for each bad kind."""

from __future__ import annotations

from pathlib import Path

import docx
import pytest
from zhiwen.ingest.load import LoadError, discover, extract_metadata, load_document
from zhiwen.ingest.split import split_document

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
MB = 1024 * 1024
TEXT = "金融监管局2022年度工作总结\n\n一是加强监管。二是防范风险。\n"


def write_pdf(path: Path, pages: list[str]) -> None:
    """A minimal valid PDF with one line of Helvetica text per page (ASCII only)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    font_id = 3
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for line in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({line}) Tj ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {len(objects)} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("ascii")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode("ascii")
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode("ascii")
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode("ascii")
    path.write_bytes(out)


def assert_load_error(path: Path, reason: str, max_bytes: int = MB) -> None:
    with pytest.raises(LoadError) as caught:
        load_document(path, path.name, max_bytes)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert reason in caught.value.reason
    assert caught.value.path == path


# --- bad input: one test per kind --------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    assert_load_error(path, "empty file")


def test_whitespace_only_file(tmp_path: Path) -> None:
    path = tmp_path / "blank.md"
    path.write_text(" \n\u3000\n", encoding="utf-8")
    assert_load_error(path, "no text")


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "image.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    assert_load_error(path, "binary file")


def test_control_characters_are_binary(tmp_path: Path) -> None:
    path = tmp_path / "controls.txt"
    path.write_bytes(bytes(range(1, 9)) * 20 + "正文".encode())
    assert_load_error(path, "binary file")


def test_undecodable_text(tmp_path: Path) -> None:
    path = tmp_path / "broken.txt"
    path.write_bytes("正文".encode() + b"\xff\xfe\xfd abc \x80\x80")
    assert_load_error(path, "cannot decode")


def test_corrupt_docx(tmp_path: Path) -> None:
    path = tmp_path / "report.docx"
    path.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    assert_load_error(path, "not a valid .docx")


def test_corrupt_pdf(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> garbage")
    assert_load_error(path, "not a valid PDF")


def test_pdf_without_text_layer(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    write_pdf(path, [""])
    assert_load_error(path, "no text layer (scanned PDF?)")


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "table.xlsx"
    path.write_bytes(b"whatever")
    assert_load_error(path, "unsupported file type .xlsx; supported: .txt, .md, .docx, .pdf")


def test_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("很长的文本。" * 1000, encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        load_document(path, "big.txt", 1024)
    assert str(caught.value) == f"{path}: file is 17.6 KB, over the 1.0 KB limit (max_file_mb)"


# --- good input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "raw_prefix"),
    [("utf-8", b""), ("utf-8-sig", b"\xef\xbb\xbf"), ("utf-16", b""), ("gb18030", b""), ("gbk", b"")],
)
def test_text_encodings(tmp_path: Path, encoding: str, raw_prefix: bytes) -> None:
    path = tmp_path / "金融监管局-2022年度工作总结.txt"
    data = TEXT.replace("\n", "\r\n").encode(encoding)
    assert data.startswith(raw_prefix)
    path.write_bytes(data)
    doc = load_document(path, "sub/金融监管局-2022年度工作总结.txt", MB)
    assert doc.text == TEXT
    assert doc.doc_id == "sub/金融监管局-2022年度工作总结.txt"
    assert doc.title == "金融监管局2022年度工作总结"
    assert doc.meta["source"] == str(path.resolve()) and doc.meta["suffix"] == ".txt"
    assert (doc.meta["issuer"], doc.meta["year"], doc.meta["doc_type"]) == ("金融监管局", 2022, "工作总结")


def test_old_mac_newlines_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    path.write_bytes("第一行。\r第二行。\r\n第三行。".encode())
    assert load_document(path, "note.txt", MB).text == "第一行。\n第二行。\n第三行。"


def test_markdown(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("# 工作要点\n\n一要稳增长。二要防风险。\n", encoding="utf-8")
    doc = load_document(path, "notes.md", MB)
    assert doc.title == "工作要点"
    assert doc.meta["suffix"] == ".md"
    chunks = split_document(doc, min_chars=0)
    assert [c.text for c in chunks] == ["# 工作要点\n\n一要稳增长。", "二要防风险。"]
    assert chunks[1].meta["heading_path"] == ["# 工作要点"] and chunks[1].meta["item_label"] == "二要"


def test_docx_paragraphs_and_tables_in_order(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("银保监局2023年工作汇报")
    document.add_paragraph("一是推动消费。二是支持新市民。")
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([("指标", "数值"), ("贷款余额", "1.5亿元")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("汇报完毕。")
    path = tmp_path / "report.docx"
    document.save(str(path))
    doc = load_document(path, "report.docx", MB)
    assert (
        doc.text
        == "银保监局2023年工作汇报\n一是推动消费。二是支持新市民。\n指标 | 数值\n贷款余额 | 1.5亿元\n汇报完毕。"
    )
    assert doc.title == "银保监局2023年工作汇报"
    assert (doc.meta["issuer"], doc.meta["year"]) == ("银保监局", 2023)


def test_pdf_text_and_page_starts(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    write_pdf(path, ["Annual report 2023", "Loans grew 12 percent", "Page three 333"])
    doc = load_document(path, "report.pdf", MB)
    starts = doc.meta["page_starts"]
    assert len(starts) == 3 and starts[0] == 0
    pages = [doc.text[a:b].strip() for a, b in zip(starts, [*starts[1:], len(doc.text)], strict=True)]
    assert pages == ["Annual report 2023", "Loans grew 12 percent", "Page three 333"]
    chunks = split_document(doc, "paragraph", min_chars=0)
    assert [c.meta["page"] for c in chunks] == [1, 2, 3]


def test_real_corpus_loads(tmp_path: Path) -> None:
    found, refused = discover([CORPUS])
    assert refused == []
    assert len(found) == 5
    for path, doc_id in found:
        doc = load_document(path, doc_id, MB)
        assert doc.text == path.read_text(encoding="utf-8")
        assert doc.meta["issuer"] in doc_id


# --- discovery and metadata ------------------------------------------------------------------------


def test_discover_folders_and_files(tmp_path: Path) -> None:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / ".hidden").mkdir()
    for name in [
        "docs/b.txt",
        "docs/a.md",
        "docs/sub/c.pdf",
        "docs/.hidden/x.txt",
        "docs/.y.txt",
        "docs/z.xlsx",
    ]:
        (tmp_path / name).write_text("x")
    single = tmp_path / "single.docx"
    single.write_text("x")
    found, _ = discover([tmp_path / "docs", single])
    assert [doc_id for _, doc_id in found] == ["a.md", "b.txt", "sub/c.pdf", "z.xlsx", "single.docx"]
    assert found[2][0] == tmp_path / "docs" / "sub" / "c.pdf"
    with pytest.raises(LoadError, match="no such file"):
        discover([tmp_path / "missing"])


@pytest.mark.parametrize(
    ("stem", "first_line", "expected"),
    [
        (
            "市局-能力作风建设年与金融重点工作推进情况",
            "2022年以来，市**局坚持……。",
            {
                "title": "市局-能力作风建设年与金融重点工作推进情况",
                "issuer": "市局",
                "year": 2022,
                "doc_type": "推进情况",
            },
        ),
        (
            "市地方金融监管局-全市金融工作座谈会汇报发言",
            "在全市金融工作座谈会上的汇报发言材料",
            {
                "title": "在全市金融工作座谈会上的汇报发言材料",
                "issuer": "市地方金融监管局",
                "doc_type": "汇报发言",
            },
        ),
        (
            "2023年中华人民共和国国务院政府工作报告",
            "政府工作报告",
            {
                "title": "2023年中华人民共和国国务院政府工作报告",
                "issuer": "国务院",
                "year": 2023,
                "doc_type": "政府工作报告",
            },
        ),
        ("notes", "*银保监局坚决贯彻落实党中央部署。", {"title": "notes", "issuer": "银保监局"}),
    ],
)
def test_extract_metadata(stem: str, first_line: str, expected: dict) -> None:
    assert extract_metadata(stem, first_line + "\n正文。") == expected
