"""Tabular data: CSV or Parquet files with a named target column, and built-in tables.

A raw file's columns get roles (columns.py) and a transform fitted on the training rows only
(preprocess.py); built-in numeric tables such as delivery are standardised. Either way the
fitted statistics travel in `DataBundle.spec` so evaluate/predict reuse them exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError, shown_path
from ..sections import DataConfig
from .bundle import DataBundle
from .columns import as_text, describe_roles, infer_roles, numeric_values, sniff_separator
from .preprocess import embedded_layout, fit_preprocess, level_summary, output_names, transform
from .registry import DATASETS
from .splits import three_way, train_test_indices
from .target import (
    balance_notes,
    class_names,
    decide_task,
    drop_blank_targets,
    encode_labels,
    regression_target,
    target_column,
)
from .target_scale import STD_EPS, TargetScale


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
    target_transform: str = "none",
) -> DataBundle:
    """Standardise numeric features with training statistics and wrap the splits."""
    x_mean, x_std = x_tr.mean(0), x_tr.std(0) + STD_EPS
    spec: dict[str, Any] = {"kind": "tabular", "x_mean": [float(v) for v in x_mean], "x_std": [float(v) for v in x_std]}
    xs = [(a - x_mean) / x_std for a in (x_tr, x_va, x_te)]
    bundle = make_bundle(
        xs,
        [y_tr, y_va, y_te],
        task=task,
        feature_names=feature_names,
        target_name=target_name,
        classes=classes,
        spec=spec,
        target_transform=target_transform,
    )
    if bundle.target_transform == "none":  # numbers without a file (delivery, arrays): a note only when logged
        bundle.notes = []
    return bundle


def make_bundle(
    xs: list[np.ndarray],
    ys: list[np.ndarray],
    *,
    task: str,
    feature_names: list[str],
    target_name: str,
    classes: list[str] | None,
    spec: dict[str, Any],
    target_transform: str = "none",
) -> DataBundle:
    """Prepared features and raw targets of (train, val, test) as tensors; a regression target
    is put on the scale data.target_transform chooses (target_scale.py): standardised with the
    training rows' mean and standard deviation, after log1p where that is chosen."""
    spec = {**spec, "task": task, "feature_names": list(feature_names), "target_name": target_name}
    notes = []
    if task == "regression":
        scale, note = TargetScale.fit((xs[0], ys[0], xs[1], ys[1]), target_transform, "the training rows")
        notes.append(note)
        spec.update(scale.spec_fields())
        to_y = lambda a: torch.as_tensor(  # noqa: E731
            scale.standardise(a, "the validation or test rows"), dtype=torch.float32
        ).reshape(-1, 1)
        n_outputs = 1
    else:
        scale = TargetScale()
        spec["classes"] = list(classes or [])
        to_y = lambda a: torch.as_tensor(a, dtype=torch.long)  # noqa: E731
        n_outputs = len(classes or [])
    x_tr, x_va, x_te = (torch.as_tensor(a, dtype=torch.float32) for a in xs)
    y_tr, y_va, y_te = (to_y(a) for a in ys)
    return DataBundle(
        task=task,
        x_train=x_tr,
        y_train=y_tr,
        x_val=x_va,
        y_val=y_va,
        x_test=x_te,
        y_test=y_te,
        input_shape=(x_tr.shape[1],),
        n_outputs=n_outputs,
        default_model="mlp",
        classes=list(classes) if classes is not None else None,
        feature_names=list(feature_names),
        target_name=target_name,
        target_mean=scale.mean,
        target_std=scale.std,
        target_transform=scale.transform,
        spec=spec,
        notes=notes,
    )


