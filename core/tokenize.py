"""Chinese word tokens for BM25: jieba search-mode cut with a domain dictionary and stopwords.

The same function tokenizes passages at ingest and questions at query time, so both sides agree.
Anonymisation marks (``*``) and punctuation never become tokens.

jieba's dictionary (half a million words and prefixes, with the domain words added) is written once to a
SQLite file under the cache folder (``FrozenWords``) and read a word at a time: loading it whole costs most
of a second on every start, while a question needs a few dozen of its entries. The words, frequencies and
total are jieba's own, so the tokens are exactly those of a fully loaded jieba. The same file holds jieba's
general dictionary without the domain words (``general_tokenizer``, for how specific a word is in general
Chinese) and the part-of-speech tag of every word (``domain_tagger``, jieba.posseg's tags without importing
jieba.posseg, which reads the whole dictionary and its HMM tables on import).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import jieba

from .fsutil import atomic_target
from .settings import default_cache_dir

_WORDLIKE = re.compile(r"[\w\u4e00-\u9fff]")
FROZEN_VERSION = 2  # bump when the frozen file's layout changes


class FrozenTable:
    """One table of the frozen dictionary (word -> frequency, or word -> tag), looked up a word at a time
    and remembered. It answers what jieba asks of a dict (``in``, ``[]``, ``get``); it is safe to share
    between threads."""

    TABLES = ("words", "general", "tags")

    def __init__(self, path: Path, table: str = "words") -> None:
        if table not in self.TABLES:
            raise ValueError(f"no table {table!r} in the frozen dictionary; one of {self.TABLES}")
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        self._known: dict[str, Any] = {}
        self._table = table

    def _meta(self, key: str) -> str:
        with self._lock:
            return self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def read_all(self) -> dict[str, Any]:
        """Every word and value as a plain dict: cheaper than word by word for many texts."""
        with self._lock:
            return dict(self._db.execute(f"SELECT word, value FROM {self._table}"))  # a table of TABLES

    def get(self, word: str, default: Any = None) -> Any:
        try:
            value = self._known[word]
        except KeyError:
            with self._lock:
                row = self._db.execute(
                    f"SELECT value FROM {self._table} WHERE word = ?",  # a table of TABLES
                    (word,),
                ).fetchone()
            value = self._known[word] = None if row is None else row[0]
        return default if value is None else value

    def close(self) -> None:
        self._db.close()

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.get(word) is not None

    def __getitem__(self, word: str) -> Any:
        value = self.get(word)
        if value is None:
            raise KeyError(word)
        return value


class FrozenWords(FrozenTable):
    """jieba's word frequencies (``Tokenizer.FREQ``) and their ``total``: the domain tokenizer's
    (``words``) or jieba's general dictionary alone (``general``)."""

    def __init__(self, path: Path, table: str = "words") -> None:
        super().__init__(path, table)
        self.total = int(self._meta(f"{table}_total"))


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


def _loaded_general() -> jieba.Tokenizer:
    """jieba with its own dictionary only, whole in memory: the general language, without the domain words."""
    tok = new_tokenizer()
    tok.initialize()
    return tok


def _word_tags(tok: jieba.Tokenizer) -> dict[str, str]:
    """The tag jieba.posseg gives each word over the loaded ``tok``: its dictionary's, then the domain's."""
    tags = {}
    with tok.get_dict_file() as lines:
        for line in lines:
            if line := line.strip().decode("utf-8"):
                word, _, tag = line.split(" ")
                tags[word] = tag
    return tags | tok.user_word_tag_tab


