"""The optional reranking stage with a real sentence-transformers CrossEncoder.

No Chinese cross-encoder with trained weights installs offline here, so the test builds one from the
converted e5 encoder with a fresh (seeded) classification head: its scores mean nothing, which is what
lets the test check that the final order is exactly the cross-encoder's order.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from zhiwen.core.model import ensure_default_model
from zhiwen.retriever import Retriever
from zhiwen.retriever.search import RERANK_DEPTH

pytestmark = pytest.mark.slow


def test_reranker_reorders_the_candidates_by_cross_encoder_score(corpus_settings, embedder):
    from sentence_transformers import CrossEncoder

    model_dir = str(ensure_default_model(corpus_settings.cache_dir))
    query = "如何支持新市民金融？"
    torch.manual_seed(0)
    hits = Retriever(corpus_settings.replace(reranker=model_dir), embedder=embedder).search(query, k=5)
    assert len(hits) == 5 and all("rerank" in h.scores and "fused" in h.scores for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    pool = Retriever(corpus_settings, embedder=embedder).search(query, k=RERANK_DEPTH, dedupe=False)
    assert {h.chunk_id for h in hits} <= {h.chunk_id for h in pool}, (
        "reranking only reorders the fused candidates"
    )

    torch.manual_seed(0)
    judge = CrossEncoder(model_dir, device="cpu")
    expected = judge.predict([(query, f"{h.context}\n{h.text}" if h.context else h.text) for h in hits])
    np.testing.assert_allclose(np.asarray(expected).ravel(), [h.score for h in hits], rtol=1e-4, atol=1e-5)