def read_table(path: str | Path, sep: str | None = None, where: str | None = None) -> Any:
    """A pandas DataFrame from a CSV or Parquet file with at least one row, or a one-line DataError."""
    import pandas as pd

    p = Path(path)
    where = where or f"data file {shown_path(p)}"
    if p.is_dir():  # a folder exists: saying it does not would send the user looking for a typo
        raise DataError(f"{where} is a folder, not a file; give a CSV or Parquet file inside it")
    if not p.is_file():
        raise DataError(f"{where} does not exist; give a CSV or Parquet file")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise DataError(
                    f"reading {str(p)!r} needs pyarrow: pip install 'trainwell[parquet]', or give a CSV"
                ) from None
            df = pd.read_parquet(p)
        else:
            df = pd.read_csv(p, sep=sep or ",", skipinitialspace=True)
    except DataError:
        raise
    except Exception as exc:  # pandas raises many types for unreadable files
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{where} cannot be read as a table: {first}") from None
    if sep is None:
        sniff_separator(df, where)
    if len(df) == 0:
        raise DataError(f"{where} has a header but no rows; give a file with data rows")
    return df


@DATASETS.register("csv")
def load_csv(cfg: DataConfig) -> DataBundle:
    assert cfg.path and cfg.target  # DataConfig.validate guarantees both
    where = f"data file {shown_path(cfg.path)}"
    df = read_table(cfg.path, cfg.sep, where)
    test = None
    if cfg.test_path:
        test_where = f"test file {shown_path(cfg.test_path)}"
        test = (read_table(cfg.test_path, cfg.sep, test_where), test_where)
    return table_bundle(cfg, (df, where), None, test)


Frame = tuple[Any, str]  # a raw table and how messages name it ("data file 'x.csv'")


def table_bundle(cfg: DataConfig, train: Frame, val: Frame | None = None, test: Frame | None = None) -> DataBundle:
    """A raw table's bundle: column roles, the task, splits, the fitted preprocessing and the
    targets. `val`/`test`, when given, are separate tables; a missing one is split off `train`
    (data.val_fraction, data.test_fraction, data.split_seed). What `train --data` and
    `trainwell.fit` on a DataFrame both use."""
    assert cfg.target
    dropped: list[str] = []
    if cfg.drop_blank_target:
        train = _without_blank_targets(train, cfg.target, dropped, named=False)
        val, test = (_without_blank_targets(f, cfg.target, dropped, named=True) for f in (val, test))
    df, where = train
    target_col = target_column(df, cfg.target, where)
    task, why = decide_task(cfg.task, target_col, cfg.target)
    columns = infer_roles(df, cfg.target, cfg, where)
    frames = _three_frames(cfg, train, val, test)
    prep = fit_preprocess(frames[0][0], columns, cfg, where)
    xs = [transform(f, prep, w) for f, w in frames]
    targets = [(target_column(f, cfg.target, w), w) for f, w in frames]
    classes = class_names(target_col, cfg.target, where) if task == "classification" else None
    if classes is not None:
        ys = [encode_labels(t, classes, w) for t, w in targets]
        balance = balance_notes(ys[0], classes)
    else:
        ys = [regression_target(t, w) for t, w in targets]
        balance = []
    spec = {"kind": "tabular", "preprocess": prep, "embedded": embedded_layout(prep)}
    if classes is not None:  # training rows per class, for class weights
        spec["class_counts"] = np.bincount(ys[0], minlength=len(classes)).tolist()
    bundle = make_bundle(
        xs,
        ys,
        task=task,
        feature_names=output_names(prep),
        target_name=cfg.target,
        classes=classes,
        spec=spec,
        target_transform=cfg.target_transform,
    )
    roles = describe_roles(columns, level_summary(prep))
    bundle.notes = [f"task: {task} ({why})", *bundle.notes, *dropped, *roles, *balance]
    return bundle


def _without_blank_targets(frame: Frame | None, target: str, notes: list[str], named: bool) -> Any:
    """The frame without rows whose target is blank; the count goes to `notes` (prefixed by the
    table's name when `named`: a separate validation or test table)."""
    if frame is None:
        return None
    df, where = frame
    kept, note = drop_blank_targets(df, target, where)
    notes += [f"{where}: {n}" if named else n for n in note]
    return kept, where


