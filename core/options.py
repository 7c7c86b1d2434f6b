"""Command-line options every ``zhiwen`` command shares: where the index and the config file are.

``settings_options`` adds ``--index`` and ``--config`` to a click command and hands it a loaded
``settings`` object; options named ``set_<field>`` become overrides of that setting (flags beat the
environment, which beats the config file). Settings errors and index errors become one-line messages.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from .index import IndexStateError
from .settings import DEFAULT_EMBED_MODEL, Settings, SettingsError

USER_ERRORS = (SettingsError, IndexStateError, ValueError, FileNotFoundError, RuntimeError)

index_option = click.option(
    "--index",
    "index_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Index folder (default: $ZHIWEN_INDEX_DIR or ~/.local/share/zhiwen/index).",
)
config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="TOML config file (default: $ZHIWEN_CONFIG or ~/.config/zhiwen/config.toml).",
)


def setting_choice(name: str, choices: Sequence[str], help_text: str) -> Callable:
    """An option ``--NAME`` that overrides the setting of that name with one of ``choices``."""
    field = name.replace("-", "_")
    return click.option(f"--{name}", f"set_{field}", type=click.Choice(choices), default=None, help=help_text)


def settings_options(func: Callable) -> Callable:
    """Add --index and --config to a command and pass it a ready ``settings`` object."""

    @index_option
    @config_option
    @functools.wraps(func)
    def wrapper(index_dir: Path | None, config_file: Path | None, **kwargs: Any) -> Any:
        overrides = {name[4:]: kwargs.pop(name) for name in list(kwargs) if name.startswith("set_")}
        try:
            settings = Settings.load(config_file, index_dir=index_dir, **overrides)
            return func(settings=settings, **kwargs)
        except USER_ERRORS as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _unwritable(folder: Path) -> str | None:
    """Why ``folder`` cannot hold files Zhiwen writes, or None when it can (created if missing)."""
    if folder.is_file():
        return "is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot be created ({exc.strerror})"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "is not writable"
    return None


def preflight(settings: Settings, writes_index: bool = False) -> None:
    """Check the folders a command will write and the embedding model before any work starts.

    Raises ``SettingsError`` naming the setting and path: a cache or index folder that is a file, sits
    under a file or is read-only, and a model that is neither a local folder nor cached while the
    Hugging Face hub is unreachable (this machine may be offline: say so now, not after minutes of
    retries).
    """
    checks = [("cache_dir", Path(settings.cache_dir), "ZHIWEN_CACHE_DIR")]
    if writes_index:
        checks.append(("index_dir", Path(settings.index_dir), "--index or ZHIWEN_INDEX_DIR"))
    for name, folder, how in checks:
        problem = _unwritable(folder)
        if problem:
            raise SettingsError(f"{name} {folder} {problem}; choose another folder with {how}")
    model = settings.embed_model
    if model == DEFAULT_EMBED_MODEL or Path(os.path.expanduser(model)).is_dir() or _cached(model):
        return
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError:
        raise SettingsError(
            f"embed_model {model!r} is not a local folder nor in the Hugging Face cache, and "
            "huggingface.co cannot be reached (offline?); use a local model folder or the default"
        ) from None


def _cached(model: str) -> bool:
    """Whether the Hugging Face cache holds a snapshot of ``model``."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model, "config.json"), str)
