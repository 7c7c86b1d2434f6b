"""Question understanding: what kind of answer a question wants, and from which part of a report.

Work reports have a fixed shape (work done, problems, plans), and the same topic appears in all three:
"小微企业融资难" is a problem in one section, a measure in another and a plan in a third. A question says
which one it wants through a few cue words ("做了哪些", "存在哪些问题", "下一步"), so the answer composer
asks ``understand`` first and then quotes passages of the right section role. Pure rules over the cue
words in ``core/data/question_cues.txt``: deterministic, fast, no model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

from zhiwen.core.vocab import issuers_named, without_issuers, years_named

Intent = Literal["list", "fact", "problem", "plan", "definition"]
Facet = Literal["done", "problem", "plan", "any"]

# When a question has cues of several intents, the first of these present wins: a plan or a definition
# is asked for explicitly ("下一步的五个强化是什么" is a plan), a figure ("查出多少问题") is precise,
# and "哪些" (list) is the vaguest of all.
INTENT_ORDER: tuple[Intent, ...] = ("plan", "definition", "fact", "problem", "list")
# The section role a correct answer comes from. Figures and names are reported with the work done
# (eval/data/answers.jsonl labels every fact question "done"); a term is defined wherever it appears.
FACET_OF: dict[Intent, Facet] = {
    "list": "done",
    "fact": "done",
    "problem": "problem",
    "plan": "plan",
    "definition": "any",
}
FILLERS = ("leading", "trailing")  # words of no intent, trimmed from the topic
UNMATCHED = ("generic", "aspect")  # sections read as word lists, never matched as cues in a question
SECTIONS = (*INTENT_ORDER, "measures", *FILLERS, *UNMATCHED)

_CUE = re.compile(r"[\w'+\-]+")  # \w includes Chinese characters
_LATIN = re.compile(r"[A-Za-z]")
_CJK = re.compile(r"[\u4e00-\u9fff]")
# Topic pieces: runs of letters, digits and CJK, keeping "*" (anonymisation marks) and "1+N"-style joins.
_PIECE = re.compile(r"[\w*+]+")


class CueFileError(ValueError):
    """A line of a cue file that cannot be read; the message names the file and the line."""


@dataclass(frozen=True)
class QuestionIntent:
    """What a question asks for. ``facet`` is the section role a correct answer comes from;
    ``wants_measures`` means "how to solve it": measures taken and plans, never the problem itself."""

    intent: Intent
    facet: Facet
    wants_measures: bool
    years: tuple[str, ...]
    issuers: tuple[str, ...]
    topic: str
    english: bool


def cue_file() -> Traversable:
    """The cue file shipped with the ``zhiwen.core`` package."""
    return resources.files("zhiwen.core") / "data" / "question_cues.txt"


def load_cues(path: Path | Traversable) -> dict[str, str]:
    """The cues of a cue file, each mapped to its section; a bad line raises ``CueFileError``.

    Cues are lower-cased and "_" becomes a space, so "what_measures" matches "What measures".
    """
    cues: dict[str, str] = {}
    section = ""
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        where = f"{path}:{number}"
        if not line:
            continue
        if line.startswith("["):
            section = line[1:-1].strip() if line.endswith("]") else ""
            if section not in SECTIONS:
                raise CueFileError(f"{where}: {line!r} is not one of the sections {', '.join(SECTIONS)}")
            continue
        if not section:
            raise CueFileError(f"{where}: cue before the first [section] line")
        for word in line.split():
            if not _CUE.fullmatch(word):
                raise CueFileError(f"{where}: {word!r} is not a cue (letters, digits, _ - ' + only)")
            cue = word.lower().replace("_", " ")
            if cue in cues and cues[cue] != section:
                raise CueFileError(f"{where}: {word!r} is already a cue of [{cues[cue]}]")
            cues[cue] = section
    return cues


@dataclass(frozen=True)
class _Matcher:
    chinese: re.Pattern[str]
    english: re.Pattern[str]
    section_of: dict[str, str]
    leading: tuple[str, ...]  # longest first, so "今年以来" is trimmed before "今年"
    trailing: tuple[str, ...]

    def cues(self, question: str) -> list[re.Match[str]]:
        """The cues in ``question``; where cues overlap, the longest (alternatives are longest first)."""
        found = list(self.chinese.finditer(question))
        if _LATIN.search(question):
            found += self.english.finditer(question)
        return found


def _alternatives(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


@lru_cache(maxsize=1)
def _matcher() -> _Matcher:
    """The packaged cues as two regexes, Chinese cues anywhere and English ones as whole words."""
    cues = load_cues(cue_file())
    words = [c for c, s in cues.items() if s not in (*FILLERS, *UNMATCHED)]
    english = _alternatives([w for w in words if _LATIN.search(w)])
    return _Matcher(
        chinese=re.compile(_alternatives([w for w in words if not _LATIN.search(w)])),
        english=re.compile(rf"(?<![A-Za-z0-9])(?:{english})(?![A-Za-z0-9])", re.IGNORECASE),
        section_of=cues,
        leading=tuple(sorted((c for c, s in cues.items() if s == "leading"), key=len, reverse=True)),
        trailing=tuple(sorted((c for c, s in cues.items() if s == "trailing"), key=len, reverse=True)),
    )


def _trim(piece: str, matcher: _Matcher) -> str:
    """``piece`` without the words of no intent at its start or end ("那", "的", "方面"; "the")."""
    if _LATIN.search(piece):
        return "" if matcher.section_of.get(piece.lower()) in FILLERS else piece
    changed = True
    while changed:
        changed = False
        for word in matcher.leading:
            if piece.startswith(word):
                piece, changed = piece[len(word) :], True
        for word in matcher.trailing:
            if piece.endswith(word):
                piece, changed = piece[: -len(word)], True
    return piece


def understand(question: str) -> QuestionIntent:
    """What ``question`` asks for: its intent, the section role of its answer, its scope and its topic."""
    matcher = _matcher()
    spans = matcher.cues(question)
    found = {matcher.section_of[m[0].lower()] for m in spans}
    wants_measures = "measures" in found
    intent: Intent = next((i for i in INTENT_ORDER if i in found), "list")
    if wants_measures and intent == "problem":  # "问题怎么解决" asks for the solution, not the problem
        intent = "list"
    years, issuers = years_named(question), issuers_named(question)

    cue_chars = {i for m in spans for i in range(m.start(), m.end())}
    rest = "".join(" " if i in cue_chars else c for i, c in enumerate(question))
    for year in years:
        rest = rest.replace(f"{year}年", " ")
    rest = without_issuers(rest)
    pieces = (_trim(p, matcher) for p in _PIECE.findall(rest))

    latin, cjk = len(_LATIN.findall(question)), len(_CJK.findall(question))
    return QuestionIntent(
        intent=intent,
        facet=FACET_OF[intent],
        wants_measures=wants_measures,
        years=years,
        issuers=issuers,
        topic=" ".join(p for p in pieces if p),
        english=latin > 2 * cjk,  # a Chinese character carries about as much as a short English word
    )


@lru_cache(maxsize=1)
def cue_words() -> frozenset[str]:
    """Every Chinese cue of the cue file but the [aspect] words: words that say what a question wants,
    never what it is about."""
    return frozenset(
        cue
        for cue, section in load_cues(cue_file()).items()
        if not _LATIN.search(cue) and section != "aspect"
    )


@lru_cache(maxsize=1)
def aspect_words() -> frozenset[str]:
    """Words that ask about one side of a subject and never name it (目的, 成效, 氛围): the [aspect] section."""
    return frozenset(cue for cue, section in load_cues(cue_file()).items() if section == "aspect")


@lru_cache(maxsize=1)
def generic_words() -> frozenset[str]:
    """Words that name no particular subject in these reports (金融, 党组, 全市): the [generic] section,
    and the fillers trimmed from a topic (今年, 主要, 这些), wherever they stand in it."""
    return frozenset(
        cue for cue, section in load_cues(cue_file()).items() if section == "generic" or section in FILLERS
    )
