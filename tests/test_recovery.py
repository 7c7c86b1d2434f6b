"""A broken index names what is broken, `zhiwen doctor` goes back to the newest healthy generation,
`--rebuild` works from the stored texts, and old generations are kept (the fault probe's items 3, 9, 11)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CORPUS, REPO, make_settings
from zhiwen.core.index import CURRENT, generations
from zhiwen.ingest.pipeline import ingest_paths
from zhiwen.retriever import Retriever
from zhiwen.ui.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def two_generations(tmp_path, embedder):
    """An index of corpus/ written twice: the second generation adds one document."""
    settings = make_settings(tmp_path / "index")
    ingest_paths([CORPUS], settings, progress=False, embedder=embedder)
    extra = tmp_path / "extra.txt"
    extra.write_text("第二代独有的测试语句：推进绿色金融改革创新试验区建设。", encoding="utf-8")
    ingest_paths([CORPUS, extra], settings, progress=False, embedder=embedder)
    return settings


def run(settings, *args: str):
    env = {"ZHIWEN_INDEX_DIR": str(settings.index_dir), "ZHIWEN_CACHE_DIR": str(settings.cache_dir)}
    return CliRunner().invoke(main, list(args), env=env)


def live(settings) -> Path:
    return settings.index_dir / (settings.index_dir / CURRENT).read_text().strip()


def test_truncated_dense_index_is_named_and_doctor_falls_back(two_generations):
    settings = two_generations
    broken = live(settings)
    with open(broken / "dense.faiss", "r+b") as handle:
        handle.truncate(100)
    result = run(settings, "search", "新市民")
    assert result.exit_code == 1
    assert "dense.faiss: damaged or missing" in result.output and "zhiwen doctor" in result.output
    assert "Traceback" not in result.output
    result = run(settings, "doctor")
    assert result.exit_code == 1 and "dense.faiss" in result.output
    assert live(settings) != broken and live(settings) in generations(settings.index_dir)
    assert run(settings, "doctor").exit_code == 0
    assert run(settings, "search", "新市民").exit_code == 0


@pytest.mark.parametrize(
    "damage",
    ["delete store.sqlite", "garbage CURRENT", "garbage manifest", "delete CURRENT"],
)
def test_damage_gets_one_line_and_rebuild_recovers(two_generations, damage):
    settings = two_generations
    gen = live(settings)
    if damage == "delete store.sqlite":
        (gen / "store.sqlite").unlink()
    elif damage == "garbage CURRENT":
        (settings.index_dir / CURRENT).write_bytes(b"\xff\xfe garbage \x00")
    elif damage == "garbage manifest":
        (gen / "manifest.json").write_text("{not json", encoding="utf-8")
    else:
        (settings.index_dir / CURRENT).unlink()
    result = run(settings, "search", "新市民")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "zhiwen doctor" in result.output
    before = {g.name for g in generations(settings.index_dir)}
    result = run(settings, "ingest", "--rebuild", "-q")
    assert result.exit_code == 0, result.output
    assert "added 0" in result.output
    documents = 5 if damage == "delete store.sqlite" else 6  # the texts of the newest readable store
    assert f"index: {documents} documents" in result.output
    assert before <= {g.name for g in generations(settings.index_dir)}, "no older generation is lost"
    hits = Retriever(settings).search("绿色金融改革创新试验区", k=1)
    assert hits and hits[0].text == _source(settings, hits[0])


def _source(settings, hit) -> str:
    from zhiwen.core.index import open_generation

    gen = open_generation(settings.index_dir)
    try:
        return gen.document(hit.doc_id).text[hit.start : hit.end]
    finally:
        gen.close()


def test_deleting_current_then_ingesting_loses_nothing(two_generations):
    settings = two_generations
    (settings.index_dir / CURRENT).unlink()
    result = run(settings, "ingest", str(CORPUS), "-q")
    assert result.exit_code == 1 and "missing, but generations exist" in result.output
    assert len(generations(settings.index_dir)) == 2
    assert run(settings, "doctor").exit_code == 1
    assert "6 documents" in run(settings, "ingest", str(CORPUS), "-q").output


def test_the_last_n_generations_are_kept(tmp_path, embedder):
    settings = make_settings(tmp_path / "index", keep_generations=3)
    names = []
    for i in range(5):
        extra = tmp_path / f"extra{i}.txt"
        extra.write_text(f"第{i}份补充材料：加强金融监管协作。", encoding="utf-8")
        ingest_paths([CORPUS, extra], settings, progress=False, embedder=embedder)
        names.append(live(settings).name)
        time.sleep(0.01)
    assert [g.name for g in generations(settings.index_dir)] == names[::-1][:3]


def test_stray_pointer_temporaries_are_cleaned_by_any_ingest(two_generations):
    settings = two_generations
    stray = settings.index_dir / f".{CURRENT}.tmp-99999-deadbeef"
    stray.write_text("gen-x", encoding="utf-8")
    assert run(settings, "ingest", str(CORPUS), "-q").exit_code == 0  # nothing changed, nothing written
    assert not stray.exists()


def test_unusable_folders_and_models_get_one_line_before_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    cases = [
        ({"ZHIWEN_INDEX_DIR": str(blocker)}, ["ingest", str(CORPUS)], f"index_dir {blocker} is a file"),
        (
            {"ZHIWEN_INDEX_DIR": str(blocker / "index")},
            ["ingest", str(CORPUS)],
            f"index_dir {blocker / 'index'} cannot be created",
        ),
        (
            {"ZHIWEN_CACHE_DIR": str(blocker / "cache"), "ZHIWEN_INDEX_DIR": str(tmp_path / "i")},
            ["search", "新市民"],
            f"cache_dir {blocker / 'cache'} cannot be created",
        ),
        (
            {"ZHIWEN_EMBED_MODEL": "no-such-org/no-such-model", "ZHIWEN_INDEX_DIR": str(tmp_path / "i")},
            ["search", "新市民"],
            "embed_model 'no-such-org/no-such-model' is not a local folder",
        ),
    ]
    for env, args, expected in cases:
        started = time.perf_counter()
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 1 and expected in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and time.perf_counter() - started < 10


def test_info_hides_the_password(tmp_path):
    result = CliRunner().invoke(
        main, ["info"], env={"ZHIWEN_AUTH": "admin:s3cret", "ZHIWEN_INDEX_DIR": str(tmp_path)}
    )
    assert result.exit_code == 0 and "s3cret" not in result.output and "admin:***" in result.output


def test_a_read_only_index_still_answers(corpus_settings):
    """A shared install: an index (and converted models) the user may read but not write. Searching,
    answering and checking work; writing gets one line. As root (CI) the commands run as ``nobody``, since root may write
    anything; as another user the permission bits alone make the folders read-only."""
    base = Path(tempfile.mkdtemp(prefix="zhiwen-ro-", dir="/tmp"))
    try:
        index, cache, home = base / "index", base / "cache", base / "home"
        shutil.copytree(corpus_settings.index_dir, index)
        # Hard links: the 1 GB of converted models costs nothing to "copy" (same file system as /tmp).
        shutil.copytree(corpus_settings.cache_dir / "models", cache / "models", copy_function=os.link)
        home.mkdir()
        for root, dirs, files in os.walk(base):
            for name in dirs:
                os.chmod(Path(root) / name, 0o555)
            for name in files:
                os.chmod(Path(root) / name, 0o444)
        for writable in (
            base,
            cache,
            home,
        ):  # the cache folder stays writable (embedding cache); its models not
            os.chmod(writable, 0o777)
        as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        env = {
            **os.environ,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home),
            "ZHIWEN_INDEX_DIR": str(index),
            "ZHIWEN_CACHE_DIR": str(cache),
        }

        def zhiwen(*args: str) -> subprocess.CompletedProcess[str]:
            command = [*as_user, sys.executable, "-m", "zhiwen.ui.cli", *args]
            return subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=120)

        probe = subprocess.run(
            [*as_user, sys.executable, "-c", "import zhiwen.ui.cli"],
            check=False,
            env=env,
            capture_output=True,
        )
        if probe.returncode != 0:
            pytest.skip(
                f"user nobody cannot import Zhiwen from this checkout ({REPO} or its venv is private)"
            )
        found = zhiwen("search", "如何支持新市民金融？", "-k", "3", "--json")
        assert found.returncode == 0 and "新市民" in found.stdout and "Traceback" not in found.stderr, (
            found.stderr
        )
        answered = zhiwen("ask", "如何支持新市民金融？")
        assert answered.returncode == 0 and "新市民" in answered.stdout, answered.stderr
        checked = zhiwen("doctor", "--dry-run")
        assert checked.returncode == 0 and "is healthy" in checked.stdout, checked.stderr
        refused = zhiwen("ingest", str(CORPUS))
        assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [
            f"Error: index_dir {index} is not writable; choose another folder with --index or ZHIWEN_INDEX_DIR"
        ]
    finally:
        for root, dirs, _ in os.walk(base):
            os.chmod(root, 0o755)
            for name in dirs:
                os.chmod(Path(root) / name, 0o755)
        shutil.rmtree(base, ignore_errors=True)
