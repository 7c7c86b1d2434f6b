"""Shared fixtures: the real model (converted once into the user cache) and an index of corpus/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from zhiwen.ingest.embed import Embedder
from zhiwen.ingest.pipeline import ingest_paths
from zhiwen.ingest.settings import Settings, default_cache_dir

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "corpus"
EVALDATA = Path(os.environ.get("ZHIWEN_EVALDATA", REPO.parent / "shared" / "evaldata"))


def make_settings(index_dir: Path, **changes) -> Settings:
    """Settings for a test index: private index folder, the user's model and embedding cache."""
    return Settings(index_dir=index_dir, cache_dir=default_cache_dir(), **changes)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
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
