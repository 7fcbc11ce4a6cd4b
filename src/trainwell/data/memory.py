"""Data handed over in memory (trainwell.fit): tensors or NumPy arrays (x, y), a DataFrame and
its target column, or a torch Dataset, turned into the DataBundle the training loop indexes.

Tables (2-D x) are standardised with training statistics exactly as CSV data are; other shapes
(images, sequences) go in as float32 unchanged. Regression targets are standardised (MAE is
reported in their units); class labels of any type become indices into the sorted classes. A
Dataset is read once through a DataLoader with seeded workers, then held as tensors, so every
kind of data keeps the index-gathering fast path.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..sections import DataConfig
from ..seeding import seed_worker
from .bundle import DataBundle
from .registry import DATASETS
from .splits import three_way, train_test_indices
from .tabular import STD_EPS, bundle_from_arrays, table_bundle

NAME = "memory"  # data.name of runs trained with trainwell.fit


@DATASETS.register(NAME)
def _not_from_config(cfg: DataConfig) -> DataBundle:
    raise DataError(
        "data.name memory means arrays given to trainwell.fit; pass them again: trainwell.resume(run_dir, "
        "model=..., train=..., val=..., test=...)"
    )


def as_array(obj: Any, what: str) -> np.ndarray:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy()
    if hasattr(obj, "to_numpy"):  # pandas DataFrame / Series
        return obj.to_numpy()
    try:
        return np.asarray(obj)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be a tensor, a NumPy array or a DataFrame, not {type(obj).__name__}") from None


def from_dataset(ds: Any, seed: int, workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Every (x, y) of a map-style Dataset, read in order by a DataLoader with seeded workers."""
    from torch.utils.data import DataLoader

    loader = DataLoader(
        ds,
        batch_size=256,
        shuffle=False,
        num_workers=workers,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
    )
    xs, ys = [], []
    for batch in loader:
        if not isinstance(batch, (list, tuple)) or len(batch) != 2:
            raise DataError("a Dataset given to trainwell.fit must yield (x, y) pairs")
        xs.append(as_array(batch[0], "x"))
        ys.append(as_array(batch[1], "y"))
    if not xs:
        raise DataError("the Dataset given to trainwell.fit is empty")
    return np.concatenate(xs), np.concatenate(ys)


def as_frame(part: Any, target: str | None) -> tuple[Any, str | None] | None:
    """(DataFrame, target) when `part` is a DataFrame or a (DataFrame, target) pair, else None."""
    if isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], str):
        part, target = part
    if hasattr(part, "columns") and hasattr(part, "drop"):
        return part, target
    return None


ONEHOT_ALWAYS = 2**31  # a module of one's own reads a flat vector of numbers: every category one-hot, none embedded


def frame_bundle(train: Any, val: Any, test: Any, task: str, target: str | None, cfg: DataConfig) -> DataBundle:
    """DataFrames through the preprocessing `train --data` uses (tabular.table_bundle): text,
    boolean, date and blank cells included, every statistic saved in the bundle's spec."""
    df, target = as_frame(train, target) or (None, None)
    if target is None or target not in df.columns:
        raise DataError(
            f"train is a DataFrame: name its target column with target=... (columns: {', '.join(map(str, df.columns))})"
        )
    others = []
    for part, what in ((val, "val"), (test, "test")):
        frame = None if part is None else as_frame(part, target)
        if part is not None and frame is None:
            raise DataError(f"{what} must be a DataFrame with the target column {target!r}, as train is")
        others.append(None if frame is None else (as_table(frame[0]), f"{what} DataFrame"))
    table = dataclasses.replace(cfg, target=target, task=task, onehot_max_levels=ONEHOT_ALWAYS)
    bundle = table_bundle(table, (as_table(df), "train DataFrame"), *others)
    bundle.spec["data_fingerprint"] = frame_fingerprint(df)
    return bundle


def as_table(df: Any) -> Any:
    """A DataFrame (training rows, or rows to predict) as a CSV would give it: a fresh 0..n-1 index (the splits index by
    position) and
    datetime columns as ISO text (dates are read from text, as in a file)."""
    import pandas as pd

    out = df.reset_index(drop=True)
    for name in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[name]):
            out[name] = out[name].dt.strftime("%Y-%m-%dT%H:%M:%S").astype(object)
    return out


def frame_fingerprint(df: Any) -> str:
    """Identifies a training DataFrame (values, column names and types), so a resume can refuse another."""
    import pandas as pd

    h = hashlib.sha256(repr([(str(c), str(t)) for c, t in df.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def split_xy(
    part: Any, target: str | None, what: str, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str] | None, str]:
    """(x, y, feature names or None, target name) of one split in any accepted form."""
    if isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], str):
        part, target = part
    if hasattr(part, "columns") and hasattr(part, "drop"):  # a DataFrame holding the target column
        if target is None or target not in part.columns:
            raise DataError(
                f"{what} is a DataFrame: name its target column with target=... (columns: "
                f"{', '.join(map(str, part.columns))})"
            )
        names = [str(c) for c in part.columns if c != target]
        x = part.drop(columns=[target])
        if not all(np.issubdtype(t, np.number) for t in x.dtypes):
            bad = next(c for c, t in zip(x.columns, x.dtypes) if not np.issubdtype(t, np.number))
            raise DataError(f"{what}: feature column {bad!r} is not numeric; encode it first")
        return x.to_numpy(dtype=np.float64), part[target].to_numpy(), names, target
    if isinstance(part, torch.utils.data.Dataset) and not isinstance(part, (tuple, list)):
        x, y = from_dataset(part, seed)
        return x, y, None, "target"
    if isinstance(part, (tuple, list)) and len(part) == 2:
        x, y = as_array(part[0], f"{what} x"), as_array(part[1], f"{what} y")
        if len(x) != len(y):
            raise DataError(f"{what} has {len(x)} inputs but {len(y)} targets")
        return x, y, None, "target"
    raise DataError(
        f"{what} must be (x, y) tensors or arrays, a DataFrame with target=..., or a torch Dataset; got "
        f"{type(part).__name__}"
    )


