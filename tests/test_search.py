"""Ingest plus search on corpus/, through the CLI the way a user runs it, and the Python API."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from zhiwen.retriever import Retriever
from zhiwen.retriever.langchain import ZhiwenRetriever
from zhiwen.ui.cli import main

QUESTION = "新市民金融服务有哪些举措？"
pytestmark = pytest.mark.slow


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_cli_ingest_then_search_finds_new_citizens_passage_at_rank_1(tmp_path, corpus_texts):
    index = str(tmp_path / "index")
    out = run("ingest", "corpus", "--index", index, "--quiet")
    assert "added 5" in out and "failed 0" in out
    hits = json.loads(run("search", QUESTION, "-k", "5", "--json", "--index", index))
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    for hit in hits:
        assert {"rank", "chunk_id", "doc_id", "title", "text", "start", "end", "score"} <= set(hit)
        assert corpus_texts[hit["doc_id"]][hit["start"] : hit["end"]] == hit["text"]
    top = hits[0]
    assert top["doc_id"] == "银保监局-主题教育与金融促进消费工作.txt"
    assert "量身打造新市民专属信贷产品" in top["text"]


def test_cli_search_text_output_shows_title_position_and_score(corpus_settings):
    out = run("search", QUESTION, "-k", "2", "--index", str(corpus_settings.index_dir))
    assert out.startswith("[1] 银保监局-主题教育与金融促进消费工作")
    assert "[2207:" in out.splitlines()[0] and "score" in out.splitlines()[0]


def test_every_strategy_returns_exact_slices(corpus_settings, embedder, corpus_texts):
    retriever = Retriever(corpus_settings, embedder=embedder)
    for strategy in ("bm25", "dense", "hybrid"):
        hits = retriever.search("如何防范化解金融风险？", k=10, strategy=strategy)
        assert len(hits) == 10
        assert all(corpus_texts[h.doc_id][h.start : h.end] == h.text for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_filters_keep_only_matching_documents(corpus_settings, embedder):
    retriever = Retriever(corpus_settings, embedder=embedder)
    doc = "金融监管局党组-2022年度工作总结.txt"
    hits = retriever.search("党组学习研讨", k=5, filters={"doc_id": doc})
    assert hits and {h.doc_id for h in hits} == {doc}
    by_issuer = retriever.search("主题教育", k=5, filters={"issuer": "银保监局"})
    assert by_issuer and all(h.meta["issuer"] == "银保监局" for h in by_issuer)
    assert retriever.search("主题教育", filters={"year": 1999}) == []
    with pytest.raises(ValueError, match="unknown filter"):
        retriever.search("主题教育", filters={"colour": "red"})


def test_near_duplicates_do_not_crowd_the_top(tmp_path, embedder):
    from conftest import make_settings
    from zhiwen.core.types import Document
    from zhiwen.ingest.pipeline import ingest_documents

    template = (
        "坚持以习近平新时代中国特色社会主义思想为指导，全面贯彻落实党的二十大精神，扎实推进各项重点工作。"
    )
    docs = [
        Document(f"r{i}.txt", f"报告{i}", f"{template}\n第{i}项具体工作是推进普惠金融服务。")
        for i in range(4)
    ]
    settings = make_settings(tmp_path / "index", chunker="paragraph")
    ingest_documents(docs, settings, progress=False, embedder=embedder)
    retriever = Retriever(settings, embedder=embedder)
    texts = [h.text for h in retriever.search(template, k=4)]
    assert texts.count(template) == 1
    assert len(retriever.search(template, k=8, dedupe=False)) == 8


def test_langchain_retriever_returns_documents_with_offsets(corpus_settings, embedder, corpus_texts):
    lc = ZhiwenRetriever(retriever=Retriever(corpus_settings, embedder=embedder), k=3)
    docs = lc.invoke(QUESTION)
    assert len(docs) == 3
    first = docs[0]
    assert "新市民" in first.page_content
    meta = first.metadata
    assert corpus_texts[meta["doc_id"]][meta["start"] : meta["end"]] == first.page_content


def test_search_without_index_says_how_to_build_one(tmp_path):
    result = CliRunner().invoke(main, ["search", "问题", "--index", str(tmp_path / "none")])
    assert result.exit_code != 0
    assert "no index at" in result.output and "zhiwen ingest" in result.output
