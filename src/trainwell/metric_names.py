"""Names of the metrics (metrics.py computes them): importable without torch, for config checks."""

from __future__ import annotations

REGRESSION = ("mae", "rmse", "r2")
CLASSIFICATION = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss", "roc_auc")
HIGHER_IS_BETTER = {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "r2"}
MAIN = {"regression": "mae", "classification": "accuracy"}  # the headline metric of each task


def names(task: str) -> tuple[str, ...]:
    return REGRESSION if task == "regression" else CLASSIFICATION


def mode_of(name: str) -> str:
    """'max' for metrics where higher is better, 'min' otherwise (losses, errors)."""
    return "max" if name.removeprefix("val_").removeprefix("test_") in HIGHER_IS_BETTER else "min"
