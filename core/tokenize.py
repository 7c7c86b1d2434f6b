"""Chinese word tokens for BM25: jieba search-mode cut with a domain dictionary and stopwords.

The same function tokenizes passages at ingest and questions at query time, so both sides agree.
Anonymisation marks (``*``) and punctuation never become tokens.
"""

from __future__ import annotations

import logging
import os
import re
from functools import lru_cache
from importlib import resources

import jieba

_WORDLIKE = re.compile(r"[\w\u4e00-\u9fff]")


def new_tokenizer() -> jieba.Tokenizer:
    """A quiet jieba tokenizer whose dictionary cache is this user's own file in the temporary folder.

    jieba's default cache, ``/tmp/jieba.cache``, is shared by every user: when another user made it, each
    start fails to replace it and prints a traceback (the search still works, slower).
    """
    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    tok.cache_file = f"jieba.u{os.getuid()}.cache"
    return tok


@lru_cache(maxsize=1)
def domain_tokenizer() -> jieba.Tokenizer:
    """jieba with the domain dictionary (``data/userdict.txt``), shared by BM25 and question analysis."""
    tok = new_tokenizer()
    with resources.as_file(resources.files("zhiwen.core") / "data" / "userdict.txt") as path:
        tok.load_userdict(str(path))
    return tok


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    text = (resources.files("zhiwen.core") / "data" / "stopwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def tokenize(text: str) -> list[str]:
    """Words of ``text`` for BM25: jieba search-mode tokens, lower-cased, without stopwords or punctuation."""
    stop = stopwords()
    return [
        word
        for word in (w.strip().lower() for w in domain_tokenizer().cut_for_search(text))
        if word and word not in stop and _WORDLIKE.search(word)
    ]
