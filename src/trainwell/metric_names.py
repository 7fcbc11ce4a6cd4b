"""Names of the metrics (metrics.py computes them): importable without torch, for config checks."""

from __future__ import annotations

REGRESSION = ("mae", "rmse", "r2")
CLASSIFICATION = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss", "roc_auc")
HIGHER_IS_BETTER = {"accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "r2"}
MAIN = {"regression": "mae", "classification": "accuracy"}  # the metric of each task in members_test_* (runner)
# the lessons' own data keep the metric their lessons score (delivery in minutes of MAE, images in accuracy)
LESSON_METRIC = {"delivery": "mae", "digits": "accuracy", "cifar10": "accuracy"}


def default_metric(data_name: str, task: str, classes_weighted: bool) -> str:
    """What a compare ranks by when the experiment names no metric. Regression: RMSE. Classification:
    log loss, or ROC AUC when classes are weighted in training (weighting shifts the predicted
    probabilities, which log loss punishes, and trades plain accuracy for the minority's recall)."""
    if data_name in LESSON_METRIC:
        return LESSON_METRIC[data_name]
    if task == "regression":
        return "rmse"
    return "roc_auc" if classes_weighted else "log_loss"


def metric_problem(name: str, task: str | None = None) -> str | None:
    """Why `name` (bare or test_-prefixed) cannot rank a compare, or None; `task` narrows the choice."""
    bare = name.removeprefix("test_")
    allowed = names(task) if task else REGRESSION + CLASSIFICATION
    if bare in allowed:
        return None
    what = f"a {task} metric" if task else "a metric trainwell computes"
    return f"{what}: one of {', '.join(allowed)}"


def names(task: str) -> tuple[str, ...]:
    return REGRESSION if task == "regression" else CLASSIFICATION


def mode_of(name: str) -> str:
    """'max' for metrics where higher is better, 'min' otherwise (losses, errors)."""
    return "max" if name.removeprefix("val_").removeprefix("test_") in HIGHER_IS_BETTER else "min"
