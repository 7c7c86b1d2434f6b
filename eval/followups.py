"""Follow-up success: is the last question of a conversation answered from what it refers to?

``eval/data/followups.jsonl`` holds conversations over ``corpus/``: the user's turns (the last one a
follow-up: "第二项具体是什么？", "那保险业呢？"), its ``kind`` (ordinal, anaphora, subject_swap,
elliptical), how a person resolves it (``resolved``, for reading) and the gold spans that answer it, each
verbatim in its document. Each conversation is played the way a client plays it: every turn is asked
with the earlier turns as history (the user's questions and the answer texts Zhiwen gave), through
``zhiwen.retriever.answer.ask`` offline. The last turn succeeds when its answer is not refused and cites a
gold span: a citation of the same document sharing at least half of the shorter of the two. The baseline
asks the last turn alone, as Zhiwen did before it read conversations.

    zhiwen eval followups [--json] [--limit N]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm
from zhiwen.core.embed import Embedder
from zhiwen.core.settings import Settings
from zhiwen.core.types import Answer, Document
from zhiwen.retriever import Retriever
from zhiwen.retriever.followup import KINDS, Span

from .answers import _aligned, corpus_retriever, final_answer
from .datasets import GOLDEN_CORPUS, REPO, load_corpus, read_rows

FOLLOWUPS_PATH = REPO / "eval" / "data" / "followups.jsonl"


@dataclass(frozen=True)
class Conversation:
    """One row of ``followups.jsonl``."""

    qid: str
    turns: tuple[str, ...]
    kind: str
    resolved: str
    gold: tuple[Span, ...]
    note: str = ""


def load_followups(
    path: Path = FOLLOWUPS_PATH, documents: Sequence[Document] | None = None, limit: int | None = None
) -> list[Conversation]:
    """The conversations of ``path``, each gold span located in its document (``corpus/`` by default).

    Every problem is reported, one line each naming ``path:line``, in one ``DatasetError``.
    """
    texts = {d.doc_id: d.text for d in (load_corpus(GOLDEN_CORPUS) if documents is None else documents)}
    return read_rows(path, lambda row: _conversation(row, texts))[:limit]


def _conversation(row: Any, texts: dict[str, str]) -> Conversation:
    """One row as a ``Conversation``; raises ``TypeError`` or ``ValueError`` saying what is wrong."""
    if not isinstance(row, dict):
        raise TypeError("a row must be a JSON object")
    qid = row.get("qid")
    if not isinstance(qid, str) or not qid.strip():
        raise ValueError("field 'qid' must be a non-empty string")
    turns = row.get("turns")
    if (
        not isinstance(turns, list)
        or len(turns) < 2
        or not all(isinstance(t, str) and t.strip() for t in turns)
    ):
        raise ValueError(f"{qid}: 'turns' must be a list of at least two non-empty questions")
    if row.get("kind") not in KINDS:
        raise ValueError(f"{qid}: kind must be one of {', '.join(KINDS)}; got {row.get('kind')!r}")
    gold = []
    for i, item in enumerate(row.get("gold") or [], 1):
        if not isinstance(item, dict) or not isinstance(item.get("span"), str) or not item["span"]:
            raise ValueError(f"{qid}: gold {i} must be {{doc_id, span}} with a non-empty span")
        text = texts.get(item.get("doc_id"))
        if text is None:
            raise ValueError(f"{qid}: gold {i}: no document {item.get('doc_id')!r} in the corpus")
        start = text.find(item["span"])
        if start < 0:
            raise ValueError(f"{qid}: gold {i}: the span is not verbatim in {item['doc_id']}")
        gold.append(Span(item["doc_id"], start, start + len(item["span"])))
    if not gold:
        raise ValueError(f"{qid}: 'gold' needs at least one span")
    return Conversation(
        qid, tuple(turns), row["kind"], row.get("resolved", ""), tuple(gold), row.get("note", "")
    )


def cites_gold(answer: Answer, gold: Sequence[Span]) -> bool:
    """Whether ``answer`` is given (not refused) and one of its citations shares at least half of the
    shorter of itself and a gold span."""
    if answer.refused:
        return False
    return any(
        c.doc_id == g.doc_id
        and min(c.end, g.end) - max(c.start, g.start) >= min(c.end - c.start, g.end - g.start) / 2
        for c in answer.citations
        for g in gold
    )


def converse(turns: Sequence[str], retriever: Retriever) -> Answer:
    """The answer to the last of ``turns``, each earlier turn asked in order with the conversation so far
    (its question and the text of its answer) as history, as a chat client sends it."""
    history: list[dict[str, str]] = []
    for question in turns[:-1]:
        answer = final_answer(question, retriever, history)
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.answer}]
    return final_answer(turns[-1], retriever, history)


@dataclass(frozen=True)
class FollowupScore:
    """One conversation's last answer with the conversation, and the same question asked alone."""

    conversation: Conversation
    answer: Answer
    alone: Answer

    @property
    def success(self) -> bool:
        return cites_gold(self.answer, self.conversation.gold)

    @property
    def alone_success(self) -> bool:
        return cites_gold(self.alone, self.conversation.gold)

    def to_dict(self) -> dict[str, Any]:
        c = self.conversation
        return {
            "qid": c.qid,
            "kind": c.kind,
            "turns": list(c.turns),
            "success": self.success,
            "success_without_history": self.alone_success,
            "understood": self.answer.understood,
            "refused": self.answer.refused,
            "answer": self.answer.answer,
            "citations": [
                {"n": x.n, "doc_id": x.doc_id, "start": x.start, "end": x.end} for x in self.answer.citations
            ],
        }


