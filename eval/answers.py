"""Measure answers, not spans: does the answer say what was asked, and not the wrong facet of it?

Retrieval recall says a passage was found; it does not say the answer shown to staff used it, nor that
the answer kept to the facet asked ("what was done" rather than "what the problems are", which the same
report section often sits next to). ``eval/data/answers.jsonl`` names, per question, phrases the answer
must carry (``must``) and phrases of the wrong facet it must not say (``must_not``), each a verbatim
substring of a ``corpus/`` document. Each question is asked through ``zhiwen.retriever.answer.ask`` (the
public answer path, offline mode) and scored (``score_answer``, pure):

- completeness: the share of ``must`` phrases found in the answer text or in the text of one of its
  citations (a cited passage is shown to the reader); ``complete`` when all are found;
- wrong facet: a ``must_not`` phrase found in the answer text. A citation merely containing it is not
  the answer saying it, so those are reported apart (``cited_forbidden``);
- length: characters of the answer text.

Matching ignores whitespace only (``*`` marks are data). A refused answer is incomplete. The English
check asks the English and mixed-language versions of golden questions and sets their refusals and span
recall@5 beside those of the Chinese originals.

    zhiwen eval answers [--english] [--json] [--report DIR] [--limit N]
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm
from zhiwen.core.embed import Embedder
from zhiwen.core.settings import Settings
from zhiwen.core.types import Answer, Citation, Document, FinalAnswer
from zhiwen.retriever import Retriever
from zhiwen.retriever.answer import ask

from .datasets import (
    ENGLISH_PATH,
    GOLDEN_CORPUS,
    GOLDEN_PATH,
    REPO,
    Dataset,
    DatasetError,
    Query,
    load_corpus,
    load_golden,
    read_rows,
)
from .harness import build_index
from .metrics import first_ranks, ranked_units

ANSWERS_PATH = REPO / "eval" / "data" / "answers.jsonl"
INTENTS = ("list", "problem", "plan", "fact", "definition")  # what kind of answer the question wants
FACETS = ("done", "problem", "plan", "any")  # which side of a report section answers it
RECALL_AT = 5


@dataclass(frozen=True)
class Phrase:
    """Text that must (or must not) be said, and the corpus document it is taken from."""

    doc_id: str
    phrase: str


@dataclass(frozen=True)
class AnswerQuestion:
    """One row of ``answers.jsonl``."""

    qid: str
    query: str
    intent: str
    facet: str
    must: tuple[Phrase, ...]
    must_not: tuple[Phrase, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class AnswerScore:
    """How one answer measured; ``forbidden`` are the ``must_not`` phrases its text says."""

    question: AnswerQuestion
    answer: Answer
    found: tuple[str, ...]
    missing: tuple[str, ...]
    forbidden: tuple[str, ...]
    cited_forbidden: tuple[str, ...]

    @property
    def refused(self) -> bool:
        return self.answer.refused

    @property
    def completeness(self) -> float:
        if self.refused or not self.question.must:
            return 0.0
        return len(self.found) / len(self.question.must)

    @property
    def complete(self) -> bool:
        return not self.refused and not self.missing

    @property
    def wrong_facet(self) -> bool:
        return bool(self.forbidden)

    @property
    def length(self) -> int:
        return len(self.answer.answer)

    def to_dict(self) -> dict[str, Any]:
        q = self.question
        return {
            "qid": q.qid,
            "query": q.query,
            "intent": q.intent,
            "facet": q.facet,
            "refused": self.refused,
            "completeness": self.completeness,
            "complete": self.complete,
            "wrong_facet": self.wrong_facet,
            "length": self.length,
            "missing": list(self.missing),
            "forbidden": list(self.forbidden),
            "cited_forbidden": list(self.cited_forbidden),
            "answer": self.answer.answer,
            "citations": [
                {"n": c.n, "doc_id": c.doc_id, "start": c.start, "end": c.end} for c in self.answer.citations
            ],
        }


def _squeeze(text: str) -> str:
    return "".join(text.split())


def says(text: str, phrase: str) -> bool:
    """Whether ``text`` contains ``phrase``, whitespace aside (answers may re-wrap lines)."""
    return _squeeze(phrase) in _squeeze(text)


def _cited(citations: Iterable[Citation], phrase: str) -> bool:
    return any(says(c.text, phrase) for c in citations)


def score_answer(question: AnswerQuestion, answer: Answer) -> AnswerScore:
    """Score ``answer`` against the question's required and forbidden phrases (pure; see the module doc)."""
    found = tuple(
        p.phrase for p in question.must if says(answer.answer, p.phrase) or _cited(answer.citations, p.phrase)
    )
    return AnswerScore(
        question,
        answer,
        found=found,
        missing=tuple(p.phrase for p in question.must if p.phrase not in found),
        forbidden=tuple(p.phrase for p in question.must_not if says(answer.answer, p.phrase)),
        cited_forbidden=tuple(p.phrase for p in question.must_not if _cited(answer.citations, p.phrase)),
    )


