"""Tokenise a question without loading the model's whole vocabulary.

The e5 tokenizer (XLM-R's SentencePiece unigram model: 250,002 pieces in ``tokenizer.json``) takes most
of a second to load, longer than embedding a question. A unigram tokenizer can only use pieces that occur
inside the text's words, so ``PieceTokenizer`` looks those up in a SQLite copy of the vocabulary and
builds a ``tokenizers`` unigram model of just them, with the original normaliser, pre-tokeniser, special
tokens and post-processor: the same ids as the full tokenizer, in milliseconds. The copy is written once
beside ``tokenizer.json`` (``write_pieces``). Many texts (passages) are better served by the full
tokenizer, which is faster per text once loaded.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from .fsutil import atomic_target

PIECES_FILE = "pieces.sqlite"
PIECES_VERSION = 1
_SQL_VARIABLES = 500


def write_pieces(folder: Path) -> Path:
    """Write ``folder/pieces.sqlite`` from ``folder/tokenizer.json``: every piece with its id and score,
    and the tokenizer's other parts (normaliser, pre-tokeniser, special tokens) as a template."""
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    model = spec["model"]
    if model.get("type") != "Unigram":
        raise ValueError(f"{folder / 'tokenizer.json'}: a {model.get('type')} model, not a unigram one")
    vocab = model["vocab"]
    target = folder / PIECES_FILE
    with atomic_target(target) as tmp:
        db = sqlite3.connect(tmp)
        with db:
            db.execute("CREATE TABLE pieces (piece TEXT PRIMARY KEY, id INTEGER, score REAL) WITHOUT ROWID")
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.executemany(
                "INSERT OR IGNORE INTO pieces VALUES (?, ?, ?)",
                ((piece, i, score) for i, (piece, score) in enumerate(vocab)),
            )
            template = {**spec, "model": {**model, "vocab": []}}
            lowest = min(range(len(vocab)), key=lambda i: vocab[i][1])
            meta = {
                "version": PIECES_VERSION,
                "template": template,
                "longest": max(len(piece) for piece, _ in vocab),
                "lowest_piece": vocab[lowest][0],  # the unknown-piece penalty counts from the lowest score
                "size": len(vocab),
            }
            db.executemany("INSERT INTO meta VALUES (?, ?)", ((k, json.dumps(v)) for k, v in meta.items()))
        db.close()
    return target


class PieceTokenizer:
    """``encode_batch`` of a ``tokenizers.Tokenizer``, over the pieces the texts can use (see module doc)."""

    def __init__(self, path: Path, max_length: int) -> None:
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        meta = {key: json.loads(value) for key, value in self._db.execute("SELECT key, value FROM meta")}
        if meta.get("version") != PIECES_VERSION:
            raise ValueError(f"{path}: pieces version {meta.get('version')}, expected {PIECES_VERSION}")
        self.template = meta["template"]
        self.longest = int(meta["longest"])
        self.max_length = max_length
        # Always in the small vocabulary: the special tokens and the lowest-scoring piece.
        fixed = [token["content"] for token in self.template["added_tokens"]] + [meta["lowest_piece"]]
        self.fixed = self._lookup(set(fixed))
        self._splitter = Tokenizer.from_str(json.dumps(self._spec(self.fixed)[0]))

    def _spec(self, rows: list[tuple[str, int, float]]) -> tuple[dict, list[int]]:
        """A tokenizer spec over ``rows`` (piece, id, score), and the original id of each of its ids."""
        rows = sorted(set(rows), key=lambda row: row[1])
        position = {row[1]: i for i, row in enumerate(rows)}
        model = {**self.template["model"], "vocab": [[piece, score] for piece, _, score in rows]}
        model["unk_id"] = position[self.template["model"]["unk_id"]]
        added = [{**token, "id": position[token["id"]]} for token in self.template["added_tokens"]]
        return {**self.template, "model": model, "added_tokens": added}, [row[1] for row in rows]

    def _candidates(self, text: str) -> set[str]:
        """Every substring of the text's words a piece could be, with and without the word-start mark."""
        normalized = self._splitter.normalizer.normalize_str(text)
        words = [word for word, _ in self._splitter.pre_tokenizer.pre_tokenize_str(normalized)]
        mark = self.template["pre_tokenizer"].get("replacement", "▁")
        found: set[str] = set()
        for word in words:
            for start in range(len(word)):
                for end in range(start + 1, min(len(word), start + self.longest) + 1):
                    found.add(word[start:end])
                    found.add(mark + word[start:end])
        return found

    def _lookup(self, pieces: set[str]) -> list[tuple[str, int, float]]:
        wanted = list(pieces)
        rows: list[tuple[str, int, float]] = []
        with self._lock:
            for start in range(0, len(wanted), _SQL_VARIABLES):
                batch = wanted[start : start + _SQL_VARIABLES]
                rows += self._db.execute(
                    f"SELECT piece, id, score FROM pieces WHERE piece IN ({','.join('?' * len(batch))})",
                    batch,
                ).fetchall()
        return rows

    def encode_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids the full tokenizer gives each text (truncated to ``max_length``)."""
        pieces = set().union(*(self._candidates(text) for text in texts)) if texts else set()
        spec, original = self._spec(self._lookup(pieces) + self.fixed)
        tokenizer = Tokenizer.from_str(json.dumps(spec))
        tokenizer.enable_truncation(max_length=self.max_length)
        return [[original[i] for i in encoding.ids] for encoding in tokenizer.encode_batch(list(texts))]
