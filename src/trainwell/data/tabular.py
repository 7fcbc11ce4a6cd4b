"""Tabular data: CSV or Parquet files with a named target column, and standardisation.

Features (and a regression target) are standardised with statistics of the training rows only;
the statistics travel in `DataBundle.spec` so evaluate/predict reuse them exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import DataConfig
from ..errors import DataError
from . import DATASETS
from .bundle import DataBundle
from .splits import three_way, train_test_indices

STD_EPS = 1e-8  # added to standard deviations, so a constant column cannot divide by zero


def bundle_from_arrays(
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    x_te: np.ndarray,
    y_te: np.ndarray,
    *,
    task: str,
    feature_names: list[str],
    target_name: str,
    classes: list[str] | None = None,
) -> DataBundle:
    """Standardise with training statistics and wrap the splits as float32 tensors."""
    x_mean, x_std = x_tr.mean(0), x_tr.std(0) + STD_EPS
    spec: dict[str, Any] = {
        "kind": "tabular",
        "task": task,
        "feature_names": list(feature_names),
        "target_name": target_name,
        "x_mean": [float(v) for v in x_mean],
        "x_std": [float(v) for v in x_std],
    }
    to_x = lambda a: torch.as_tensor((a - x_mean) / x_std, dtype=torch.float32)  # noqa: E731
    if task == "regression":
        y_mean, y_std = float(y_tr.mean()), float(y_tr.std() + STD_EPS)
        spec.update(y_mean=y_mean, y_std=y_std)
        to_y = lambda a: torch.as_tensor((a - y_mean) / y_std, dtype=torch.float32).reshape(-1, 1)  # noqa: E731
        n_outputs = 1
    else:
        y_mean, y_std = 0.0, 1.0
        spec["classes"] = list(classes or [])
        to_y = lambda a: torch.as_tensor(a, dtype=torch.long)  # noqa: E731
        n_outputs = len(classes or [])
    return DataBundle(
        task=task,
        x_train=to_x(x_tr),
        y_train=to_y(y_tr),
        x_val=to_x(x_va),
        y_val=to_y(y_va),
        x_test=to_x(x_te),
        y_test=to_y(y_te),
        input_shape=(x_tr.shape[1],),
        n_outputs=n_outputs,
        default_model="mlp",
        classes=list(classes) if classes is not None else None,
        feature_names=list(feature_names),
        target_name=target_name,
        target_mean=y_mean,
        target_std=y_std,
        spec=spec,
    )


def read_table(path: str | Path) -> Any:
    """A pandas DataFrame from a CSV or Parquet file, or a one-line DataError."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file {str(p)!r} does not exist; give a CSV or Parquet file")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise DataError(f"reading {str(p)!r} needs pyarrow: pip install 'trainwell[parquet]', or give a CSV") from None
            return pd.read_parquet(p)
        return pd.read_csv(p)
    except DataError:
        raise
    except Exception as exc:  # pandas raises many types for unreadable files
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DataError(f"data file {str(p)!r} cannot be read as a table: {first}") from None


def _features(df: Any, names: list[str], where: str) -> np.ndarray:
    """Numeric feature matrix; refuses missing columns, non-numeric values and NaN."""
    import pandas as pd

    missing = [c for c in names if c not in df.columns]
    if missing:
        raise DataError(f"{where} has no column {missing[0]!r}; expected columns: {', '.join(names)}")
    for col in names:
        if not pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
            bad = df[col][pd.to_numeric(df[col], errors="coerce").isna() & df[col].notna()]
            example = bad.iloc[0] if len(bad) else df[col].iloc[0]
            raise DataError(f"{where}: feature column {col!r} has a non-numeric value {example!r}; features must be numbers")
    x = df[names].to_numpy(dtype=np.float64)
    if not np.isfinite(x).all():
        row, col = np.argwhere(~np.isfinite(x))[0]
        raise DataError(f"{where}: feature {names[col]!r} is missing or not finite in row {row + 2}; fill or drop such rows")
    return x


def _target(df: Any, target: str, where: str) -> Any:
    if target not in df.columns:
        raise DataError(f"{where} has no target column {target!r}; columns are: {', '.join(map(str, df.columns))}")
    col = df[target]
    if col.isna().any():
        row = int(np.flatnonzero(col.isna().to_numpy())[0])
        raise DataError(f"{where}: target {target!r} is missing in row {row + 2}; fill or drop such rows")
    return col


def decide_task(declared: str, target_col: Any) -> str:
    import pandas as pd

    if declared != "auto":
        return declared
    return "regression" if pd.api.types.is_numeric_dtype(target_col) and not pd.api.types.is_bool_dtype(target_col) else "classification"


def encode_labels(col: Any, classes: list[str], where: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    names = col.astype(str).to_numpy()
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
    if not np.isfinite(y).all():
        raise DataError(f"{where}: the target holds an infinite value; targets must be finite numbers")
    return y


@DATASETS.register("csv")
def load_csv(cfg: DataConfig) -> DataBundle:
    assert cfg.path and cfg.target  # DataConfig.validate guarantees both
    df = read_table(cfg.path)
    where = f"data file {cfg.path!r}"
    target_col = _target(df, cfg.target, where)
    names = [str(c) for c in df.columns if c != cfg.target]
    if not names:
        raise DataError(f"{where} has only the target column; it needs at least one feature column")
    x = _features(df, names, where)
    task = decide_task(cfg.task, target_col)
    test_df = read_table(cfg.test_path) if cfg.test_path else None
    test_where = f"test file {cfg.test_path!r}"
    if task == "classification":
        classes = sorted(set(target_col.astype(str)))
        if len(classes) < 2:
            raise DataError(f"{where}: target {cfg.target!r} has a single class {classes[0]!r}; classification needs 2 or more")
        y = encode_labels(target_col, classes, where)
    else:
        classes = None
        y = regression_target(target_col, where)
    if test_df is not None:
        x_te = _features(test_df, names, test_where)
        tcol = _target(test_df, cfg.target, test_where)
        y_te = encode_labels(tcol, classes, test_where) if classes else regression_target(tcol, test_where)
        tr, va = train_test_indices(len(x), cfg.val_fraction, cfg.split_seed) if len(x) >= 4 else _too_few(len(x), where)
        parts = (x[tr], y[tr], x[va], y[va], x_te, y_te)
    else:
        if len(x) < 6:
            _too_few(len(x), where)
        tr, va, te = three_way(len(x), cfg.test_fraction, cfg.val_fraction, cfg.split_seed)
        parts = (x[tr], y[tr], x[va], y[va], x[te], y[te])
    return bundle_from_arrays(*parts, task=task, feature_names=names, target_name=cfg.target, classes=classes)


def _too_few(n: int, where: str) -> Any:
    raise DataError(f"{where} has only {n} rows; training, validation and test splits need more rows than that")


def features_for_prediction(df: Any, spec: dict[str, Any], where: str) -> torch.Tensor:
    """Standardised float32 features for new rows, using the training statistics in `spec`."""
    x = _features(df, spec["feature_names"], where)
    return torch.as_tensor((x - np.asarray(spec["x_mean"])) / np.asarray(spec["x_std"]), dtype=torch.float32)


def targets_for_evaluation(df: Any, spec: dict[str, Any], where: str) -> torch.Tensor:
    col = _target(df, spec["target_name"], where)
    if spec["task"] == "classification":
        return torch.as_tensor(encode_labels(col, spec["classes"], where), dtype=torch.long)
    y = regression_target(col, where)
    return torch.as_tensor((y - spec["y_mean"]) / spec["y_std"], dtype=torch.float32).reshape(-1, 1)
