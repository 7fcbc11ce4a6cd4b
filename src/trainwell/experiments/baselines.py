"""Classical baselines on the same split as the networks, so a report shows whether the network
is worth it: a linear model and histogram gradient boosting (scikit-learn), fitted on the
training rows and scored on the test rows in the target's original units. On delivery the
noise-free generating function is scored too: the floor no model can beat by much.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..config import DataConfig

SEED = 0  # random_state of the gradient-boosting model


def _tabular(bundle: Any) -> bool:
    return len(bundle.input_shape) == 1 and bundle.spec.get("kind") == "tabular"


def fit_baselines(data_cfg: DataConfig) -> list[dict[str, Any]]:
    """Rows {model, test_mae | test_accuracy} for a tabular data set; [] for images."""
    from ..data import load_data

    bundle = load_data(data_cfg)
    if not _tabular(bundle):
        return []
    x_tr, x_te = bundle.x_train.numpy().astype(np.float64), bundle.x_test.numpy().astype(np.float64)
    rows: list[dict[str, Any]] = []
    if bundle.task == "regression":
        from sklearn.ensemble import HistGradientBoostingRegressor
        from sklearn.linear_model import LinearRegression

        y_tr, y_te = bundle.y_train.numpy().ravel(), bundle.y_test.numpy().ravel()
        for name, model in (
            ("linear regression", LinearRegression()),
            ("gradient boosting", HistGradientBoostingRegressor(random_state=SEED)),
        ):
            pred = model.fit(x_tr, y_tr).predict(x_te)
            # targets are standardised with the training statistics: × std gives minutes again
            rows.append({"model": name, "test_mae": float(np.abs(pred - y_te).mean() * bundle.target_std)})
        floor = noise_floor(data_cfg, bundle)
        if floor is not None:
            rows.append({"model": "generating function (noise floor)", "test_mae": floor})
    else:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression

        y_tr, y_te = bundle.y_train.numpy(), bundle.y_test.numpy()
        for name, model in (
            ("logistic regression", LogisticRegression(max_iter=2000)),
            ("gradient boosting", HistGradientBoostingClassifier(random_state=SEED)),
        ):
            pred = model.fit(x_tr, y_tr).predict(x_te)
            rows.append({"model": name, "test_accuracy": float((pred == y_te).mean())})
    return rows


def noise_floor(data_cfg: DataConfig, bundle: Any) -> float | None:
    """Test MAE of delivery's noise-free formula (features un-standardised first)."""
    if data_cfg.name != "delivery":
        return None
    from ..data.delivery import true_function

    x = bundle.x_test.numpy().astype(np.float64) * np.asarray(bundle.spec["x_std"]) + np.asarray(bundle.spec["x_mean"])
    y = bundle.y_test.numpy().ravel().astype(np.float64) * bundle.target_std + bundle.target_mean
    mae = float(np.abs(true_function(x) - y).mean())
    return mae if math.isfinite(mae) else None