def run_followups(
    settings: Settings,
    limit: int | None = None,
    index_root: Path | None = None,
    embedder: Embedder | None = None,
    progress: bool = True,
) -> tuple[list[FollowupScore], str]:
    """Play every conversation over an index of ``corpus/`` (shared with ``zhiwen eval answers``); the
    scores and the index summary."""
    documents = load_corpus(GOLDEN_CORPUS)
    conversations = load_followups(FOLLOWUPS_PATH, documents, limit)
    retriever, summary = corpus_retriever(settings, documents, index_root, embedder, progress)
    played = tqdm(conversations, desc="follow-ups", unit="conv", disable=not progress, file=sys.stderr)
    scores = [
        FollowupScore(c, converse(c.turns, retriever), final_answer(c.turns[-1], retriever)) for c in played
    ]
    return scores, summary


def by_kind(scores: Sequence[FollowupScore]) -> dict[str, dict[str, int]]:
    """Per kind (and ``all``): conversations, successes with and without history, last turns read as
    follow-ups."""
    table = {}
    for kind in (*KINDS, "all"):
        group = [s for s in scores if kind in (s.conversation.kind, "all")]
        if group:
            table[kind] = {
                "conversations": len(group),
                "success": sum(s.success for s in group),
                "success_without_history": sum(s.alone_success for s in group),
                "understood": sum(bool(s.answer.understood) for s in group),
            }
    return table


def summary_lines(scores: Sequence[FollowupScore], index_summary: str = "") -> list[str]:
    """Success with and without the conversation, per kind, then every conversation that failed."""
    header = ["kind", "n", "with history", "without history", "read as a follow-up"]
    rows = [
        [
            kind,
            str(row["conversations"]),
            *(
                _rate(row[key], row["conversations"])
                for key in ("success", "success_without_history", "understood")
            ),
        ]
        for kind, row in by_kind(scores).items()
    ]
    lines = [
        f"follow-ups: {len(scores)} conversations over corpus/"
        + (f" ({index_summary})" if index_summary else ""),
        "success: the last turn's answer is not refused and cites a gold span",
        "",
        *_aligned([header, *rows]),
    ]
    failed = [s for s in scores if not s.success]
    if failed:
        lines += ["", f"failures ({len(failed)}):"]
    for s in failed:
        c = s.conversation
        why = "refused" if s.answer.refused else "cites no gold span"
        lines.append(f"  {c.qid} {c.kind}: {' → '.join(c.turns)}  [{why}]")
        lines.append(f"      understood: {s.answer.understood or '(as asked)'}")
    return lines


def _rate(count: int, n: int) -> str:
    return f"{count}/{n} {count / n:.2f}"
