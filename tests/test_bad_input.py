"""Bad input fails alone, with one line: damaged and inflating .docx files, huge text, unreadable files
under --prune, symlink loops, UTF-16 without a byte-order mark (the fault probe's items 2, 4 and 11)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import docx
import pytest
from click.testing import CliRunner
from conftest import CORPUS, make_settings
from zhiwen.core.index import open_generation
from zhiwen.ingest.load import LoadError, load_document
from zhiwen.ingest.pipeline import ingest_paths
from zhiwen.ui.cli import main

MB = 1024 * 1024


def write_docx(path: Path, text: str = "银保监局2023年工作汇报\n一是推动消费。") -> Path:
    document = docx.Document()
    for line in text.split("\n"):
        document.add_paragraph(line)
    document.save(str(path))
    return path


def rewrite_part(path: Path, part: str, change) -> None:
    """Rewrite one member of a zip archive (a .docx) in place, through ``change(bytes) -> bytes``."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members[part] = change(members[part])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def cut_docx(path: Path) -> Path:
    """A .docx whose word/document.xml is cut in half, as the fault probe made it."""
    rewrite_part(path, "word/document.xml", lambda data: data[: len(data) // 2])
    return path


def test_a_cut_docx_fails_alone_on_the_command_line(tmp_path, embedder):
    folder = tmp_path / "docs"
    shutil.copytree(CORPUS, folder)
    cut_docx(write_docx(folder / "broken.docx"))
    env = {"ZHIWEN_INDEX_DIR": str(tmp_path / "index"), "ZHIWEN_CACHE_DIR": str(embedder.settings.cache_dir)}
    result = CliRunner().invoke(main, ["ingest", str(folder), "-q"], env=env)
    assert result.exit_code == 0, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.docx" in errors[0] and "not a valid .docx" in errors[0]
    assert "added 5" in result.stdout


def test_a_docx_that_inflates_past_the_limit_is_refused_before_it_is_unpacked(tmp_path):
    path = write_docx(tmp_path / "bomb.docx")
    # 300 MB of one repeated character inflates from about 300 KB of deflated data
    rewrite_part(
        path, "word/document.xml", lambda data: data.replace(b"</w:t>", b"A" * (300 * MB) + b"</w:t>", 1)
    )
    assert path.stat().st_size < 2 * MB
    with pytest.raises(
        LoadError, match=r"unpacks to 300\.\d MB, over the 200\.0 MB limit \(max_unpacked_mb\)"
    ):
        load_document(path, "bomb.docx", 50 * MB)


def test_text_over_the_character_limit_is_refused(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("金融" * 600, encoding="utf-8")
    with pytest.raises(LoadError, match=r"holds over 1,000 characters of text, the limit \(max_text_chars\)"):
        load_document(path, "long.txt", MB, max_chars=1000)
    pdf = tmp_path / "long.pdf"
    from test_load import write_pdf

    write_pdf(pdf, ["Loans grew 12 percent " * 20] * 5)
    with pytest.raises(LoadError, match=r"long\.pdf: holds over 500 characters"):
        load_document(pdf, "long.pdf", MB, max_chars=500)


def test_pypdf_warnings_do_not_leak(tmp_path, capfd):
    from test_load import write_pdf

    pdf = tmp_path / "noeof.pdf"
    write_pdf(pdf, ["Annual report 2023"])
    pdf.write_bytes(pdf.read_bytes().replace(b"%%EOF", b""))
    try:
        load_document(pdf, "noeof.pdf", MB)
    except LoadError:
        pass
    captured = capfd.readouterr()
    assert "EOF marker" not in captured.err + captured.out


def test_prune_keeps_a_document_whose_file_is_unreadable(tmp_path, embedder):
    folder = tmp_path / "docs"
    shutil.copytree(CORPUS, folder)
    settings = make_settings(tmp_path / "index")
    ingest_paths([folder], settings, progress=False, embedder=embedder)
    victim = next(folder.glob("*.txt"))
    victim.write_bytes(bytes(range(256)) * 4)  # still there, but no longer readable as text
    report = ingest_paths([folder], settings, prune=True, progress=False, embedder=embedder)
    assert report.removed == [] and [p for p, _ in report.failed] == [str(victim)]
    assert victim.name in open_generation(settings.index_dir).doc_meta
    victim.unlink()
    again = ingest_paths([folder], settings, prune=True, progress=False, embedder=embedder)
    assert again.removed == [victim.name]


def test_symlink_loop_gets_a_line(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").symlink_to(folder / "b.txt")
    (folder / "b.txt").symlink_to(folder / "a.txt")
    (folder / "good.txt").write_text("第一行。", encoding="utf-8")
    from zhiwen.ingest.pipeline import load_paths

    documents, failed = load_paths([folder], make_settings(tmp_path / "index"), progress=False)
    assert [d.doc_id for d in documents] == ["good.txt"]
    assert sorted(Path(p).name for p, _ in failed) == ["a.txt", "b.txt"]
    assert all("symbolic links" in reason for _, reason in failed)


def test_a_link_leading_outside_the_folder_is_refused_with_a_line(tmp_path):
    from zhiwen.ingest.pipeline import load_paths

    folder, elsewhere = tmp_path / "docs", tmp_path / "private"
    (folder / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    secret = elsewhere / "secret.txt"
    secret.write_text("内部资料，不应入库。", encoding="utf-8")
    (folder / "good.txt").write_text("第一行。", encoding="utf-8")
    (folder / "sub" / "inside.txt").symlink_to(folder / "good.txt")  # stays inside: followed
    (folder / "outside.txt").symlink_to(secret)
    settings = make_settings(tmp_path / "index")
    documents, failed = load_paths([folder], settings, progress=False)
    assert sorted(d.doc_id for d in documents) == ["good.txt", "sub/inside.txt"]
    [(path, reason)] = failed
    assert path == str(folder / "outside.txt") and str(secret) in reason and "outside the folder" in reason
    # Named directly, the same file is the user's explicit choice and loads.
    documents, failed = load_paths([folder / "outside.txt"], settings, progress=False)
    assert [d.text for d in documents] == ["内部资料，不应入库。"] and failed == []


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_text(tmp_path, encoding):
    path = tmp_path / "note.txt"
    path.write_bytes("银保监局2023年工作汇报\n一是推动消费。\n".encode(encoding))
    assert load_document(path, "note.txt", MB).text == "银保监局2023年工作汇报\n一是推动消费。\n"


def test_binary_with_nuls_is_still_binary(tmp_path):
    path = tmp_path / "blob.txt"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(LoadError, match="binary file"):
        load_document(path, "blob.txt", MB)


def test_an_upload_with_a_cut_docx_adds_the_good_file(tmp_path, embedder):
    from zhiwen.retriever import Retriever
    from zhiwen.ui.kb import KnowledgeBase

    settings = make_settings(tmp_path / "data" / "index")
    ingest_paths([CORPUS], settings, progress=False, embedder=embedder)
    kb = KnowledgeBase(settings, Retriever(settings, embedder=embedder))
    staging = kb.staging_dir()
    cut_docx(write_docx(staging / "broken.docx"))
    (staging / "good.txt").write_text("独一无二的测试词语出现在这里。", encoding="utf-8")
    results, _ = kb.add_files([staging / "broken.docx", staging / "good.txt"])
    assert {r.name: r.status for r in results} == {"broken.docx": "failed", "good.txt": "added"}
    assert not staging.exists() and (kb.uploads_dir / "good.txt").exists()
