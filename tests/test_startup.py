"""What makes start-up cheap gives exactly what the slow parts gave: the frozen jieba dictionary, the BM25
reader without bm25s, and the question tokenizer that reads only the pieces it needs."""

from __future__ import annotations

import json
import subprocess
import sys

import bm25s
import numpy as np
import pytest
from conftest import CORPUS, REPO
from tokenizers import Tokenizer
from zhiwen.core.encoders import ensure_onnx_model
from zhiwen.core.index import index_signature, open_generation
from zhiwen.core.pieces import PIECES_FILE, PieceTokenizer
from zhiwen.core.settings import default_cache_dir
from zhiwen.core.tokenize import (
    _loaded_general,
    _loaded_tokenizer,
    domain_tagger,
    domain_tokenizer,
    general_tokenizer,
    tokenize,
)

# Edge cases of the tokenizer's normaliser and special tokens, besides ordinary questions.
ODD_TEXTS = [
    "",
    " ",
    "<s>abc</s><mask>",
    "a  b\t\tc\u0000d",
    "～～~~ＡＢＣ１２３",
    "😀🀄️ emoji",
    "<unk> <pad>",
    "\u200b零宽",
    "ﬁ ligature ㈱ ①②",
    "query: 新市民 <mask> 金融",
    "中" * 600,
]


def _questions() -> list[str]:
    lines = (REPO / "eval" / "data" / "golden.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["query"] for line in lines]


def test_frozen_dictionary_cuts_like_a_loaded_jieba():
    loaded = _loaded_tokenizer()
    texts = [p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.txt"))] + _questions()
    for text in texts:
        assert list(domain_tokenizer().cut_for_search(text)) == list(loaded.cut_for_search(text))


def test_sparse_reader_scores_like_bm25s(corpus_settings):
    gen = open_generation(corpus_settings.index_dir, index_signature(corpus_settings))
    reference = bm25s.BM25.load(str(gen.path / "bm25"), allow_pickle=False, mmap=True)
    for question in _questions():
        tokens = tokenize(question)
        ids = gen.sparse.token_ids(tokens)
        assert ids == reference.get_tokens_ids(tokens)
        if ids:
            np.testing.assert_array_equal(gen.sparse.scores(ids), reference.get_scores_from_ids(ids))
    gen.close()


@pytest.mark.slow
def test_question_tokenizer_gives_the_full_tokenizers_ids(embedder):
    folder = ensure_onnx_model(default_cache_dir())
    embedder.encode_query("预热")  # writes the pieces file beside the export
    pieces = PieceTokenizer(folder / PIECES_FILE, 512)
    full = Tokenizer.from_file(str(folder / "tokenizer.json"))
    full.enable_truncation(max_length=512)
    for text in ["query: " + q for q in _questions()] + ODD_TEXTS:
        assert pieces.encode_ids([text]) == [full.encode(text).ids], text


def _asked() -> list[str]:
    """Every question of eval/data: the golden, holdout, refusal, follow-up, answer and English sets."""
    asked = []
    for path in sorted((REPO / "eval" / "data").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            asked += [row[key] for key in ("query", "resolved") if isinstance(row.get(key), str)]
            asked += row.get("turns", [])
    return asked


def test_frozen_tags_and_general_words_are_jiebas():
    """The subject rule's nouns and IDFs are the same as with jieba.posseg and a loaded general jieba, so
    every refusal decision is unchanged."""
    import jieba.posseg

    reference = jieba.posseg.POSTokenizer(_loaded_tokenizer())
    general = _loaded_general()
    texts = _asked() + [p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.txt"))] + ODD_TEXTS
    texts.append("ATM机和App 2023年LPR下调0.5%？ a+b#c_d.e 12.5亿元\r\n第2项")
    assert len(texts) > 600
    for text in texts:
        assert list(domain_tagger().cut(text)) == [(p.word, p.flag) for p in reference.cut(text, HMM=False)]
        assert list(general_tokenizer().cut_for_search(text, HMM=False)) == list(
            general.cut_for_search(text, HMM=False)
        )
    assert general_tokenizer().total == general.total


def test_without_a_usable_cache_jieba_loads_whole_with_the_same_results(monkeypatch, tmp_path):
    """A cache folder that cannot be written (here: under a file) gives the loaded dictionaries."""
    from zhiwen.core import tokenize as tok

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    question = "房地产税试点在哪些城市？重疾险的ATM机"
    frozen = (list(tok.domain_tagger().cut(question)), list(tok.general_tokenizer().cut(question)))
    cached = (tok._frozen, tok.domain_tokenizer, tok.general_tokenizer, tok.domain_tagger)
    for function in cached:
        function.cache_clear()
    monkeypatch.setattr(tok, "frozen_path", lambda: blocker / "words.sqlite")
    try:
        assert tok._frozen() is None
        assert not isinstance(tok.domain_tokenizer().FREQ, tok.FrozenTable)
        assert (
            list(tok.domain_tagger().cut(question)),
            list(tok.general_tokenizer().cut(question)),
        ) == frozen
    finally:
        for function in cached:
            function.cache_clear()


def test_gradio_starts_without_writing_type_stubs():
    """`zhiwen serve` imports Gradio with its stub writer off; the components still build and render."""
    script = (
        "from zhiwen.ui.gradio_stubs import skip_stub_writing\n"
        "skip_stub_writing()\n"
        "import gradio as gr, gradio.component_meta as meta\n"
        "with gr.Blocks() as demo:\n"
        "    box = gr.Textbox(label='问题')\n"
        "    box.submit(lambda q: q, box, box)\n"
        "print(meta.create_or_modify_pyi.__name__, len(demo.get_config_file()['components']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["_no_stub", "2"]  # the Blocks and its text box