def freeze_dictionary(tok: jieba.Tokenizer, general: jieba.Tokenizer, path: Path) -> None:
    """Write the words and frequencies of the loaded jieba ``tok`` (with the domain dictionary) and of
    ``general`` (without it), and every word's part-of-speech tag, to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as tmp:
        db = sqlite3.connect(tmp)
        with db:
            for table, kind in (("words", "INTEGER"), ("general", "INTEGER"), ("tags", "TEXT")):
                db.execute(
                    f"CREATE TABLE {table} (word TEXT PRIMARY KEY, value {kind} NOT NULL) WITHOUT ROWID"
                )
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.executemany("INSERT INTO words VALUES (?, ?)", tok.FREQ.items())
            db.executemany("INSERT INTO general VALUES (?, ?)", general.FREQ.items())
            db.executemany("INSERT INTO tags VALUES (?, ?)", _word_tags(tok).items())
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("words_total", str(tok.total)), ("general_total", str(general.total))],
            )
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
def _frozen() -> Path | None:
    """The frozen dictionary, written on first use; None when this user can neither read nor write it
    (callers then load jieba's dictionaries whole, with the same results)."""
    jieba.setLogLevel(logging.WARNING)
    path = frozen_path()
    try:
        if not path.exists():
            freeze_dictionary(_loaded_tokenizer(), _loaded_general(), path)
        FrozenWords(path).close()  # readable by this user
    except (OSError, sqlite3.Error):  # a cache folder this user may not look into, write or read
        return None
    return path


def _frozen_tokenizer(words: FrozenWords) -> jieba.Tokenizer:
    tok = jieba.Tokenizer()
    tok.FREQ, tok.total = words, words.total
    tok.initialized = True  # jieba would otherwise load its whole dictionary over FREQ
    return tok


@lru_cache(maxsize=1)
def domain_tokenizer() -> jieba.Tokenizer:
    """jieba with the domain dictionary (``data/userdict.txt``), shared by BM25 and question analysis."""
    path = _frozen()
    return _loaded_tokenizer() if path is None else _frozen_tokenizer(FrozenWords(path, "words"))


@lru_cache(maxsize=1)
def general_tokenizer() -> jieba.Tokenizer:
    """jieba with its own dictionary only: word frequencies of general Chinese (the domain words' are
    made up)."""
    path = _frozen()
    return _loaded_general() if path is None else _frozen_tokenizer(FrozenWords(path, "general"))


class Tagger:
    """Words with part-of-speech tags, exactly as ``jieba.posseg.POSTokenizer(tok).cut(text, HMM=False)``
    gives them, from a word -> tag table (jieba's own tags, then the domain dictionary's)."""

    _BLOCK = re.compile(r"([\u4E00-\u9FD5a-zA-Z0-9+#&\._]+)")  # jieba.posseg's own patterns
    _SPACE = re.compile(r"(\r\n|\s)")
    _DIGITS = re.compile(r"[\.0-9]+")
    _LATIN = re.compile(r"[a-zA-Z0-9]+")
    _LATIN_CHAR = re.compile(r"^[a-zA-Z0-9]$")

    def __init__(self, tok: jieba.Tokenizer, tags: FrozenTable | dict[str, str]) -> None:
        self.tok = tok
        self.tags = tags

    def cut(self, text: str) -> Iterator[tuple[str, str]]:
        for block in self._BLOCK.split(text):
            if self._BLOCK.match(block):
                yield from self._cut_block(block)
                continue
            for part in self._SPACE.split(block):
                if self._SPACE.match(part):
                    yield part, "x"
                    continue
                for char in part:
                    yield char, "m" if self._DIGITS.match(char) else "eng" if self._LATIN.match(part) else "x"

    def _cut_block(self, block: str) -> Iterator[tuple[str, str]]:
        route: dict[int, tuple[float, int]] = {}
        self.tok.calc(block, self.tok.get_DAG(block), route)
        at, latin = 0, ""
        while at < len(block):
            end = route[at][1] + 1
            word = block[at:end]
            if self._LATIN_CHAR.match(word):
                latin += word
            else:
                if latin:
                    yield latin, "eng"
                    latin = ""
                yield word, self.tags.get(word, "x")
            at = end
        if latin:
            yield latin, "eng"


@lru_cache(maxsize=1)
def domain_tagger() -> Tagger:
    """Part-of-speech tags over the domain tokenizer (for a question's nouns)."""
    path = _frozen()
    tok = domain_tokenizer()
    return Tagger(tok, _word_tags(tok) if path is None else FrozenTable(path, "tags"))


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