def _three_frames(cfg: DataConfig, train: Frame, val: Frame | None, test: Frame | None) -> list[Frame]:
    """(train, validation, test) tables: the ones given, the rest split off `train`."""
    df, where = train
    n = len(df)
    if n < 6 - 2 * ((val is not None) + (test is not None)):
        raise DataError(f"{where} has only {n} rows; training, validation and test splits need more rows than that")
    rows = lambda idx: (df.iloc[idx], where)  # noqa: E731
    if val is None and test is None:
        tr, va, te = three_way(n, cfg.test_fraction, cfg.val_fraction, cfg.split_seed)
        return [rows(tr), rows(va), rows(te)]
    if val is not None and test is not None:
        return [train, val, test]
    tr, held = train_test_indices(n, cfg.val_fraction if val is None else cfg.test_fraction, cfg.split_seed)
    return [rows(tr), rows(held), test] if val is None else [rows(tr), val, rows(held)]


def features_for_prediction(df: Any, spec: dict[str, Any], where: str) -> torch.Tensor:
    """Model inputs for new raw rows, using the statistics fitted in training (stored in `spec`)."""
    if "preprocess" in spec:
        return torch.as_tensor(transform(df, spec["preprocess"], where), dtype=torch.float32)
    x = _numeric_features(df, spec["feature_names"], where)
    return torch.as_tensor((x - np.asarray(spec["x_mean"])) / np.asarray(spec["x_std"]), dtype=torch.float32)


def _numeric_features(df: Any, names: list[str], where: str) -> np.ndarray:
    """A built-in table's numeric columns from a file (runs on delivery predicted from a CSV)."""
    missing = [c for c in names if c not in df.columns]
    if missing:
        raise DataError(
            f"{where} lacks {len(missing)} column(s) the run was trained with: {', '.join(repr(n) for n in missing)}"
        )
    x = np.column_stack([numeric_values(df[c], c, where) for c in names])
    if np.isnan(x).any():
        row, col = np.argwhere(np.isnan(x))[0]
        raise DataError(
            f"{where}: feature {names[col]!r} is blank in file row {row + 2}; this run was trained on a "
            f"built-in table without blanks"
        )
    return x


def targets_for_evaluation(df: Any, spec: dict[str, Any], where: str) -> torch.Tensor:
    col = target_column(df, spec["target_name"], where)
    if spec["task"] == "classification":
        return torch.as_tensor(encode_labels(col, spec["classes"], where), dtype=torch.long)
    y = TargetScale.from_spec(spec).standardise(regression_target(col, where), where)
    return torch.as_tensor(y, dtype=torch.float32).reshape(-1, 1)


def rows_seen_in_training(df: Any, cfg: DataConfig) -> int:
    """How many rows of `df` equal a training or validation row of the run whose data config is
    `cfg` (every shared column the same), read again from the run's own file and split as it was;
    0 when that file is gone or the run did not train on a file. Metrics on such rows flatter the model."""
    import pandas as pd

    if cfg.name != "csv" or not cfg.path or not Path(cfg.path).is_file() or not cfg.target:
        return 0
    where = f"data file {shown_path(cfg.path)}"
    own = read_table(cfg.path, cfg.sep, where)
    if cfg.drop_blank_target:
        own, _ = drop_blank_targets(own, cfg.target, where)
    test = (own.iloc[:0], where) if cfg.test_path else None  # a separate test file: nothing of `own` is test
    frames = _three_frames(cfg, (own, where), None, test)
    seen = pd.concat([frames[0][0], frames[1][0]], ignore_index=True)
    shared = [c for c in df.columns if c in seen.columns]
    if not shared:
        return 0
    known = set(_row_keys(seen[shared]))
    return sum(key in known for key in _row_keys(df[shared]))


def _row_keys(df: Any) -> list[tuple[Any, ...]]:
    """Each row's cells as canonical text (columns.as_text), so a file read twice compares equal
    whatever dtypes pandas chose for each reading."""
    return list(zip(*(as_text(df[c]) for c in df.columns)))
