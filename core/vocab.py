"""The names Zhiwen's settings, index, commands and answers share, each defined once.

Settings validate against these tuples when they are loaded; the command line offers them as choices;
the splitter, the index signature and the retriever key their tables by them.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

STRATEGIES = ("bm25", "dense", "hybrid")  # how hits are ranked: keywords, vectors, or both fused
FUSIONS = (
    "rrf",
    "minmax",
    "zscore",
    "adaptive",
    "coverage",
    "verbatim",
)  # how hybrid fuses (functions in retriever/hybrid.py)
DENSE_INDEXES = ("auto", "flat", "hnsw", "ivf-sq8")  # FAISS index kinds; auto picks hnsw above ann_threshold
BACKENDS = ("faiss", "milvus")  # where the index lives: FAISS + SQLite files, or a Milvus collection
ENCODERS = ("onnx-int8", "onnx", "torch")  # what runs the default model (core/encoders.py)
FILTER_KEYS = ("issuer", "year", "doc_type", "doc_id", "role")  # what a search can be limited to
ROLES = ("overview", "done", "problem", "plan")  # the part of a report a passage is in (ingest/outline.py)

# Chunkers and their versions: a version bump makes older indexes rebuild on the next ingest.
CHUNKER_VERSIONS = {"structure": "1", "paragraph": "1", "window": "1"}
CHUNKERS = tuple(CHUNKER_VERSIONS)

# Issuing bodies a question can limit itself to ("2022年银保监局…"), each with its other names
# (税务局: 国家税务总局, 税务总局 …): answers then come only from passages of that body (retriever/answer.py
# Scope). One body a line in core/data/issuers.txt, the name scope refusals use first.
ISSUERS_FILE = Path(str(resources.files("zhiwen.core") / "data" / "issuers.txt"))


@cache
def issuer_names() -> dict[str, tuple[str, ...]]:
    """Each issuing body (its first name in ``ISSUERS_FILE``) -> all its names, that one first."""
    lines = ISSUERS_FILE.read_text(encoding="utf-8").splitlines()
    bodies = [tuple(line.split()) for line in lines if line.strip() and not line.startswith("#")]
    return {names[0]: names for names in bodies}


ISSUING_BODIES = tuple(issuer_names())
# How a document's issuer ends where its title or first lines name it (ingest/load.py reads the issuer
# from there). Generic endings (局, 厅, 党组) belong here but would be meaningless as a question's scope;
# a longer name comes before its own prefix (金融监管局党组 before 金融监管局), as a regex alternation
# takes the first that matches.
ISSUER_NAME_ENDINGS = (
    "国务院",
    "人民政府",
    "人民银行",
    "银保监局",
    "证监局",
    "金融监管局党组",
    "地方金融监管局",
    "金融监管局",
    "监管局",
    "金融办",
    "委员会",
    "党组",
    "党委",
    "办公厅",
    "办公室",
    "厅",
    "市局",
    "局",
)

# A year as these reports write it: 19xx or 20xx, not part of a longer number.
YEAR = re.compile(r"(?<![0-9])((?:19|20)[0-9]{2})(?![0-9])")


def years_named(text: str) -> tuple[str, ...]:
    """The years ``text`` names as years ("2022年"), in order, once each; a bare number is not a year."""
    return tuple(
        dict.fromkeys(m[1] for m in YEAR.finditer(text) if text[m.end() :].lstrip().startswith("年"))
    )


def issuer_mentions(text: str) -> list[tuple[str, int, int]]:
    """(body, start, end) of each issuing body ``text`` names, by any of its names, in order; a name
    inside a longer name (金融监管局 in 地方金融监管局, 税务局 in 国家税务总局) counts once, as the longer."""
    found = sorted(
        (
            (body, m.start(), m.end())
            for body, names in issuer_names().items()
            for name in names
            for m in re.finditer(re.escape(name), text)
        ),
        key=lambda f: (f[1], -f[2]),  # leftmost first, then longest
    )
    mentions: list[tuple[str, int, int]] = []
    for body, start, end in found:
        if mentions and start < mentions[-1][2]:
            continue  # inside the longer name before it
        mentions.append((body, start, end))
    return mentions


def issuers_named(text: str) -> tuple[str, ...]:
    """The issuing bodies ``text`` names (by any of their names), in order, once each; one named only
    inside another's name (金融监管局 in 地方金融监管局) is not named."""
    return tuple(dict.fromkeys(body for body, _, _ in issuer_mentions(text)))


def without_issuers(text: str) -> str:
    """``text`` with every name of an issuing body blanked out (a space each): a body names no subject."""
    for _, start, end in reversed(issuer_mentions(text)):
        text = f"{text[:start]} {text[end:]}"
    return text
