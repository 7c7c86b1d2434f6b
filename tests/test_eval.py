"""The evaluation harness: span-hit rule, metrics against hand-computed values, TREC files, end to end."""

import json
import math

import pytest
from click.testing import CliRunner
from ranx import Qrels
from ranx import Run as RanxRun
from ranx import evaluate as ranx_evaluate
from zhiwen.core.types import Document, Refusal
from zhiwen.eval import (
    Dataset,
    DatasetError,
    EvalResult,
    Gold,
    Query,
    Run,
    chunk_hits,
    evaluate,
    load_common,
    load_dataset,
    load_golden,
    metrics_table,
    ranked_units,
    write_report,
    write_trec,
)
from zhiwen.eval.cli import eval_group
from zhiwen.eval.datasets import GOLDEN_CORPUS, default_evaldata, find_all
from zhiwen.eval.harness import score
from zhiwen.eval.refusal import calibrate, refusal_lines, score_threshold
from zhiwen.retriever import Hit
from zhiwen.retriever.answer import Evidence
from zhiwen.retriever.hybrid import FusionParams

EVALDATA = default_evaldata()
needs_evaldata = pytest.mark.skipif(
    not (EVALDATA / "README.md").exists(),
    reason=f"external evaluation data not found at {EVALDATA} (set ZHIWEN_EVALDATA to run these tests)",
)

TEXT = "一是稳增长。二是防风险，守住不发生系统性风险的底线。三是稳增长。"
SPAN = "守住不发生系统性风险的底线"  # at 12..25


def hit(rank: int, doc_id: str, start: int, end: int, text: str = "") -> Hit:
    text = text or TEXT[start:end]
    return Hit(f"{doc_id}#{rank}", doc_id, doc_id, text, start, end, rank=rank, score=1.0 / rank)


def span(unit_id: str, doc_id: str, text: str, fits_chunk: bool = False) -> Gold:
    return Gold(unit_id, doc_id, text, find_all(TEXT, text), fits_chunk)


# The span-hit rule, on hand-made chunks.


def test_find_all_locates_every_occurrence():
    assert TEXT[12:25] == SPAN
    assert find_all(TEXT, SPAN) == ((12, 25),)
    assert find_all(TEXT, "稳增长") == ((2, 5), (28, 31))
    assert find_all(TEXT, "不存在") == ()


def test_chunk_containing_the_span_hits_it():
    gold = span("q#s1", "a.txt", SPAN)
    assert chunk_hits("a.txt", 6, 26, gold)
    assert not chunk_hits("b.txt", 6, 26, gold), "same text in another document is not a hit"


def test_chunk_covering_half_the_span_hits_it_and_less_does_not():
    gold = span("q#s1", "a.txt", SPAN)  # 13 characters at 12..25
    assert chunk_hits("a.txt", 0, 19, gold)  # 7 of 13 characters
    assert not chunk_hits("a.txt", 0, 18, gold)  # 6 of 13
    assert chunk_hits("a.txt", 18, 40, gold)  # 7 of 13 at the other end


def test_any_occurrence_of_a_repeated_span_counts():
    gold = span("q#s1", "a.txt", "稳增长")
    assert chunk_hits("a.txt", 26, 32, gold)
    assert chunk_hits("a.txt", 0, 6, gold)
    assert not chunk_hits("a.txt", 6, 25, gold)


def test_answer_longer_than_the_chunk_is_hit_by_a_chunk_that_is_mostly_answer():
    strict = span("q#a1", "a.txt", TEXT[6:24])
    relaxed = span("q#a1", "a.txt", TEXT[6:24], fits_chunk=True)
    assert not chunk_hits("a.txt", 10, 18, strict)  # 8 of 18 answer characters
    assert chunk_hits("a.txt", 10, 18, relaxed)  # the whole 8-character chunk is answer
    assert not chunk_hits("a.txt", 20, 36, relaxed)  # 4 of a 16-character chunk


def test_document_unit_is_hit_by_any_chunk_of_the_document():
    gold = Gold("a.txt", "a.txt")
    assert chunk_hits("a.txt", 30, 31, gold)
    assert not chunk_hits("b.txt", 0, 10, gold)


# Ranked units and metrics against hand-computed values.


def test_ranked_units_deliver_each_span_once_and_a_chunk_may_deliver_two():
    s1, s2 = span("q#s1", "a.txt", "防风险"), span("q#s2", "a.txt", SPAN)
    hits = [hit(1, "b.txt", 0, 9), hit(2, "a.txt", 6, 26), hit(3, "a.txt", 6, 12)]
    assert ranked_units(hits, [s1, s2], "span") == [["chunk:b.txt#1"], ["q#s1", "q#s2"], ["chunk:a.txt#3"]]