def summarise(scores: Sequence[AnswerScore]) -> dict[str, float | int]:
    """Mean completeness, complete and wrong-facet rates, refusals and median answer length."""
    n = len(scores)
    return {
        "questions": n,
        "completeness": sum(s.completeness for s in scores) / n if n else 0.0,
        "complete_rate": sum(s.complete for s in scores) / n if n else 0.0,
        "wrong_facet_rate": sum(s.wrong_facet for s in scores) / n if n else 0.0,
        "refused": sum(s.refused for s in scores),
        "median_length": statistics.median(s.length for s in scores) if n else 0,
    }


def by_intent(scores: Sequence[AnswerScore]) -> dict[str, dict[str, float | int]]:
    """``summarise`` per intent, in the order of ``INTENTS``, for the intents present."""
    return {
        intent: summarise([s for s in scores if s.question.intent == intent])
        for intent in INTENTS
        if any(s.question.intent == intent for s in scores)
    }


def load_answer_set(
    path: Path = ANSWERS_PATH, documents: Sequence[Document] | None = None, limit: int | None = None
) -> list[AnswerQuestion]:
    """The questions of ``path``, every phrase checked to be a verbatim substring of its document.

    ``documents`` default to ``corpus/`` as ingest loads it. Every problem is reported, one line each
    naming ``path:line``, in one ``DatasetError``.
    """
    texts = {d.doc_id: d.text for d in (load_corpus(GOLDEN_CORPUS) if documents is None else documents)}

    def problems_of(question: AnswerQuestion) -> list[str]:
        problems = []
        for field, phrases in (("must", question.must), ("must_not", question.must_not)):
            for i, p in enumerate(phrases, 1):
                text = texts.get(p.doc_id)
                if text is None:
                    problems.append(f"{field} {i}: no document {p.doc_id!r} in the corpus")
                elif p.phrase not in text:
                    problems.append(f"{field} {i}: {p.phrase!r} is not verbatim in {p.doc_id}")
        return problems

    return read_rows(path, _question, problems_of)[:limit]


def _question(row: Any) -> AnswerQuestion:
    """One row as an ``AnswerQuestion``; raises ``TypeError`` or ``ValueError`` saying what is wrong."""
    if not isinstance(row, dict):
        raise TypeError("a row must be a JSON object")
    for name in ("qid", "query"):
        if not isinstance(row.get(name), str) or not row[name].strip():
            raise ValueError(f"field {name!r} must be a non-empty string")
    if row.get("intent") not in INTENTS:
        raise ValueError(
            f"{row['qid']}: intent must be one of {', '.join(INTENTS)}; got {row.get('intent')!r}"
        )
    if row.get("facet") not in FACETS:
        raise ValueError(f"{row['qid']}: facet must be one of {', '.join(FACETS)}; got {row.get('facet')!r}")
    must = _phrases(row, "must")
    if not must:
        raise ValueError(f"{row['qid']}: 'must' needs at least one phrase")
    return AnswerQuestion(
        row["qid"],
        row["query"],
        row["intent"],
        row["facet"],
        must,
        _phrases(row, "must_not"),
        row.get("note", ""),
    )


def _phrases(row: dict[str, Any], name: str) -> tuple[Phrase, ...]:
    items = row.get(name, [])
    if not isinstance(items, list) or not all(
        isinstance(i, dict)
        and isinstance(i.get("doc_id"), str)
        and isinstance(i.get("phrase"), str)
        and i["phrase"]
        for i in items
    ):
        raise ValueError(
            f"{row['qid']}: {name!r} must be a list of {{doc_id, phrase}} with non-empty phrases"
        )
    return tuple(Phrase(i["doc_id"], i["phrase"]) for i in items)


@dataclass(frozen=True)
class EnglishPair:
    """An English (or mixed) question beside its Chinese original: refused?, span recall@5."""

    english: Query
    source: Query
    refused: bool
    source_refused: bool
    recall: float | None
    source_recall: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "qid": self.english.qid,
            "query": self.english.query,
            "source_qid": self.source.qid,
            "source_query": self.source.query,
            "refused": self.refused,
            "source_refused": self.source_refused,
            f"recall@{RECALL_AT}": self.recall,
            f"source_recall@{RECALL_AT}": self.source_recall,
        }


