"""Start Gradio without the step it runs for its own developers: a third of its import time.

When ``gradio`` is imported, each of its component classes (about 80) reads and parses its source file
again to regenerate the ``.pyi`` type stub beside it (``gradio.component_meta.create_or_modify_pyi``),
writing into site-packages when the stub differs. Nothing reads those stubs at run time; on a loaded
2-core machine ``import gradio`` took 4.9 to 5.6 s of CPU with the step and 3.4 to 3.8 s without it (four
runs each). ``skip_stub_writing`` turns it off for this process before Gradio is imported. Should a
Gradio release rename the function, nothing is skipped and nothing breaks.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

STUB_MODULE = "gradio.component_meta"


class _WithoutStubs(importlib.abc.Loader):
    """Runs ``gradio.component_meta`` as usual, then replaces its stub writer with a no-op."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        if callable(getattr(module, "create_or_modify_pyi", None)):
            module.create_or_modify_pyi = _no_stub


def _no_stub(*args: Any, **kwargs: Any) -> None:
    """Write no type stub."""


class _StubFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != STUB_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _WithoutStubs(spec.loader)
        return spec


def skip_stub_writing() -> None:
    """Make the coming ``import gradio`` skip its type-stub step (nothing happens once it is imported)."""
    if STUB_MODULE not in sys.modules and not any(isinstance(f, _StubFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _StubFinder())