def decide_task(task: str, y: np.ndarray) -> str:
    if task != "auto":
        return task
    return "regression" if np.issubdtype(y.dtype, np.floating) else "classification"


def fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    """Identifies training data, so that a resume can refuse different arrays."""
    h = hashlib.sha256()
    for a in (x, y):
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes() if a.dtype != object else repr(a.tolist()).encode())
    return h.hexdigest()


def three_parts(parts: list[Any], cfg: DataConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fill a missing validation or test split by splitting the training data (seeded by data.split_seed)."""
    (x, y), val, test = parts
    if val is None and test is None:
        tr, va, te = three_way(len(x), cfg.test_fraction, cfg.val_fraction, cfg.split_seed)
        return [(x[tr], y[tr]), (x[va], y[va]), (x[te], y[te])]
    if val is None or test is None:
        tr, held = train_test_indices(len(x), cfg.val_fraction if val is None else cfg.test_fraction, cfg.split_seed)
        given = val if val is not None else test
        pair = [(x[held], y[held]), given] if val is None else [given, (x[held], y[held])]
        return [(x[tr], y[tr]), *pair]
    return [(x, y), val, test]


def memory_bundle(
    train: Any, val: Any, test: Any, task: str, target: str | None, cfg: DataConfig, seed: int
) -> DataBundle:
    if as_frame(train, target) is not None:
        return frame_bundle(train, val, test, task, target, cfg)
    x, y, names, target_name = split_xy(train, target, "train", seed)
    raw = [
        (x, y),
        *(None if p is None else split_xy(p, target, w, seed)[:2] for p, w in ((val, "val"), (test, "test"))),
    ]
    if len(x) < 3:
        raise DataError(f"train holds {len(x)} samples; training, validation and test need more")
    splits = three_parts(raw, cfg)
    task = decide_task(task, y)
    classes = None
    if task == "classification":
        values = np.unique(splits[0][1])
        classes = [str(v) for v in values]
        index = {v: i for i, v in enumerate(values.tolist())}
        try:
            splits = [(xs, np.array([index[v] for v in ys.tolist()], dtype=np.int64)) for xs, ys in splits]
        except KeyError as exc:
            raise DataError(
                f"label {exc.args[0]!r} of the validation or test data was not seen in training; known: "
                f"{', '.join(classes)}"
            ) from None
    else:
        splits = [(xs, ys.astype(np.float64)) for xs, ys in splits]
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits
    if x_tr.ndim == 2:
        names = names or [f"x{i}" for i in range(x_tr.shape[1])]
        bundle = bundle_from_arrays(
            x_tr,
            y_tr,
            x_va,
            y_va,
            x_te,
            y_te,
            task=task,
            feature_names=names,
            target_name=target_name,
            classes=classes,
            target_transform=cfg.target_transform,
        )
    else:
        bundle = unscaled_bundle(splits, task, classes)
    bundle.spec["data_fingerprint"] = fingerprint(x, y)
    return bundle


def unscaled_bundle(splits: list[tuple[np.ndarray, np.ndarray]], task: str, classes: list[str] | None) -> DataBundle:
    """Inputs of any shape as float32 as given; regression targets standardised."""
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits
    y_mean, y_std = (float(y_tr.mean()), float(y_tr.std() + STD_EPS)) if task == "regression" else (0.0, 1.0)

    def ys(a: np.ndarray) -> torch.Tensor:
        if task == "classification":
            return torch.as_tensor(a, dtype=torch.long)
        return torch.as_tensor((a - y_mean) / y_std, dtype=torch.float32).reshape(len(a), -1)

    xs = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
    spec = {"kind": "array", "task": task, "y_mean": y_mean, "y_std": y_std, "classes": classes}
    n_outputs = len(classes) if classes else (1 if y_tr.ndim == 1 else y_tr.shape[1])
    return DataBundle(
        task=task,
        x_train=xs(x_tr),
        y_train=ys(y_tr),
        x_val=xs(x_va),
        y_val=ys(y_va),
        x_test=xs(x_te),
        y_test=ys(y_te),
        input_shape=tuple(x_tr.shape[1:]),
        n_outputs=n_outputs,
        default_model="custom",
        classes=classes,
        target_mean=y_mean,
        target_std=y_std,
        spec=spec,
    )


def model_inputs(x: Any, spec: dict[str, Any]) -> torch.Tensor:
    """New inputs prepared as the training inputs were (standardised with the training statistics for tables)."""
    a = as_array(x, "x").astype(np.float64)
    if "x_mean" in spec:
        a = (a - np.asarray(spec["x_mean"])) / np.asarray(spec["x_std"])
    return torch.as_tensor(a, dtype=torch.float32)
