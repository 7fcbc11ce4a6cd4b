"""The food-delivery generator of the tabular lesson.

Delivery time (minutes) = 8.6 + 7.3·distance + 0.8·prep + 1.5·traffic + N(0, 4²), clipped to
[10, 120]; order value is a distractor feature. Same formula and the same order of draws from
a legacy NumPy RandomState, so with n=3000 and seed 42 the rows equal the lesson's rows.
"""

from __future__ import annotations

import numpy as np

from ..sections import DataConfig
from .bundle import DataBundle
from .registry import DATASETS
from .splits import three_way
from .tabular import bundle_from_arrays

FEATURES = ["distance_km", "traffic_level", "prep_minutes", "order_value"]
TARGET = "delivery_minutes"


def generate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(X of shape (n, 4), y of shape (n,)) drawn in the lesson's order."""
    rs = np.random.RandomState(seed)
    distance = np.abs(rs.normal(4.0, 2.0, n)).clip(0.5, 15)
    traffic = rs.randint(1, 11, n).astype(float)
    prep = np.abs(rs.normal(15, 5, n)).clip(5, 35)
    value = np.abs(rs.normal(350, 150, n)).clip(50, 1200)
    minutes = (8.6 + 7.3 * distance + 0.8 * prep + 1.5 * traffic + rs.normal(0, 4, n)).clip(10, 120)
    return np.column_stack([distance, traffic, prep, value]), minutes


def true_function(x: np.ndarray) -> np.ndarray:
    """The noise-free generating function (before clipping): the floor no model can beat by much."""
    return 8.6 + 7.3 * x[:, 0] + 0.8 * x[:, 2] + 1.5 * x[:, 1]


@DATASETS.register("delivery")
def load_delivery(cfg: DataConfig) -> DataBundle:
    x, y = generate(cfg.n, cfg.generator_seed)
    tr, va, te = three_way(len(x), cfg.test_fraction, cfg.val_fraction, cfg.split_seed)
    return bundle_from_arrays(
        x[tr],
        y[tr],
        x[va],
        y[va],
        x[te],
        y[te],
        task="regression",
        feature_names=FEATURES,
        target_name=TARGET,
        target_transform=cfg.target_transform,
    )
