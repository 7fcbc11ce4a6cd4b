"""Classical baselines on the networks' split, in the target's original units."""

from __future__ import annotations

import numpy as np
import pytest

from trainwell.config import DataConfig
from trainwell.experiments.baselines import fit_baselines


def test_delivery_baselines_in_minutes():
    rows = {r["model"]: r["test_mae"] for r in fit_baselines(DataConfig(n=600))}
    assert set(rows) == {"linear regression", "gradient boosting", "generating function (noise floor)"}
    # delivery is linear plus N(0, 4²) noise: MAE ≈ 4·√(2/π) ≈ 3.2 minutes, so the linear model sits at the floor
    assert 2.5 < rows["generating function (noise floor)"] < 4.0
    assert rows["linear regression"] == pytest.approx(rows["generating function (noise floor)"], abs=0.3)


def test_classification_baselines(tmp_path):
    rs = np.random.RandomState(0)
    x = rs.normal(size=(200, 2))
    label = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n" + "\n".join(f"{a},{b},{c}" for (a, b), c in zip(x, label)))
    rows = {
        r["model"]: r["test_accuracy"] for r in fit_baselines(DataConfig(name="csv", path=str(path), target="label"))
    }
    assert rows["logistic regression"] > 0.9 and 0.5 < rows["gradient boosting"] <= 1.0