@dataclass
class AnswersResult:
    """Everything one run measured."""

    scores: list[AnswerScore]
    index_summary: str
    english: list[EnglishPair] | None = None
    english_recall: tuple[float, float] | None = None  # mean span recall@5: English, Chinese originals

    def to_dict(self) -> dict[str, Any]:
        output: dict[str, Any] = {
            "index": self.index_summary,
            "summary": summarise(self.scores),
            "by_intent": by_intent(self.scores),
            "questions": [s.to_dict() for s in self.scores],
        }
        if self.english is not None:
            output["english"] = {
                "questions": len(self.english),
                "refused": sum(p.refused for p in self.english),
                "source_refused": sum(p.source_refused for p in self.english),
                f"recall@{RECALL_AT}": self.english_recall[0] if self.english_recall else None,
                f"source_recall@{RECALL_AT}": self.english_recall[1] if self.english_recall else None,
                "pairs": [p.to_dict() for p in self.english],
            }
        return output


def final_answer(
    question: str, retriever: Retriever, history: Sequence[Mapping[str, str]] | None = None
) -> Answer:
    """The answer ``ask`` ends its event stream with (``history``: the conversation before it)."""
    answer = None
    for event in ask(question, retriever, history=history):
        if isinstance(event, FinalAnswer):
            answer = event.answer
    if answer is None:
        raise RuntimeError(f"ask gave no final answer for {question!r}")
    return answer


def run_answers(
    settings: Settings,
    limit: int | None = None,
    english: bool = False,
    index_root: Path | None = None,
    embedder: Embedder | None = None,
    progress: bool = True,
) -> AnswersResult:
    """Index ``corpus/`` under ``index_root/answers/<chunker>`` (default root ``cache_dir/eval``), ask, score.

    One embedder serves the index and every question; the index is updated incrementally, so a second run
    only pays for the questions.
    """
    documents = load_corpus(GOLDEN_CORPUS)
    questions = load_answer_set(ANSWERS_PATH, documents, limit)
    retriever, summary = corpus_retriever(settings, documents, index_root, embedder, progress)
    asked = tqdm(questions, desc="answers", unit="q", disable=not progress, file=sys.stderr)
    result = AnswersResult([score_answer(q, final_answer(q.query, retriever)) for q in asked], summary)
    if english:
        result.english, result.english_recall = english_check(retriever, limit, progress)
    return result


def corpus_retriever(
    settings: Settings,
    documents: Sequence[Document],
    index_root: Path | None = None,
    embedder: Embedder | None = None,
    progress: bool = True,
) -> tuple[Retriever, str]:
    """A retriever over an index of ``corpus/`` under ``index_root/answers/<chunker>`` (default root
    ``cache_dir/eval``), updated incrementally, and the ingest summary; one embedder serves both."""
    embedder = embedder or Embedder(settings)
    corpus = Dataset("answers", list(documents), [], ("span",))
    indexed, report = build_index(
        corpus, settings, settings.chunker, index_root or settings.cache_dir / "eval", embedder, progress
    )
    return Retriever(indexed, embedder=embedder), report.summary()


def english_check(
    retriever: Retriever, limit: int | None = None, progress: bool = True
) -> tuple[list[EnglishPair], tuple[float, float]]:
    """Ask each English question and its Chinese original: refusals and span recall@5, side by side."""
    english = load_golden(ENGLISH_PATH, name="english", limit=limit).queries
    golden = {q.qid: q for q in load_golden(GOLDEN_PATH).queries}
    unknown = [q.qid for q in english if q.meta.get("source_qid") not in golden]
    if unknown:
        raise DatasetError(
            f"{ENGLISH_PATH}: {', '.join(unknown)}: source_qid is not a question of {GOLDEN_PATH}"
        )
    sources = [golden[q.meta["source_qid"]] for q in english]
    positions = {}
    refused = {}
    for query in tqdm(english + sources, desc="english", unit="q", disable=not progress, file=sys.stderr):
        hits = retriever.search(query.query, k=RECALL_AT)
        positions[query.qid] = ranked_units(hits, query.gold.get("span", ()), "span")
        refused[query.qid] = final_answer(query.query, retriever).refused

    def recall(query: Query) -> float | None:
        gold = query.gold.get("span", ())
        ranks = first_ranks(positions[query.qid], gold).values()
        return sum(r is not None for r in ranks) / len(gold) if gold else None

    pairs = [
        EnglishPair(e, s, refused[e.qid], refused[s.qid], recall(e), recall(s))
        for e, s in zip(english, sources)
    ]
    return pairs, (_mean([p.recall for p in pairs]), _mean([p.source_recall for p in pairs]))


def _mean(values: Iterable[float | None]) -> float:
    """The mean over questions with gold, as ranx averages recall; ranx itself takes a minute to compile
    on first use, more than these few dozen questions are worth."""
    scored = [v for v in values if v is not None]
    return sum(scored) / len(scored) if scored else 0.0


