"""The query path stays light: searching and answering on an existing index never import torch, nor
LangChain (an LLM is not configured), nor jieba's part-of-speech model (the frozen dictionary tags)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

HEAVY = ("torch", "transformers", "sentence_transformers", "langchain_core", "pydantic", "pandas", "scipy")
SCRIPT = """
import json, sys
from zhiwen.ui.cli import main
index = sys.argv[1]
for args in (["search", "新市民金融服务有哪些举措？", "-k", "3"], ["ask", "如何支持新市民金融？"]):
    try:
        main(args + ["--index", index], standalone_mode=False)
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy} or m == "jieba.posseg")))
"""


def test_search_and_ask_import_nothing_heavy(corpus_settings):
    script = SCRIPT.replace("{heavy}", repr(set(HEAVY)))
    done = subprocess.run(
        [sys.executable, "-c", script, str(corpus_settings.index_dir)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.strip().splitlines()
    assert out[0].startswith("[1] ")  # the search printed its hits
    assert any("[1]" in line for line in out[1:-1])  # the answer cites a passage
    assert json.loads(out[-1]) == []