def test_document_level_ranks_documents_by_first_appearance():
    hits = [hit(1, "a.txt", 0, 5), hit(2, "a.txt", 6, 9), hit(3, "b.txt", 0, 5), hit(4, "c.txt", 0, 5)]
    assert ranked_units(hits, [Gold("b.txt", "b.txt")], "document") == [["a.txt"], ["b.txt"], ["c.txt"]]


def test_metrics_match_hand_computed_values():
    qrels = {"q1": {"q1#s1": 1, "q1#s2": 1}, "q2": {"q2#s1": 1}}
    positions = {
        "q1": [["chunk:x1"], ["q1#s1"], ["chunk:x3"], ["q1#s2"]],
        "q2": [["q2#s1"], ["chunk:y2"]],
    }
    scores = evaluate(qrels, positions, k=10)
    ndcg_q1 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    expected = {
        "recall@1": 0.5,  # q1: 0, q2: 1
        "recall@3": 0.75,  # q1: 1/2
        "recall@5": 1.0,
        "recall@10": 1.0,
        "mrr@10": 0.75,  # q1: 1/2, q2: 1
        "ndcg@10": (ndcg_q1 + 1.0) / 2,
    }
    assert scores.keys() == expected.keys()
    for name, value in expected.items():
        assert scores[name] == pytest.approx(value), name


def test_cutoffs_count_chunks_not_units():
    qrels = {"q": {"q#s1": 1, "q#s2": 1}}
    positions = {"q": [["chunk:a"], ["chunk:b"], ["q#s1", "q#s2"]]}
    scores = evaluate(qrels, positions, k=3)
    assert scores["recall@1"] == 0.0
    assert scores["recall@3"] == 1.0, "both spans came from the third chunk"
    assert "recall@5" not in scores
    assert scores["mrr@3"] == pytest.approx(1 / 3)


def test_question_with_nothing_retrieved_scores_zero():
    scores = evaluate({"q1": {"a": 1}, "q2": {"b": 1}}, {"q1": [["a"]], "q2": []}, k=10)
    assert scores["recall@10"] == 0.5
    assert scores["mrr@10"] == 0.5


def test_refusal_scores_count_refused_negatives():
    topic = Refusal("topic", 0.9, "火星")
    features = [  # (is negative, evidence): two answerable, two negatives
        (False, Evidence(0.90)),
        (False, Evidence(0.80)),  # refused at 0.85: a false refusal
        (True, Evidence(0.95, topic)),  # refused by the topic rule whatever the threshold
        (True, Evidence(0.88)),  # answered at 0.85
    ]
    scores = score_threshold(features, 0.85)
    assert (scores.precision, scores.recall) == (0.5, 0.5)
    assert (scores.negatives, scores.positives, scores.false_refusals) == (2, 2, 1)
    assert score_threshold(features, 0.89).recall == 1.0
    assert calibrate(features, max_false_refusals=0.5).threshold == 0.9  # the highest within the budget


# TREC files, table and report from a hand-made result (no model needed).


def hand_made_result() -> EvalResult:
    docs = [Document("a.txt", "a", TEXT), Document("b.txt", "b", "无关的文字。" * 5)]
    queries = [
        Query("q1", "如何防风险？", "direct", {"span": (span("q1#s1", "a.txt", SPAN),)}),
        Query("q2", "稳增长？", "paraphrase", {"span": (span("q2#s1", "a.txt", "三是稳增长"),)}),
        Query("n1", "火星上的银行？", "negative", {"span": ()}),
    ]
    dataset = Dataset("hand", docs, queries, ("span",))
    runs = [
        Run(
            "window",
            "bm25",
            {
                "q1": [hit(1, "a.txt", 6, 24)],
                "q2": [hit(1, "b.txt", 0, 6), hit(2, "a.txt", 20, 33)],
                "n1": [hit(1, "b.txt", 0, 6)],
            },
            0.01,
        ),
        Run(
            "window",
            "dense",
            {
                "q1": [hit(1, "b.txt", 0, 6), hit(2, "a.txt", 0, 12)],
                "q2": [hit(1, "a.txt", 24, 33)],
                "n1": [],
            },
            0.02,
        ),
    ]
    result = EvalResult(dataset, 3, "minmax", FusionParams(), runs)
    result.rows = score(result)
    return result


