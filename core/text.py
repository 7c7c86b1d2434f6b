"""Text utilities shared by the splitter, the answers and the LLM checks: sentences, bigrams, hashes."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from functools import lru_cache

SENTENCE_BREAKS = "。！？；!?;"  # what ends a sentence in these reports
CLOSERS = "”’」』）)"  # closing quotes and brackets that belong to the sentence before them
# The end of a sentence: its punctuation and any closing quotes after it.
SENTENCE_END = re.compile(f"[{SENTENCE_BREAKS}]+[{CLOSERS}]*")
# A heading sentence also ends at a colon ("一、总体情况：…").
HEADING_SENTENCE_END = re.compile(f"[{SENTENCE_BREAKS}：:]+[{CLOSERS}]*")
_NOT_WORDLIKE = re.compile(r"[\s\W_*]+")


@lru_cache(maxsize=4)
def _sentence_pattern(breaks: str) -> re.Pattern[str]:
    chars = re.escape(breaks)
    return re.compile(f"[^{chars}]*[{chars}]?")


def sentences(text: str, breaks: str = SENTENCE_BREAKS) -> Iterator[re.Match[str]]:
    """Matches of ``text``'s sentences in order, each with its closing mark (an empty match at the end).

    ``breaks`` are the characters that end a sentence; add ``"\\n"`` for text where a line is a sentence.
    """
    return _sentence_pattern(breaks).finditer(text)


def char_bigrams(text: str) -> set[str]:
    """Character bigrams of ``text`` without spaces, punctuation and ``*`` (for near-duplicate tests)."""
    plain = _NOT_WORDLIKE.sub("", text)
    return {plain[i : i + 2] for i in range(len(plain) - 1)} or {plain}


def sha256_text(text: str) -> str:
    """The hex sha256 of ``text``'s UTF-8 bytes: content hashes and embedding-cache keys."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_ASCII_PAIR = re.compile(r'"([^"\n]*)"')
_HAN = re.compile(r"[\u4e00-\u9fff]")


def curly_quotes(text: str) -> str:
    """``text`` with Chinese words in ASCII double quotes ("浦江经验") quoted as the reports quote them
    (“浦江经验”): a question quotes a name the same way whichever keyboard typed it. The marks pair in
    order ("1+N"模式里的"N" quotes 1+N and N, not the words between); English text stays as typed."""
    return _ASCII_PAIR.sub(r"“\1”", text) if _HAN.search(text) else text
