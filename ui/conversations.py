"""Chat-window conversations kept on the server, one folder per user, so history survives a reload.

A conversation is a plain dict, stored as ``<data_dir>/conversations/<user key>/<id>.json`` (written
atomically): ``messages`` is the conversation as OpenAI-style turns (``{"role": "user"|"assistant",
"content": text}``, plain text, what a follow-up question needs) and ``answers`` holds, for each
assistant message in order, what that answer was: its question, the ``Answer`` as a dict (citations
included), each citation's position label, the filters it was asked with and the 👍/👎 given to it
(``feedback``: "up", "down" or absent). Feedback, the sources panel and export read a turn's own record,
never whichever answer came last. Ratings are written to the saved file alone (``ConversationStore.rate``)
and ``save`` keeps them, so a rating and an answer arriving at once never undo each other.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

from zhiwen.core.fsutil import atomic_write_text
from zhiwen.core.types import Answer, Citation, Hit, Refusal

LOCAL_USER = "local"  # everyone, when the chat window has no login
TITLE_CHARS = 24
MAX_TITLE_CHARS = 60  # a name the user gives a conversation
RATINGS = {"up": "Like", "down": "Dislike"}  # a stored rating and the chat window's feedback value
_ID = re.compile(r"^[0-9a-f]{32}$")

Conversation = dict[str, Any]


def new_conversation() -> Conversation:
    """An empty conversation with a fresh id (saved once it has an answer)."""
    now = _now()
    return {
        "id": uuid.uuid4().hex,
        "title": "",
        "created": now,
        "updated": now,
        "messages": [],
        "answers": [],
    }


def blank_conversation() -> Conversation:
    """A conversation with no id yet (``ZhiwenApp.chat`` gives it one on the first question): the chat
    window's starting value, the same for every browser session, so sessions never share an id."""
    return {**new_conversation(), "id": ""}


def add_turn(
    conversation: Conversation,
    question: str,
    answer: Answer,
    positions: dict[int, str],
    filters: dict[str, Any],
) -> Conversation:
    """``conversation`` with one more question and its answer (a new dict; the old one is untouched)."""
    record = {
        "question": question,
        "answer": answer.to_dict(),
        "positions": {str(n): label for n, label in positions.items()},
        "filters": filters,
    }
    return {
        **conversation,
        "title": conversation["title"] or question[:TITLE_CHARS],
        "updated": _now(),
        "messages": [
            *conversation["messages"],
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer.answer},
        ],
        "answers": [*conversation["answers"], record],
    }


def turn_of_message(conversation: Conversation, message_index: int) -> int | None:
    """The answer number of chat message ``message_index``: messages alternate question, answer, so
    message ``2t`` is question ``t`` and ``2t + 1`` its answer; None when there is no such turn."""
    turn = message_index // 2
    return turn if 0 <= message_index and turn < len(conversation["answers"]) else None


def feedback_values(conversation: Conversation) -> list[str | None]:
    """The 👍/👎 of each answer, as the chat window shows them ("Like", "Dislike" or None)."""
    return [RATINGS.get(record.get("feedback", "")) for record in conversation["answers"]]


def renamed(conversation: Conversation, title: str) -> Conversation:
    """``conversation`` under the name ``title`` (its turns untouched); ``ValueError`` when the name
    is empty or longer than ``MAX_TITLE_CHARS``."""
    title = " ".join(title.split())
    if not title:
        raise ValueError("请输入对话的新名称。")
    if len(title) > MAX_TITLE_CHARS:
        raise ValueError(f"名称太长：{len(title)} 个字符，最多 {MAX_TITLE_CHARS} 个。")
    return {**conversation, "title": title}


def answer_from_dict(data: dict[str, Any]) -> Answer:
    """The ``Answer`` that ``Answer.to_dict`` wrote (keys it does not know are ignored)."""

    def build(cls: type, values: dict[str, Any]) -> Any:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    return Answer(
        answer=data["answer"],
        mode=data.get("mode", "extractive"),
        citations=tuple(build(Citation, c) for c in data.get("citations", [])),
        related=tuple(build(Hit, h) for h in data.get("related", [])),
        warnings=tuple(data.get("warnings", [])),
        refusal=build(Refusal, data["refusal"]) if data.get("refusal") else None,
    )


class ConversationStore:
    """Each user's saved conversations under ``folder`` (``<data_dir>/conversations``).

    Users are kept apart by folder: a user's key is a hash of the login name, so a name never becomes
    a path, and an id from the browser is accepted only in the 32-hex-digit form ``new_conversation``
    makes, and only looked up inside that user's folder.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._lock = threading.Lock()  # a save and a rating of one conversation read, then write, its file

    def _user_dir(self, user: str | None) -> Path:
        key = hashlib.sha256((user or LOCAL_USER).encode()).hexdigest()[:16]
        return self.folder / key

    def _path(self, user: str | None, conversation_id: str) -> Path | None:
        return self._user_dir(user) / f"{conversation_id}.json" if _ID.match(conversation_id or "") else None

    def save(self, user: str | None, conversation: Conversation) -> Conversation:
        """Write ``conversation`` (replacing its earlier version) in one step, keeping the ratings saved
        with its answers; returns what was written."""
        path = self._path(user, conversation["id"])
        if path is None:
            raise ValueError(f"conversation id {conversation['id']!r} is not 32 hex digits")
        with self._lock:
            saved = self.load(user, conversation["id"]) or {"answers": []}
            ratings = [record.get("feedback") for record in saved["answers"]]
            answers = [
                {k: v for k, v in record.items() if k != "feedback"}
                | ({"feedback": ratings[turn]} if turn < len(ratings) and ratings[turn] else {})
                for turn, record in enumerate(conversation["answers"])
            ]
            conversation = {**conversation, "answers": answers}
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(conversation, ensure_ascii=False))
        return conversation

    def rate(self, user: str | None, conversation_id: str, turn: int, rating: str | None) -> bool:
        """Keep ``rating`` ("up", "down", or None to take it back) with answer ``turn`` of the saved
        conversation; False when there is no such conversation or answer."""
        path = self._path(user, conversation_id)
        with self._lock:
            saved = self.load(user, conversation_id)
            if path is None or saved is None or not 0 <= turn < len(saved["answers"]):
                return False
            record = {k: v for k, v in saved["answers"][turn].items() if k != "feedback"}
            saved["answers"][turn] = record | ({"feedback": rating} if rating else {})
            atomic_write_text(path, json.dumps(saved, ensure_ascii=False))
        return True

    def load(self, user: str | None, conversation_id: str) -> Conversation | None:
        """The user's conversation ``conversation_id``; None when it does not exist or is unreadable."""
        path = self._path(user, conversation_id)
        if path is None or not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def delete(self, user: str | None, conversation_id: str) -> None:
        """Remove the user's conversation ``conversation_id`` for good (nothing when there is none)."""
        path = self._path(user, conversation_id)
        if path is not None:
            path.unlink(missing_ok=True)

    def for_user(self, user: str | None) -> list[Conversation]:
        """The user's conversations, newest first (unreadable files are skipped)."""
        folder = self._user_dir(user)
        found = [self.load(user, p.stem) for p in folder.glob("*.json")] if folder.is_dir() else []
        return sorted((c for c in found if c), key=lambda c: c["updated"], reverse=True)


def history_label(conversation: Conversation) -> str:
    """How a conversation is listed: its first question and when it last changed."""
    when = datetime.fromisoformat(conversation["updated"]).strftime("%m-%d %H:%M")
    return f"{conversation['title'] or '新对话'} · {when}"


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")
