"""The target column: blanks, which task it asks for (and why), labels and class balance."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError
from .columns import FLOAT_LIMIT, as_text

FEW_VALUES = 20  # a whole-number target with at most this many distinct values may be classes or quantities
DOMINANT_SHARE = 0.8  # above this share of the training rows, one class dominates (warned)
SHOWN_ROWS = 5  # file rows named in a message about blanks


def _present(df: Any, target: str, where: str) -> Any:
    if target not in df.columns:
        raise DataError(f"{where} has no target column {target!r}; columns are: {', '.join(map(str, df.columns))}")
    return df[target]


def _blank(col: Any) -> np.ndarray:
    return col.isna().to_numpy() | (col.astype(str).str.strip() == "").to_numpy()


def drop_blank_targets(df: Any, target: str, where: str) -> tuple[Any, list[str]]:
    """(the rows whose target is not blank, a note counting those left out); data.drop_blank_target."""
    blank = _blank(_present(df, target, where))
    if not blank.any():
        return df, []
    if blank.all():
        raise DataError(f"{where}: target {target!r} is blank in every row; there is nothing to learn from")
    note = f"left out {int(blank.sum())} of {len(df)} rows whose target {target!r} is blank (data.drop_blank_target)"
    return df[~blank].reset_index(drop=True), [note]


def target_column(df: Any, target: str, where: str) -> Any:
    """The target column; refuses a missing column and blanks (counted, first file rows named)."""
    col = _present(df, target, where)
    blank = _blank(col)
    if blank.any():
        rows = [str(i + 2) for i in np.flatnonzero(blank)[:SHOWN_ROWS]]  # +2: the header is file row 1
        more = ", ..." if blank.sum() > SHOWN_ROWS else ""
        raise DataError(
            f"{where}: target {target!r} is blank in {int(blank.sum())} row(s) (file rows "
            f"{', '.join(rows)}{more}); fill or drop those rows, or set data.drop_blank_target: true"
        )
    return col


def decide_task(declared: str, col: Any, target: str) -> tuple[str, str]:
    """(task, why). A whole-number target with few distinct values is refused as ambiguous."""
    import pandas as pd

    if declared != "auto":
        return declared, "set by data.task (--task)"
    if pd.api.types.is_bool_dtype(col):
        return "classification", "the target holds true/false values"
    if not pd.api.types.is_numeric_dtype(col):
        return "classification", f"the target holds text labels, {col.nunique()} classes"
    values = col.to_numpy(dtype=np.float64)
    distinct = np.unique(values)
    if np.all(np.mod(values, 1) == 0) and len(distinct) <= FEW_VALUES:
        shown = ", ".join(str(int(v)) for v in distinct[:8]) + (", ..." if len(distinct) > 8 else "")
        raise DataError(
            f"target {target!r} holds whole numbers with only {len(distinct)} distinct values ({shown}): "
            f"classes or quantities? "
            "say which with --task classification or --task regression (data.task)"
        )
    return "regression", f"the target holds numbers with {len(distinct)} distinct values"


def class_names(col: Any, target: str, where: str) -> list[str]:
    classes = sorted(set(as_text(col)))
    if len(classes) < 2:
        raise DataError(f"{where}: target {target!r} has a single class {classes[0]!r}; classification needs 2 or more")
    return classes


def encode_labels(col: Any, classes: list[str], where: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    names = as_text(col)
    unknown = [n for n in names if n not in index]
    if unknown:
        raise DataError(f"{where}: label {unknown[0]!r} was not seen in training; known classes: {', '.join(classes)}")
    return np.array([index[n] for n in names], dtype=np.int64)


def regression_target(col: Any, where: str) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(col, errors="coerce")
    if values.isna().any():
        bad = col[values.isna()].iloc[0]
        raise DataError(f"{where}: target value {bad!r} is not a number; declare data.task=classification for labels")
    y = values.to_numpy(dtype=np.float64)
    if not np.all(np.abs(y) <= FLOAT_LIMIT):
        row = int(np.flatnonzero(~(np.abs(y) <= FLOAT_LIMIT))[0])
        raise DataError(
            f"{where}: target {col.name!r} holds {float(y[row]):g} in file row {row + 2}, infinite or too "
            f"close to the float limit (1e308); targets must be finite numbers of sensible size"
        )
    return y


def balance_notes(y_train: np.ndarray, classes: list[str]) -> list[str]:
    """A warning when one class dominates the training rows (accuracy then flatters the model)."""
    counts = np.bincount(y_train, minlength=len(classes))
    top = int(counts.argmax())
    share = counts[top] / max(1, counts.sum())
    if share <= DOMINANT_SHARE:
        return []
    return [
        f"warning: class {classes[top]!r} is {share:.1%} of the training rows; predicting it always scores "
        f"{share:.1%} accuracy, "
        "so judge the model by balanced accuracy or ROC AUC; train.class_weights: decision (the tabular preset's) "
        "or balanced balances the label decision, and probabilities stay calibrated either way"
    ]