def test_trec_files_round_trip_through_ranx(tmp_path):
    result = hand_made_result()
    written = write_trec(result, tmp_path)
    assert [p.name for p in written] == [
        "hand.span.qrels",
        "hand.span.window-bm25.run",
        "hand.span.window-dense.run",
    ]
    qrels = Qrels.from_file(str(written[0]), kind="trec")
    assert qrels.to_dict() == {"q1": {"q1#s1": 1}, "q2": {"q2#s1": 1}}
    for row, path in zip(result.rows, written[1:]):
        run = RanxRun.from_file(str(path), kind="trec")
        again = ranx_evaluate(qrels, run, ["mrr@3", "ndcg@3"], make_comparable=True)
        assert again["mrr@3"] == pytest.approx(row.metrics["mrr@3"])
        assert again["ndcg@3"] == pytest.approx(row.metrics["ndcg@3"])
    assert result.rows[0].metrics["mrr@3"] == pytest.approx(0.75)  # bm25: q1 at 1, q2 at 2
    assert result.rows[1].metrics["recall@1"] == pytest.approx(0.5)  # dense: q1 missed at 1, q2 found


def test_table_and_report_show_every_run_and_question(tmp_path):
    result = hand_made_result()
    table = metrics_table(result)
    assert "3 questions, 2 documents; span level: 2 questions; 1 negatives (excluded from recall)" in table
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("level"))
    assert header.split() == [
        "level",
        "chunker",
        "strategy",
        "recall@1",
        "recall@3",
        "mrr@3",
        "ndcg@3",
        "ms/q",
    ]
    rows = [line.split()[:3] for line in lines[lines.index(header) + 1 :]]
    assert rows == [  # every run, then every run per kind of question
        [level, "window", strategy]
        for level in ("span", "span:direct", "span:paraphrase")
        for strategy in ("bm25", "dense")
    ]
    page = write_report(result, tmp_path).read_text(encoding="utf-8")
    assert (tmp_path / "recall_at_k.png").stat().st_size > 1000
    assert (tmp_path / "table.png").stat().st_size > 1000
    assert "### q2 (paraphrase): 稳增长？" in page
    assert "| window-bm25 | 2 |" in page and "| window-dense | 1 |" in page
    assert "**q2#s1** a.txt [20:33]" in page


# Loading the sets.


def test_golden_spans_are_all_located_in_the_corpus():
    data = load_golden()
    assert {d.doc_id for d in data.documents} == {p.name for p in GOLDEN_CORPUS.glob("*.txt")}
    texts = {d.doc_id: d.text for d in data.documents}
    for query in data.queries:
        for gold in query.gold["span"]:
            assert all(texts[gold.doc_id][s:e] == gold.text for s, e in gold.locations)
    assert any(q.negative for q in data.queries) and any(not q.negative for q in data.queries)


def test_golden_span_not_in_the_corpus_is_reported_with_its_line(tmp_path):
    golden = tmp_path / "golden.jsonl"
    doc_id = min(p.name for p in GOLDEN_CORPUS.glob("*.txt"))
    rows = [
        {"qid": "ok", "query": "?", "type": "negative", "gold": [], "note": ""},
        {
            "qid": "bad",
            "query": "?",
            "type": "direct",
            "gold": [{"doc_id": doc_id, "span": "这句话不在语料里"}],
            "note": "",
        },
    ]
    golden.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"golden.jsonl:2: bad gold 1 .*span not found"):
        load_golden(golden)


def test_common_format_subset_keeps_gold_documents(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    queries = tmp_path / "queries.jsonl"
    docs = [
        {"doc_id": f"d{i}", "title": None, "text": f"第{i}号文件。答案{i}在这里。", "meta": {}}
        for i in range(20)
    ]
    corpus.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in docs), encoding="utf-8")
    rows = [
        {
            "qid": "1",
            "query": "答案7？",
            "gold_doc_ids": ["d7"],
            "answers": [" 答案7 "],
            "meta": {"answer_is_exact_span_of_gold": True},
        },
        {"qid": "2", "query": "答案9？", "gold_doc_ids": ["d9", "gone"], "answers": ["x"], "meta": {}},
        {"qid": "3", "query": "缺失？", "gold_doc_ids": ["gone"], "answers": [], "meta": {}},
    ]
    queries.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    data = load_common(corpus, queries, max_docs=5, seed=1)
    ids = {d.doc_id for d in data.documents}
    assert len(ids) == 5 and {"d7", "d9"} <= ids
    assert data.levels == ("answer", "document")
    assert [q.qid for q in data.queries] == ["1", "2"]
    answer = data.queries[0].gold["answer"][0]
    assert (answer.doc_id, answer.text, answer.locations) == ("d7", "答案7", ((6, 9),))
    assert [g.doc_id for g in data.queries[1].gold["document"]] == ["d9"]
    assert any(note.startswith("SUBSET: 5 of 20 documents") for note in data.notes)
    assert any("1 questions dropped" in note for note in data.notes)


