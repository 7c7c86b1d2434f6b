"""Chinese word tokens for BM25: jieba search-mode cut with a domain dictionary and stopwords.

The same function tokenizes passages at ingest and questions at query time, so both sides agree.
Anonymisation marks (``*``) and punctuation never become tokens.

jieba's dictionary (half a million words and prefixes, with the domain words added) is written once to a
SQLite file under the cache folder (``FrozenWords``) and read a word at a time: loading it whole costs most
of a second on every start, while a question needs a few dozen of its entries. The words, frequencies and
total are jieba's own, so the tokens are exactly those of a fully loaded jieba.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterable
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path

import jieba

from .fsutil import atomic_target
from .settings import default_cache_dir

_WORDLIKE = re.compile(r"[\w\u4e00-\u9fff]")
FROZEN_VERSION = 1  # bump when the frozen file's layout changes


class FrozenWords:
    """jieba's word frequencies (``Tokenizer.FREQ``) in SQLite, looked up one word at a time and remembered.

    It answers what jieba asks of ``FREQ`` (``in``, ``[]``, ``get``); it is safe to share between threads.
    """

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        self._known: dict[str, int | None] = {}
        self.total = int(self._meta("total"))

    def _meta(self, key: str) -> str:
        with self._lock:
            return self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def tags(self) -> dict[str, str]:
        """The part-of-speech tags the domain dictionary gives its words (for ``jieba.posseg``)."""
        with self._lock:
            return dict(self._db.execute("SELECT word, tag FROM tags"))

    def read_all(self) -> dict[str, int]:
        """Every word and frequency as a plain dict: cheaper than word by word for many texts."""
        with self._lock:
            return dict(self._db.execute("SELECT word, freq FROM words"))

    def get(self, word: str, default: int | None = None) -> int | None:
        try:
            freq = self._known[word]
        except KeyError:
            with self._lock:
                row = self._db.execute("SELECT freq FROM words WHERE word = ?", (word,)).fetchone()
            freq = self._known[word] = None if row is None else row[0]
        return default if freq is None else freq

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.get(word) is not None

    def __getitem__(self, word: str) -> int:
        freq = self.get(word)
        if freq is None:
            raise KeyError(word)
        return freq


def _userdict() -> bytes:
    return (resources.files("zhiwen.core") / "data" / "userdict.txt").read_bytes()


def frozen_path(cache_dir: Path | None = None) -> Path:
    """Where the frozen dictionary lives: named by jieba's version, the domain dictionary and the layout."""
    key = hashlib.sha256(f"{metadata.version('jieba')}/{FROZEN_VERSION}/".encode() + _userdict()).hexdigest()[
        :16
    ]
    return Path(cache_dir or default_cache_dir()) / "jieba" / f"words-{key}.sqlite"


def _loaded_tokenizer() -> jieba.Tokenizer:
    """jieba with its whole dictionary in memory plus the domain dictionary: what ``FrozenWords`` freezes."""
    tok = new_tokenizer()
    with resources.as_file(resources.files("zhiwen.core") / "data" / "userdict.txt") as userdict:
        tok.load_userdict(str(userdict))
    return tok


def freeze_dictionary(tok: jieba.Tokenizer, path: Path) -> None:
    """Write the words, frequencies and domain tags of the loaded jieba ``tok`` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        db = sqlite3.connect(tmp)
        with db:
            db.execute("CREATE TABLE words (word TEXT PRIMARY KEY, freq INTEGER NOT NULL) WITHOUT ROWID")
            db.execute("CREATE TABLE tags (word TEXT PRIMARY KEY, tag TEXT NOT NULL) WITHOUT ROWID")
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.executemany("INSERT INTO words VALUES (?, ?)", tok.FREQ.items())
            db.executemany("INSERT INTO tags VALUES (?, ?)", tok.user_word_tag_tab.items())
            db.execute("INSERT INTO meta VALUES ('total', ?)", (str(tok.total),))
        db.close()


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
    jieba.setLogLevel(logging.WARNING)
    path = frozen_path()
    try:
        frozen = path.exists()
    except OSError:  # a cache folder this user may not even look into (another user's home)
        return _loaded_tokenizer()
    if not frozen:
        tok = _loaded_tokenizer()
        try:
            freeze_dictionary(tok, path)
        except (OSError, sqlite3.Error):  # a read-only cache: this process keeps the loaded dictionary
            return tok
    try:
        words = FrozenWords(path)
    except (OSError, sqlite3.Error):  # there but unreadable to this user
        return _loaded_tokenizer()
    tok = jieba.Tokenizer()
    tok.FREQ, tok.total = words, words.total
    tok.user_word_tag_tab = words.tags()
    tok.initialized = True  # jieba would otherwise load its whole dictionary over FREQ
    return tok


@lru_cache(maxsize=1)
def domain_words() -> frozenset[str]:
    """The words of the domain dictionary (新市民, 普惠金融, 银保监局): the reports' own terms."""
    text = (resources.files("zhiwen.core") / "data" / "userdict.txt").read_text(encoding="utf-8")
    return frozenset(line.split()[0] for line in text.splitlines() if line.strip())


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    text = (resources.files("zhiwen.core") / "data" / "stopwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def tokenize_many(texts: Iterable[str]) -> list[list[str]]:
    """``tokenize`` for many texts (an index's chunks): the whole dictionary is read into memory first,
    and a text that repeats (boilerplate, a re-used article) is cut once."""
    tok = domain_tokenizer()
    if isinstance(tok.FREQ, FrozenWords):
        tok.FREQ = tok.FREQ.read_all()
    cut: dict[str, list[str]] = {}
    return [cut[text] if text in cut else cut.setdefault(text, tokenize(text)) for text in texts]


def tokenize(text: str) -> list[str]:
    """Words of ``text`` for BM25: jieba search-mode tokens, lower-cased, without stopwords or punctuation."""
    stop = stopwords()
    return [
        word
        for word in (w.strip().lower() for w in domain_tokenizer().cut_for_search(text))
        if word and word not in stop and _WORDLIKE.search(word)
    ]
