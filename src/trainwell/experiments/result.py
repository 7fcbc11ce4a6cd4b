"""What a compare of one experiment produced (ExperimentResult), and how its metric reads: in
words, and whether lower is better. The report, its figures and its headline all read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .spec import Experiment

METRIC_WORDS = {
    "test_mae": "test MAE",
    "test_rmse": "test RMSE",
    "test_r2": "test R²",
    "test_accuracy": "test accuracy",
    "test_balanced_accuracy": "test balanced accuracy",
    "test_macro_f1": "test macro F1",
    "test_log_loss": "test log loss",
    "test_roc_auc": "test ROC AUC",
    "test_loss": "test loss",
}
HIGHER_IS_BETTER = frozenset({"test_accuracy", "test_r2", "test_balanced_accuracy", "test_macro_f1", "test_roc_auc"})


def metric_words(metric: str) -> str:
    return METRIC_WORDS.get(metric, metric.replace("_", " "))


def lower_is_better(metric: str) -> bool:
    return metric not in HIGHER_IS_BETTER


@dataclass
class ExperimentResult:
    experiment: Experiment
    out: Path
    rows: list[dict[str, Any]]  # results.csv, in plan order
    metric: str  # "test_mae" or "test_accuracy"
    summary: list[dict[str, Any]] = field(default_factory=list)
    baselines: list[dict[str, Any]] = field(default_factory=list)
    advice: dict[str, list[str]] = field(default_factory=dict)  # variant → summary lines
    advice_brief: dict[str, str] = field(default_factory=dict)  # variant → at most one terminal line
    run_advice: dict[tuple[str, int], list[str]] = field(default_factory=dict)  # (variant, seed) → messages
    histories: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    complete: bool = True
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # wall seconds of training, baselines, report
    data: dict[str, Any] = field(
        default_factory=dict
    )  # compare.ranking: source, rows, split, target, task, class_weights

    @property
    def lower_is_better(self) -> bool:
        return lower_is_better(self.metric)

    @property
    def failed(self) -> int:
        return sum(r["status"] == "failed" for r in self.rows)

    @property
    def missing(self) -> list[dict[str, Any]]:
        """Rows of runs that did not finish: the compare was interrupted before or while they ran."""
        return [r for r in self.rows if r["status"] not in ("ok", "failed")]