def test_common_format_subset_takes_whole_groups_before_random_distractors(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    queries = tmp_path / "queries.jsonl"
    docs = [
        {"doc_id": f"d{i:02d}", "title": "", "text": f"第{i}条。", "meta": {"law": f"法{i // 4}"}}
        for i in range(40)
    ]
    corpus.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in docs), encoding="utf-8")
    rows = [{"qid": "1", "query": "第5条？", "gold_doc_ids": ["d05"], "answers": [], "meta": {}}]
    queries.write_text(json.dumps(rows[0], ensure_ascii=False), encoding="utf-8")
    data = load_common(corpus, queries, max_docs=7, seed=3, group_by="law")
    ids = {d.doc_id for d in data.documents}
    assert len(ids) == 7 and {"d04", "d05", "d06", "d07"} <= ids  # all of 法1, then three random others
    assert "every other document of their 1 law groups" in data.notes[0]
    tight = load_common(corpus, queries, max_docs=2, seed=3, group_by="law")
    assert {d.doc_id for d in tight.documents} == {"d04", "d05"}  # gold first, then siblings in id order


@needs_evaldata
def test_external_sets_load_in_the_common_form():
    ncpqa = load_dataset("ncpqa", limit=20)
    assert len(ncpqa.queries) == 20 and ncpqa.levels == ("answer", "document")
    assert sum(1 for q in ncpqa.queries if q.gold.get("answer")) >= 15
    stard = load_dataset("stard", limit=10)
    assert len(stard.documents) == 15000 and stard.notes[0].startswith("SUBSET")
    indexed = {d.doc_id: d for d in stard.documents}
    gold = {g.doc_id for q in stard.queries for g in q.gold["document"]}
    assert gold <= indexed.keys()
    cited_laws = {indexed[d].meta["law"] for d in gold}
    assert "law groups" in stard.notes[0]
    # every article of a cited law is indexed: the hard negatives a statute question meets
    full = load_dataset("stard", limit=10, max_docs=0)
    assert {d.doc_id for d in full.documents if d.meta.get("law") in cited_laws} <= indexed.keys()


def test_cli_rejects_unknown_strategy():
    result = CliRunner().invoke(eval_group, ["--strategies", "bm25,magic"])
    assert result.exit_code == 2
    assert "use a comma list of bm25, dense, hybrid" in result.output


# End to end through the real ingest and retriever (needs the embedding model).


