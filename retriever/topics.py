"""Topic coverage: financial terms of art a question names that the knowledge base never mentions.

A dense score cannot tell "存款准备金率下调了多少？" from an answerable paraphrase: both land near
passages about monetary and credit policy. A plain fact can: no document in the knowledge base says
存款准备金率 (or one of its aliases), so nothing in it can answer the question. The glossary
(``core/data/finance_terms.txt``, plus the files named by the ``glossary`` setting) lists terms of
art, one concept a line with its aliases; everyday words are deliberately left out, so paraphrases
("刚进城安家的人") never trip the check.

A question region is the stretch of the question covered by overlapping glossary matches
("不良贷款容忍度" also matches "不良贷款"); the region is covered when the knowledge base mentions
an alias of its longest term's concept: a text about 不良贷款 that never says 不良贷款容忍度 does
not answer a question about the tolerance. Refusal needs one uncovered region.

The built-in glossary was written blind (without sight of any question set); its last section holds
the few terms added from the golden set's negatives, the calibration set. ``eval/data/holdout.jsonl``
was not consulted for either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

BUILTIN = Path(str(resources.files("zhiwen.core") / "data" / "finance_terms.txt"))


class GlossaryError(ValueError):
    """A glossary file is missing or malformed; the message names the file and line."""


@dataclass(frozen=True)
class Glossary:
    concepts: tuple[tuple[str, ...], ...]  # canonical term first, then aliases
    index: dict[str, int]  # term -> concept number

    def matches(self, text: str) -> list[tuple[int, int, int]]:
        """(start, end, concept) of every glossary term occurring in ``text``, overlaps included."""
        found = []
        for term, concept in self.index.items():
            start = text.find(term)
            while start >= 0:
                found.append((start, start + len(term), concept))
                start = text.find(term, start + 1)
        return sorted(found)

    def aliases(self, term: str) -> tuple[str, ...]:
        """The other names of ``term``'s concept (empty when the glossary lacks it)."""
        concept = self.index.get(term)
        return () if concept is None else tuple(t for t in self.concepts[concept] if t != term)

    def uncovered(self, question: str, mentions: Callable[[str], bool]) -> list[str]:
        """The longest term, as the question words it, of each region the knowledge base lacks.

        ``mentions(term)`` says whether the knowledge base contains ``term`` verbatim.
        """
        regions: list[list[tuple[int, int, int]]] = []
        region_end = -1
        for match in self.matches(question):
            if match[0] < region_end:
                regions[-1].append(match)
            else:
                regions.append([match])
            region_end = max(region_end, match[1])
        missing = []
        for region in regions:
            length = max(end - start for start, end, _ in region)
            longest = [m for m in region if m[1] - m[0] == length]
            if not any(mentions(term) for _, _, c in longest for term in self.concepts[c]):
                missing.append(question[longest[0][0] : longest[0][1]])
        return list(dict.fromkeys(missing))


def parse(lines: Iterable[str], source: str) -> list[tuple[str, ...]]:
    concepts = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        terms = tuple(line.split())
        short = [t for t in terms if len(t) < 2]
        if short:
            raise GlossaryError(f"{source}:{number}: term {short[0]!r} is shorter than 2 characters")
        concepts.append(terms)
    return concepts


def glossary_from_settings(value: str) -> Glossary | None:
    """The glossary the ``glossary`` setting names ("builtin", extra files, comma separated); None when off."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        return None
    extra = tuple(n for n in names if n != "builtin")
    return load_glossary(extra, "builtin" in names)


@lru_cache(maxsize=8)
def load_glossary(extra: tuple[str, ...] = (), builtin: bool = True) -> Glossary:
    """The built-in glossary plus ``extra`` files (same format); a term listed twice keeps its first concept."""
    concepts: list[tuple[str, ...]] = []
    for path in ([BUILTIN] if builtin else []) + [Path(p).expanduser() for p in extra]:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise GlossaryError(f"{path}: cannot read glossary ({exc.__class__.__name__}: {exc})") from None
        concepts += parse(text.splitlines(), str(path))
    index: dict[str, int] = {}
    for number, terms in enumerate(concepts):
        for term in terms:
            index.setdefault(term, number)
    return Glossary(tuple(concepts), index)
