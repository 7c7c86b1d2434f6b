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
from .harness import EvalResult, Run, run_eval
from .metrics import evaluate, ranked_units
from .report import metrics_table, to_json, write_report, write_trec

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetError",
    "EvalResult",
    "Gold",
    "Query",
    "Run",
    "chunk_hits",
    "evaluate",
    "load_common",
    "load_dataset",
    "load_golden",
    "metrics_table",
    "ranked_units",
    "run_eval",
    "to_json",
    "write_report",
    "write_trec",
]