@pytest.mark.slow
def test_golden_set_end_to_end(tmp_path, corpus_settings):
    """The golden set through the real ingest and retriever; the corpus fixture has embedded these chunks."""
    args = ["--chunkers", "structure", "--json", "--quiet", "--index-root", str(tmp_path)]
    result = CliRunner().invoke(eval_group, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    runs = {r["strategy"]: r for r in report["rows"] if r["level"] == "span"}
    assert set(runs) == {"bm25", "dense", "hybrid"}
    kinds = {(r["level"], r["strategy"]) for r in report["rows"] if r["level"] != "span"}
    assert kinds == {(f"span:{k}", s) for k in ("direct", "paraphrase") for s in ("bm25", "dense", "hybrid")}
    assert report["negatives"] > 0 and report["scored"]["span"] == report["questions"] - report["negatives"]
    for row in runs.values():
        recalls = [row[f"recall@{k}"] for k in (1, 3, 5, 10)]
        assert recalls == sorted(recalls) and 0.0 <= recalls[0] and recalls[-1] <= 1.0
        assert 0.0 < row["mrr@10"] <= 1.0
    assert runs["hybrid"]["recall@5"] > 0.8
    refusal = report["refusal"][0]
    assert refusal["negatives"] == report["negatives"] and refusal["recall"] == 1.0


@pytest.mark.slow
def test_every_chunker_and_strategy_is_evaluated_by_default(tmp_path):
    """A set in the common format, run with the defaults: one index per chunker, every strategy on each."""
    texts = [
        "一是加强新市民金融服务，推出专属信贷产品。二是支持小微企业融资，开展银企对接活动。",
        "防范化解金融风险，严厉打击非法集资，稳妥处置高风险机构。",
        "推进绿色金融发展，在围场开展绿色金融试点工作。",
    ]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "\n".join(
            json.dumps({"doc_id": f"d{i}", "title": "", "text": t}, ensure_ascii=False)
            for i, t in enumerate(texts)
        ),
        encoding="utf-8",
    )
    questions = [
        ("新市民有什么专属贷款？", "d0"),
        ("怎样打击非法集资？", "d1"),
        ("绿色金融在哪里试点？", "d2"),
    ]
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        "\n".join(
            json.dumps({"qid": str(i), "query": q, "gold_doc_ids": [d], "answers": []}, ensure_ascii=False)
            for i, (q, d) in enumerate(questions)
        ),
        encoding="utf-8",
    )
    args = [
        "--corpus",
        str(corpus),
        "--queries",
        str(queries),
        "--json",
        "--quiet",
        "--index-root",
        str(tmp_path),
    ]
    result = CliRunner().invoke(eval_group, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert {(r["chunker"], r["strategy"]) for r in rows} == {
        (c, s) for c in ("structure", "paragraph", "window") for s in ("bm25", "dense", "hybrid")
    }
    assert all(r["level"] == "document" and r["recall@1"] == 1.0 for r in rows if r["strategy"] == "hybrid")


@pytest.mark.slow
@needs_evaldata
def test_external_set_end_to_end_on_a_subset(tmp_path):
    args = [
        "--dataset",
        "ncpqa",
        "--limit",
        "3",
        "--max-docs",
        "6",
        "--chunkers",
        "window",
        "--quiet",
        "--index-root",
        str(tmp_path),
        "--trec",
        str(tmp_path / "trec"),
    ]
    result = CliRunner().invoke(eval_group, args)
    assert result.exit_code == 0, result.output
    assert "note: SUBSET: 6 of 599 documents" in result.output
    levels = {
        line.split()[0]
        for line in result.output.splitlines()
        if line.split()[:1] in (["answer"], ["document"])
    }
    assert levels == {"answer", "document"}
    assert (tmp_path / "trec" / "ncpqa.document.window-hybrid.run").exists()


@pytest.mark.parametrize(
    ("name", "negatives", "questions"),
    [
        ("refusal", 70, 157),
        ("refusal2", 38, 72),
        ("refusal3", 44, 88),
        ("refusal4", 79, 162),
        ("refusal5", 74, 159),
        ("refusal6", 83, 163),
        ("refusal7", 97, 209),
        ("refusal8", 107, 254),
        ("refusal9", 122, 296),
        ("refusal10", 129, 313),
        ("refusal11", 130, 335),
        ("refusal12", 106, 263),
    ],
)
def test_the_blind_refusal_sets_load_with_their_categories(name: str, negatives: int, questions: int):
    data = load_dataset(name)
    found = [q for q in data.queries if q.negative]
    assert len(found) == negatives and len(data.queries) == questions
    assert {q.meta["category"] for q in found} == {"in-domain", "near-topic", "off-topic"}
    assert all(g.locations for q in data.queries for g in q.gold["span"]), "every gold span is located"


def test_refusal_table_counts_rules_and_categories_and_lists_the_hardest_misses():
    data = load_dataset("refusal", limit=8)  # r001..r007 paraphrases, r008 an in-domain negative
    found = [
        Evidence(0.90),
        Evidence(0.85, unsupported="片子"),  # below 0.842 + SUBJECT_MARGIN: refused by the subject rule
        Evidence(0.70, Refusal("topic", 0.70, "国债")),
        Evidence(0.88),
        Evidence(0.80),  # below the threshold
        Evidence(0.95),
        Evidence(0.91),
        Evidence(0.89),  # the negative, answered
    ]
    features = [(q.negative, e) for q, e in zip(data.queries, found, strict=True)]
    lines = [line.split() for line in refusal_lines(data, features, 0.842)]
    assert ["topic", "0", "/", "1"] in lines and ["subject", "0", "/", "1"] in lines
    assert ["relevance", "0", "/", "1"] in lines and ["scope", "0", "/", "0"] in lines
    assert ["paraphrase", "3", "of", "7", "(43%)"] in lines and [
        "in-domain",
        "0",
        "of",
        "1",
        "(0%)",
    ] in lines
    refused = [
        line[0]
        for line in lines[lines.index(["hardest", "answerable", "questions", "refused", "(of", "3):"]) + 1 :]
    ]
    assert refused == ["r002", "r005", "r003"], "most relevant first"
    assert ["r008", "0.890"] == lines[lines.index(["hardest", "negatives", "answered", "(of", "1):"]) + 1][:2]
