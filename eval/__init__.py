"""Evaluation: measure retrieval on the golden set and external dev sets (``zhiwen eval``)."""

from .datasets import (
    DATASETS,
    Dataset,
    DatasetError,
    Gold,
    Query,
    chunk_hits,
    load_common,
    load_dataset,
    load_golden,
)
from .harness import CHUNKERS, STRATEGIES, EvalResult, Run, run_eval
from .metrics import RefusalScores, evaluate, ranked_units, refusal_scores
from .report import metrics_table, to_json, write_report, write_trec

__all__ = [
    "CHUNKERS",
    "DATASETS",
    "STRATEGIES",
    "Dataset",
    "DatasetError",
    "EvalResult",
    "Gold",
    "Query",
    "RefusalScores",
    "Run",
    "chunk_hits",
    "evaluate",
    "load_common",
    "load_dataset",
    "load_golden",
    "metrics_table",
    "ranked_units",
    "refusal_scores",
    "run_eval",
    "to_json",
    "write_report",
    "write_trec",
]