def summary_lines(result: AnswersResult) -> list[str]:
    """The figures as text: overall, per intent, citations holding forbidden phrases, the English check."""
    total = summarise(result.scores)
    n = total["questions"]
    lines = [
        f"answers: {n} questions over corpus/ ({result.index_summary})",
        (
            f"mean completeness {total['completeness']:.3f}; complete {total['complete_rate']:.3f}; "
            f"wrong facet {total['wrong_facet_rate']:.3f}; refused {total['refused']}; "
            f"median answer length {total['median_length']:.0f} chars"
        ),
        "",
        *_intent_table(result.scores),
        "",
        (
            f"must_not phrases in citations (not counted as wrong facet): "
            f"{sum(bool(s.cited_forbidden) for s in result.scores)} of {n} questions"
        ),
    ]
    if result.english is not None:
        lines += ["", *_english_lines(result)]
    return lines


def _intent_table(scores: Sequence[AnswerScore]) -> list[str]:
    header = ["intent", "n", "completeness", "complete", "wrong facet", "refused", "median length"]
    rows = [
        [
            intent,
            str(s["questions"]),
            f"{s['completeness']:.3f}",
            f"{s['complete_rate']:.3f}",
            f"{s['wrong_facet_rate']:.3f}",
            str(s["refused"]),
            f"{s['median_length']:.0f}",
        ]
        for intent, s in [*by_intent(scores).items(), ("all", summarise(scores))]
    ]
    return _aligned([header, *rows])


def _aligned(rows: list[list[str]], left: tuple[int, ...] = (0,)) -> list[str]:
    """Columns padded to their widest cell; those in ``left`` are text, the others numbers."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
        for r in rows
    ]


def _english_lines(result: AnswersResult) -> list[str]:
    pairs = result.english or []
    english_recall, source_recall = result.english_recall or (0.0, 0.0)
    lines = [
        (
            f"english: {len(pairs)} questions; refused {sum(p.refused for p in pairs)} "
            f"(their Chinese originals: {sum(p.source_refused for p in pairs)}); span recall@{RECALL_AT} "
            f"{english_recall:.3f} (Chinese originals {source_recall:.3f})"
        ),
        "",
    ]
    header = ["qid", "source", "refused", f"r@{RECALL_AT}", "zh refused", f"zh r@{RECALL_AT}", "question"]
    rows = [
        [
            p.english.qid,
            p.source.qid,
            "yes" if p.refused else "no",
            _recall(p.recall),
            "yes" if p.source_refused else "no",
            _recall(p.source_recall),
            p.english.query,
        ]
        for p in pairs
    ]
    return lines + _aligned([header, *rows], left=(0, 1, len(header) - 1))


def _recall(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def failures(scores: Sequence[AnswerScore]) -> list[AnswerScore]:
    """Incomplete or wrong-facet answers, worst first: wrong facet, then least complete, then longest."""
    bad = [s for s in scores if not s.complete or s.wrong_facet]
    return sorted(bad, key=lambda s: (not s.wrong_facet, s.completeness, -s.length))


def answer_section(score: AnswerScore) -> list[str]:
    """One question's Markdown: figures, missing and forbidden phrases, the answer in full, its citations."""
    q = score.question
    status = "refused" if score.refused else f"completeness {score.completeness:.2f}"
    lines = [
        f"### {q.qid} ({q.intent}, facet {q.facet}): {q.query}",
        "",
        f"{status}; wrong facet: {'yes' if score.wrong_facet else 'no'}; {score.length} characters",
        "",
    ]
    for label, phrases in (
        ("Missing", score.missing),
        ("Forbidden, said in the answer", score.forbidden),
        (
            "Forbidden, in a citation only",
            tuple(p for p in score.cited_forbidden if p not in score.forbidden),
        ),
    ):
        if phrases:
            lines += [f"{label}:", "", *(f"- {p}" for p in phrases), ""]
    lines += ["Answer:", "", "```text", score.answer.answer, "```", ""]
    if score.answer.citations:
        lines += [
            *(f"- [{c.n}] {c.doc_id} [{c.start}:{c.end}]" for c in score.answer.citations),
            "",
        ]
    if q.note:
        lines += [f"Note: {q.note}", ""]
    return lines


def write_answers_report(result: AnswersResult, folder: Path) -> Path:
    """``answers.md``: the figures, then every incomplete or wrong-facet question with its answer in full."""
    folder.mkdir(parents=True, exist_ok=True)
    bad = failures(result.scores)
    lines = [
        "# Answer evaluation",
        "",
        "```",
        *summary_lines(result),
        "```",
        "",
        f"## Incomplete or wrong-facet answers ({len(bad)} of {len(result.scores)}), worst first",
        "",
    ]
    for score in bad:
        lines += answer_section(score)
    path = folder / "answers.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
