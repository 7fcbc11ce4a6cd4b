"""The scale a regression target is learned on: optionally log1p, then standardised.

A positive, right-skewed target (prices, wages, waiting times, counts) spreads its rows over
decades: a network fitting it with squared error spends its capacity on the few largest rows.
`data.target_transform` chooses what the network learns:

- none: the target as given, standardised with the training rows' mean and standard deviation.
- log1p: log(1 + y), then standardised; predictions are mapped back with expm1, so every
  prediction and metric (MAE, RMSE, R² in metrics.json, evaluate, predict, the scikit-learn
  regressor) is in the target's own units. The back-transform of a mean in log space estimates
  the conditional median rather than the mean: it helps RMSE where the log's errors are more even.
- auto: log1p where it predicts better. Only a target that is >= 0 everywhere and right-skewed
  (skewness above SKEW_GATE) is a candidate; for it, two ridge regressions on the prepared
  training inputs, one of y and one of log1p(y), predict the validation rows, and log1p is chosen
  when its RMSE there, back on the target's units, is at least MIN_GAIN lower. Skewness alone
  does not say it: on benchmarks/bench_tables.py (3,000 training rows, RMSE of trainwell's
  default on the original scale) log1p made the two most skewed targets worse — check_times
  (skewness 3.3) 75.1 → 76.4/76.7 (two seeds), nmes1988 (3.3) 6.69 → 7.02/7.04 — and the ridge
  check agrees (validation RMSE ratio 1.003 and 1.057), so auto keeps both as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from ..errors import DataError

STORED = ("none", "log1p")  # what a run's spec may hold ("auto" is resolved at load time)
STD_EPS = 1e-8  # added to the standard deviation, so a constant target cannot divide by zero
SKEW_GATE = 1.0  # skewness (Fisher-Pearson, unitless) a target needs before auto tries the log at all
MIN_GAIN = 0.05  # auto takes log1p when the ridge check's validation RMSE falls by at least 5%
RIDGE_PENALTY = 1.0  # the ridge check's L2 penalty, on inputs already scaled to ~unit spread (preprocess.py)

Values = TypeVar("Values", np.ndarray, torch.Tensor)
Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x_train, y_train, x_val, y_val


def skewness(y: np.ndarray) -> float:
    """The sample skewness m3 / m2^1.5 (0 for a symmetric or constant target)."""
    centred = np.asarray(y, dtype=np.float64) - np.mean(y)
    m2 = float(np.mean(centred**2))
    return float(np.mean(centred**3)) / m2**1.5 if m2 > 0 else 0.0


def ridge_rmse(split: Split, logged: bool) -> float:
    """Validation RMSE (target units) of a ridge regression fitted on the training rows, of y or of log1p(y)."""
    x_tr, y_tr, x_va, y_va = split
    design = lambda x: np.c_[np.asarray(x, dtype=np.float64), np.ones(len(x))]  # noqa: E731  (an intercept)
    a, b = design(x_tr), design(x_va)
    target = np.log1p(y_tr) if logged else y_tr
    coef = np.linalg.solve(a.T @ a + RIDGE_PENALTY * np.eye(a.shape[1]), a.T @ target)
    with np.errstate(over="ignore", invalid="ignore"):  # a log fit that explodes scores inf: no log
        pred = np.expm1(b @ coef) if logged else b @ coef
        rmse = float(np.sqrt(np.mean((y_va - pred) ** 2)))
    return rmse if np.isfinite(rmse) else float("inf")


def choose(split: Split, setting: str) -> tuple[str, str]:
    """(transform, why) under data.target_transform `setting`; `split`: (x_train, y_train, x_val,
    y_val), inputs as the network sees them and targets in their own units."""
    if setting != "auto":
        return setting, "data.target_transform"
    y = split[1]
    if len(y) == 0 or float(np.min(y)) < 0:
        return "none", "auto: the target has negative values"
    skew = skewness(y)
    if skew <= SKEW_GATE or len(split[3]) == 0:
        return "none", f"auto: skewness {skew:.2f}; log1p is tried above {SKEW_GATE:g}"
    ratio = ridge_rmse(split, logged=True) / max(ridge_rmse(split, logged=False), 1e-300)
    verdict = "log1p" if ratio <= 1 - MIN_GAIN else "none"
    return verdict, f"auto: skewness {skew:.2f}; a linear fit of log1p has {ratio:.2f}× the validation RMSE"


def forward(y: np.ndarray, transform: str, where: str) -> np.ndarray:
    """Targets on the learned scale (before standardising); log1p refuses values <= -1 (its log is undefined)."""
    if transform == "none":
        return y
    if len(y) and float(np.min(y)) <= -1:
        raise DataError(
            f"{where}: the target holds {float(np.min(y)):g}; this run learns log(1 + target), defined only above -1 "
            "(set data.target_transform: none)"
        )
    return np.log1p(y)


@dataclass(frozen=True)
class TargetScale:
    """How standardised model outputs map to the target's units: expm1 (log1p) or nothing after × std + mean."""

    mean: float = 0.0
    std: float = 1.0
    transform: str = "none"

    @classmethod
    def fit(cls, split: Split, setting: str, where: str) -> tuple["TargetScale", str]:
        """The scale of the training targets split[1] (raw units) and a start line saying what was chosen and why."""
        transform, why = choose(split, setting)
        learned = forward(split[1], transform, where)
        scale = cls(float(learned.mean()), float(learned.std() + STD_EPS), transform)
        shown = "log(1 + target), standardised" if transform == "log1p" else "standardised as given"
        return scale, f"target: {shown} ({why}; data.target_transform: auto, none or log1p)"

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "TargetScale":
        """A run's stored scale; runs saved before the transform existed learned the target as given."""
        return cls(spec.get("y_mean", 0.0), spec.get("y_std", 1.0), spec.get("target_transform", "none"))

    def spec_fields(self) -> dict[str, Any]:
        return {"y_mean": self.mean, "y_std": self.std, "target_transform": self.transform}

    def standardise(self, y: np.ndarray, where: str) -> np.ndarray:
        """Raw targets → what the network is trained to output."""
        return (forward(np.asarray(y, dtype=np.float64), self.transform, where) - self.mean) / self.std

    def to_original(self, z: Values) -> Values:
        """Standardised outputs → the target's units (NumPy arrays or tensors, any shape)."""
        learned = z * self.std + self.mean
        if self.transform == "none":
            return learned
        return torch.expm1(learned) if isinstance(learned, torch.Tensor) else np.expm1(learned)
