"""Checks on the golden evaluation set (eval/data/golden.jsonl) against the corpus; no model needed."""

import json
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
CORPUS = ROOT / "corpus"
GOLDEN = ROOT / "eval" / "data" / "golden.jsonl"
TYPES = {"direct", "paraphrase", "negative"}
FIELDS = {"qid", "query", "type", "gold", "note"}
# Generic words a paraphrase may share with its evidence: naming the institution or the trade is not a leak.
GENERIC_WORDS = ("银保监局", "金融机构", "金融服务", "金融监管")


def load_rows() -> list[dict]:
    """Parse golden.jsonl, one JSON object per non-empty line."""
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def load_corpus() -> dict[str, str]:
    """Map each corpus file name to its text."""
    return {path.name: path.read_text(encoding="utf-8") for path in CORPUS.glob("*.txt")}


def shared_key_phrases(query: str, span: str) -> set[str]:
    """Return the 4-character substrings of `query` that also occur in `span`, ignoring generic words."""
    grams = {query[i : i + 4] for i in range(len(query) - 3)}
    return {g for g in grams if g in span and not any(g in word for word in GENERIC_WORDS)}


def span_offsets(text: str, span: str) -> range:
    """Character offsets of the first occurrence of `span` in `text` (empty if absent)."""
    start = text.find(span)
    return range(start, start + len(span)) if start != -1 else range(0)


ROWS = load_rows()
TEXTS = load_corpus()
ANSWERABLE = [row for row in ROWS if row["type"] != "negative"]


def test_every_line_is_a_json_object_with_the_expected_fields() -> None:
    for line_no, line in enumerate(GOLDEN.read_text(encoding="utf-8").splitlines(), 1):
        row = json.loads(line)
        assert isinstance(row, dict), f"line {line_no} is not an object"
        assert set(row) == FIELDS, f"line {line_no}: fields {sorted(row)}"
        assert isinstance(row["query"], str) and row["query"].strip(), f"line {line_no}: empty query"
        assert isinstance(row["gold"], list), f"line {line_no}: gold is not a list"
        for item in row["gold"]:
            assert set(item) == {"doc_id", "span"}, f"line {line_no}: gold item {item}"


def test_qids_and_queries_are_unique() -> None:
    qids = [row["qid"] for row in ROWS]
    queries = [row["query"] for row in ROWS]
    assert [q for q, n in Counter(qids).items() if n > 1] == []
    assert [q for q, n in Counter(queries).items() if n > 1] == []


def test_types_are_valid() -> None:
    assert {row["type"] for row in ROWS} <= TYPES


def test_counts_by_type() -> None:
    counts = Counter(row["type"] for row in ROWS)
    assert len(ROWS) >= 80
    assert counts["paraphrase"] * 3 >= len(ROWS)
    assert counts["negative"] >= 10


def test_first_question_covers_every_xinshimin_passage() -> None:
    first = ROWS[0]
    assert first["query"] == "新市民金融服务有哪些举措？"
    covered = {
        (g["doc_id"], offset) for g in first["gold"] for offset in span_offsets(TEXTS[g["doc_id"]], g["span"])
    }
    mentions = {
        (doc_id, offset)
        for doc_id, text in TEXTS.items()
        for offset in range(len(text))
        if text.startswith("新市民", offset)
    }
    assert mentions and mentions <= covered, f"uncovered 新市民 mentions: {sorted(mentions - covered)}"
    assert "如何支持新市民金融？" in {row["query"] for row in ROWS}


@pytest.mark.parametrize("row", ANSWERABLE, ids=lambda row: row["qid"])
def test_span_occurs_exactly_once_in_its_document(row: dict) -> None:
    assert row["gold"], f"{row['qid']} is {row['type']} but has no gold span"
    for item in row["gold"]:
        assert item["doc_id"] in TEXTS, f"{row['qid']}: unknown document {item['doc_id']}"
        span = item["span"]
        assert span == span.strip() and 6 <= len(span) <= 150, (
            f"{row['qid']}: span length/whitespace {span!r}"
        )
        # Exactly once, so that the span pins down one position in the document.
        assert TEXTS[item["doc_id"]].count(span) == 1, (
            f"{row['qid']}: {span!r} not found once in {item['doc_id']}"
        )


def test_negatives_have_no_gold() -> None:
    negatives = [row for row in ROWS if row["type"] == "negative"]
    assert [row["qid"] for row in negatives if row["gold"]] == []


@pytest.mark.parametrize(
    "row", [row for row in ROWS if row["type"] == "paraphrase"], ids=lambda row: row["qid"]
)
def test_paraphrase_avoids_the_wording_of_its_evidence(row: dict) -> None:
    for item in row["gold"]:
        assert shared_key_phrases(row["query"], item["span"]) == set(), f"{row['qid']} copies its evidence"


def test_every_document_is_asked_about_and_some_questions_need_two() -> None:
    per_doc = Counter(doc for row in ANSWERABLE for doc in {g["doc_id"] for g in row["gold"]})
    assert set(per_doc) == set(TEXTS)
    assert min(per_doc.values()) >= 10, per_doc
    multi_doc = [row for row in ANSWERABLE if len({g["doc_id"] for g in row["gold"]}) >= 2]
    assert len(multi_doc) >= 5


def test_shared_key_phrases_ignores_generic_words_only() -> None:
    assert shared_key_phrases("银保监局怎么支持新市民？", "*银保监局督促银行") == set()
    assert shared_key_phrases("新市民专属信贷产品有哪些？", "量身打造新市民专属信贷产品。") >= {
        "新市民专",
        "专属信贷",
    }
