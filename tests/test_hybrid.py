"""Score fusion (pure functions, no model)."""

import pytest
from zhiwen.retriever.hybrid import FUSIONS, FusionParams, bm25_confidence, fuse

BM25 = {1: 9.0, 2: 3.0, 3: 1.0}
DENSE = {2: 0.90, 3: 0.85, 4: 0.80}


@pytest.mark.parametrize("method", sorted(FUSIONS))
def test_every_fusion_scores_the_union_of_candidates(method):
    fused = fuse(method, BM25, DENSE, FusionParams())
    assert set(fused) == {1, 2, 3, 4}


def test_weight_moves_the_ranking_between_the_two_signals():
    bm25_led = fuse("minmax", BM25, DENSE, FusionParams(dense_weight=0.1))
    dense_led = fuse("minmax", BM25, DENSE, FusionParams(dense_weight=0.9))
    assert max(bm25_led, key=bm25_led.get) == 1
    assert max(dense_led, key=dense_led.get) == 2


def test_minmax_gives_missing_scores_the_minimum():
    fused = fuse("minmax", {1: 2.0, 2: 1.0}, {3: 0.9, 1: 0.5}, FusionParams(dense_weight=0.5))
    assert fused[1] == pytest.approx(0.5)  # top bm25 (1.0), lowest dense (0.0)
    assert fused[3] == pytest.approx(0.5)  # no bm25 (0.0), top dense (1.0)


def test_rrf_uses_ranks_only():
    a = fuse("rrf", BM25, DENSE, FusionParams(dense_weight=0.5, rrf_k=60))
    b = fuse("rrf", {k: v * 100 for k, v in BM25.items()}, DENSE, FusionParams(dense_weight=0.5, rrf_k=60))
    assert a == b


def test_adaptive_trusts_bm25_when_its_best_hit_stands_out():
    assert bm25_confidence({1: 10.0, 2: 5.0}) == pytest.approx(0.5)
    assert bm25_confidence({1: 10.0, 2: 9.5}) == pytest.approx(0.05)
    assert bm25_confidence({}) == 0.0
    params = FusionParams(dense_weight=0.9, confident_dense_weight=0.1, confidence_gap=0.2)
    standout = fuse("adaptive", {1: 10.0, 2: 5.0}, {2: 0.9, 1: 0.8}, params)
    flat = fuse("adaptive", {1: 10.0, 2: 9.5}, {2: 0.9, 1: 0.8}, params)
    assert max(standout, key=standout.get) == 1
    assert max(flat, key=flat.get) == 2


def test_unknown_fusion_is_a_clear_error():
    with pytest.raises(ValueError, match="fusion must be one of"):
        fuse("magic", BM25, DENSE, FusionParams())


def test_coverage_lets_bm25_lead_when_its_best_passage_holds_the_question():
    bm25 = {1: 9.0, 2: 5.0, 3: 4.0}
    dense = {1: 0.70, 2: 0.95, 3: 0.72}
    own_words = fuse("coverage", bm25, dense, FusionParams(bm25_coverage=0.8))
    paraphrase = fuse("coverage", bm25, dense, FusionParams(bm25_coverage=0.2))
    assert max(own_words, key=own_words.get) == 1, "BM25's best passage holds the question: it leads"
    assert max(paraphrase, key=paraphrase.get) == 2, "few words in common: dense search leads"
    assert paraphrase == fuse("zscore", bm25, dense, FusionParams(dense_weight=0.6))


def test_verbatim_lifts_only_the_passages_that_repeat_the_question():
    bm25 = {1: 9.0, 2: 5.0, 3: 4.0}
    dense = {1: 0.70, 2: 0.95, 3: 0.72}
    plain = fuse("zscore", bm25, dense, FusionParams(dense_weight=0.6))
    assert max(plain, key=plain.get) == 2, "without the bonus dense search's favourite leads"
    lifted = fuse("verbatim", bm25, dense, FusionParams(dense_weight=0.6, verbatim=frozenset({1})))
    assert max(lifted, key=lifted.get) == 1 and lifted[1] == pytest.approx(
        plain[1] + FusionParams().verbatim_bonus
    )
    assert {r: lifted[r] for r in (2, 3)} == {r: plain[r] for r in (2, 3)}
    assert fuse("verbatim", bm25, dense, FusionParams(dense_weight=0.6)) == plain


def test_verbatim_rows_need_half_the_question_in_one_run(corpus_settings):
    from zhiwen.retriever import Retriever

    retriever = Retriever(corpus_settings)
    chunks = retriever.generation.chunks()
    rows = range(len(chunks))
    question = "量身打造新市民专属信贷产品有哪些？"  # 16 characters: a run of 8 is needed
    runs = {question[i : i + 8] for i in range(16 - 8 + 1)}
    expected = {row for row in rows if any(run in chunks[row].text for run in runs)}
    assert expected and any("量身打造新市民专属信贷产品" in chunks[row].text for row in expected)
    assert retriever.verbatim_rows(question, rows) == expected
    assert retriever.verbatim_rows("刚进城安家的人能申请什么专门的贷款？", rows) == frozenset()
    assert retriever.verbatim_rows("新市民？", rows) == frozenset(), "shorter than the minimum run"
