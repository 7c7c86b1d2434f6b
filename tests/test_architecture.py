"""The layout's promises: data flows one way between the packages, and the read path never loads ingest."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from zhiwen.ui.cli import main

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "ingest", "retriever", "ui", "eval")
# What each package may import from the others: nothing flows back towards core.
ALLOWED = {
    "core": set(),
    "ingest": {"core"},
    "retriever": {"core"},
    "ui": {"core", "ingest", "retriever"},
    "eval": {"core", "ingest", "retriever"},
}


def imported_packages(package: str) -> dict[str, set[str]]:
    """For each module of ``package``: the other zhiwen packages it imports (at any depth of the code)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / package).glob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[path.name] = {
            n.split(".")[1] for n in names if n.startswith("zhiwen.") and n.split(".")[1] != package
        }
    return found


def test_the_import_graph_flows_one_way():
    for package in PACKAGES:
        for module, imports in imported_packages(package).items():
            assert imports <= ALLOWED[package], (
                f"{package}/{module} imports {sorted(imports - ALLOWED[package])}"
            )


def test_the_command_line_registers_eval_as_a_plugin_without_importing_it():
    code = (
        "import sys; from zhiwen.ui.cli import main; "
        "print(sorted(m for m in sys.modules if m.startswith('zhiwen.eval')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
    listed = CliRunner().invoke(main, ["--help"])
    assert listed.exit_code == 0 and "eval" in listed.output
    subcommands = CliRunner().invoke(main, ["eval", "--help"])
    assert all(name in subcommands.output for name in ("run", "tune", "bench", "refusal"))


@pytest.mark.slow
def test_search_and_ask_import_no_ingest_module(corpus_settings):
    """The read path opens the index without the ingest pipeline (BM25 here, so no model loads: the
    embedder's module is imported either way, and what it loads is checked above)."""
    code = (
        "import json, sys; from zhiwen.ui.cli import main\n"
        "for args in (['search', '新市民', '-k', '1', '--strategy', 'bm25'], ['chunks', '--doc', '银保监局']):\n"
        "    main([*args, '--index', sys.argv[1]], standalone_mode=False)\n"
        "import zhiwen.retriever.answer, zhiwen.retriever.langchain  # what `zhiwen ask` adds\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('zhiwen.'))))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(corpus_settings.index_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    assert {"zhiwen.retriever.search", "zhiwen.core.index", "zhiwen.core.embed"} <= set(loaded)
    assert [m for m in loaded if m.startswith(("zhiwen.ingest", "zhiwen.eval"))] == []
