"""Command-line options every ``zhiwen`` command shares: where the index and the config file are.

``settings_options`` adds ``--index`` and ``--config`` to a click command and hands it a loaded
``settings`` object; options named ``set_<field>`` become overrides of that setting (flags beat the
environment, which beats the config file). Settings errors and index errors become one-line messages.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from .index import IndexStateError
from .settings import Settings, SettingsError

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
