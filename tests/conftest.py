"""Shared fixtures: the real model and an index of corpus/, each built once per test run, in isolation.

Every test run gets a fresh temporary home for Zhiwen (``XDG_CACHE_HOME``, ``XDG_DATA_HOME``,
``XDG_CONFIG_HOME``), so the converted model, the embedding cache and any index live there and nothing
of the user's ``~/.cache/zhiwen``, config file or ``ZHIWEN_*`` variables leaks in or is written to. The
model is converted once per run (by the first test that needs it) and reused by every later one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from zhiwen.core.embed import Embedder
from zhiwen.core.settings import Settings, default_cache_dir
from zhiwen.ingest.pipeline import ingest_paths

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "corpus"
# The same examples on every run, so CI never turns red on an example a previous run did not try.
hypothesis_settings.register_profile("zhiwen", derandomize=True, database=None)
hypothesis_settings.load_profile("zhiwen")
_KEEP = {
    "ZHIWEN_EVALDATA",
    "ZHIWEN_LLM_GGUF",
    "ZHIWEN_SCREENSHOTS_DIR",
    "ZHIWEN_RACE_SECONDS",
}  # where shared data lives, not how Zhiwen behaves


def pytest_configure(config: pytest.Config) -> None:
    home = Path(tempfile.mkdtemp(prefix="zhiwen-tests-"))
    config._zhiwen_home = home  # type: ignore[attr-defined]
    for name in [n for n in os.environ if n.startswith("ZHIWEN_") and n not in _KEEP]:
        del os.environ[name]
    for var, folder in (
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CONFIG_HOME", "config"),
    ):
        os.environ[var] = str(home / folder)


def pytest_unconfigure(config: pytest.Config) -> None:
    home = getattr(config, "_zhiwen_home", None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


def make_settings(index_dir: Path, **changes) -> Settings:
    """Settings for a test index: a private index folder, the run's model and embedding cache."""
    return Settings(index_dir=index_dir, cache_dir=default_cache_dir(), **changes)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real default model (converted once per run) with the run's embedding cache."""
    return Embedder(Settings(cache_dir=default_cache_dir()))


@pytest.fixture(scope="session")
def corpus_settings(tmp_path_factory, embedder) -> Settings:
    """Settings of an index of corpus/ built once per test session (do not modify it in tests)."""
    settings = make_settings(tmp_path_factory.mktemp("corpus-index") / "index")
    ingest_paths([CORPUS], settings, progress=False, embedder=embedder)
    return settings


@pytest.fixture(scope="session")
def corpus_texts() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in CORPUS.glob("*.txt")}
