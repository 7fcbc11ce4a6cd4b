"""Classical baselines on the same split as the networks, so a report shows whether the network
is worth it: a linear model and histogram gradient boosting (scikit-learn), fitted on the
training rows and scored on the test rows by the networks' own metrics (in the target's original
units), with classes weighted as the networks weight them. On delivery the noise-free generating
function is scored too: the floor no model can beat by much.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..config import DataConfig
from ..metrics import compute

SEED = 0  # random_state of the gradient-boosting model
PROBABILITY_FLOOR = 1e-15  # as scikit-learn's log_loss clips


def _tabular(bundle: Any) -> bool:
    return len(bundle.input_shape) == 1 and bundle.spec.get("kind") == "tabular"


def fit_baselines(data_cfg: DataConfig, balanced: bool = False) -> list[dict[str, Any]]:
    """Rows {model, test_<metric> for every metric of the task} for a tabular data set; [] for images.
    Scored by metrics.compute, the function that scores the networks, so any metric a compare
    reports is comparable. `balanced`: the classifiers weight classes as the networks do under
    train.class_weights balanced (rows / (classes × the class's rows), scikit-learn's "balanced")."""
    from ..data import load_data

    bundle = load_data(data_cfg)
    if not _tabular(bundle):
        return []
    x_tr, x_te = bundle.x_train.numpy().astype(np.float64), bundle.x_test.numpy().astype(np.float64)
    if bundle.task == "regression":
        rows = _regression(bundle, x_tr, x_te)
        floor = noise_floor(data_cfg, bundle)
        if floor is not None:
            rows.append({"model": "generating function (noise floor)", **floor})
        return rows
    return _classification(bundle, x_tr, x_te, balanced)


def _scored(task: str, outputs: np.ndarray, bundle: Any) -> dict[str, float]:
    """test_<name> for every metric of the task; outputs as the networks give them (see metrics.py)."""
    import torch

    out = torch.as_tensor(outputs, dtype=torch.float64).unsqueeze(0)
    values = compute(task, out, bundle.y_test, bundle.target_std)
    return {f"test_{k}": float(v[0]) for k, v in values.items()}


def _regression(bundle: Any, x_tr: np.ndarray, x_te: np.ndarray) -> list[dict[str, Any]]:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    y_tr = bundle.y_train.numpy().ravel()
    rows = []
    for name, model in (
        ("linear regression", LinearRegression()),
        ("gradient boosting", HistGradientBoostingRegressor(random_state=SEED)),
    ):
        pred = model.fit(x_tr, y_tr).predict(x_te)  # standardised units, as the networks' outputs
        rows.append({"model": name, **_scored("regression", pred.reshape(-1, 1), bundle)})
    return rows


def _classification(bundle: Any, x_tr: np.ndarray, x_te: np.ndarray, balanced: bool) -> list[dict[str, Any]]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    weights = "balanced" if balanced else None
    y_tr, classes = bundle.y_train.numpy(), bundle.n_outputs
    rows = []
    for name, model in (
        ("logistic regression", LogisticRegression(max_iter=2000, class_weight=weights)),
        ("gradient boosting", HistGradientBoostingClassifier(random_state=SEED, class_weight=weights)),
    ):
        model.fit(x_tr, y_tr)
        proba = np.zeros((len(x_te), classes))
        proba[:, model.classes_] = model.predict_proba(x_te)
        # log-probabilities, as the networks' outputs; the clip keeps a certain wrong answer finite in log loss
        logp = np.log(np.clip(proba, PROBABILITY_FLOOR, 1.0))
        rows.append({"model": name, "class_weights": weights or "none", **_scored("classification", logp, bundle)})
    return rows


def noise_floor(data_cfg: DataConfig, bundle: Any) -> dict[str, float] | None:
    """Test metrics of delivery's noise-free formula (features un-standardised first)."""
    if data_cfg.name != "delivery":
        return None
    from ..data.delivery import true_function

    x = bundle.x_test.numpy().astype(np.float64) * np.asarray(bundle.spec["x_std"]) + np.asarray(bundle.spec["x_mean"])
    standardised = (true_function(x) - bundle.target_mean) / bundle.target_std
    scored = _scored("regression", standardised.reshape(-1, 1), bundle)
    return scored if all(math.isfinite(v) for v in scored.values()) else None
