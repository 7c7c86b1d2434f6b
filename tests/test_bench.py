"""``zhiwen bench`` runs end to end (a tiny scale section only): it prints its table; timings are not tested."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from zhiwen.eval.datasets import default_evaldata
from zhiwen.ui.cli import main

pytestmark = pytest.mark.slow


@pytest.mark.skipif(
    not (default_evaldata() / "corpora" / "lawrefbook_articles.jsonl.gz").exists(),
    reason="../shared/evaldata (statute articles and STARD questions) is not on this machine",
)
def test_bench_scale_section_prints_a_table(tmp_path):
    args = ["bench", "--only", "scale", "--sizes", "300", "--real-vectors", "30", "--queries", "5"]
    result = CliRunner().invoke(main, [*args, "--index", str(tmp_path / "unused")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = [line for line in result.stdout.splitlines() if line.startswith("| scale")]
    assert len(table) == 3  # wall-clock and CPU latency, then recall and memory
    assert "300 chunks, flat: hybrid p50 / p95 / p99 ms, CPU" in table[1]
    assert "300 chunks, flat: dense recall@10 vs exact" in table[2] and "1.000" in table[2]


def test_bench_memory_prints_each_stage_on_the_corpus_index(corpus_settings):
    args = ["eval", "bench", "memory", "--index", str(corpus_settings.index_dir)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("faiss")
    assert [line.split(":")[0].strip() for line in lines[1:]][:2] == [
        "imports",
        "model and 151 question vectors",
    ]
    assert any(
        line.strip().startswith("first search (87 chunks): ") and "MB resident" in line for line in lines
    )
    assert "peak" in lines[-1]
