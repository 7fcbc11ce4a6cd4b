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


def _minority_table(tmp_path, n=600, share=0.05, seed=0):
    """A loans-like table: two informative columns, a 5% minority class."""
    rs = np.random.RandomState(seed)
    x = rs.normal(size=(n, 2))
    score = x[:, 0] + 0.5 * x[:, 1] + rs.normal(scale=0.5, size=n)
    label = np.where(score > np.quantile(score, 1 - share), "default", "paid")
    path = tmp_path / "loans.csv"
    path.write_text("a,b,status\n" + "\n".join(f"{a},{b},{c}" for (a, b), c in zip(x, label)))
    return DataConfig(name="csv", path=str(path), target="status")


def test_baselines_are_scored_on_every_metric_the_networks_report(tmp_path):
    rows = fit_baselines(_minority_table(tmp_path))
    for row in rows:
        for name in ("accuracy", "balanced_accuracy", "macro_f1", "log_loss", "roc_auc"):
            assert np.isfinite(row[f"test_{name}"]), (row["model"], name)
    regression = fit_baselines(DataConfig(n=300))
    assert all({"test_mae", "test_rmse", "test_r2"} <= set(r) for r in regression)


def test_baselines_weight_classes_as_the_networks_do(tmp_path):
    cfg = _minority_table(tmp_path)
    plain = {r["model"]: r for r in fit_baselines(cfg)}
    balanced = {r["model"]: r for r in fit_baselines(cfg, balanced=True)}
    assert {r["class_weights"] for r in plain.values()} == {"none"}
    assert {r["class_weights"] for r in balanced.values()} == {"balanced"}
    # balancing trades plain accuracy for the minority's recall, as it does for the networks
    lr_plain, lr_balanced = plain["logistic regression"], balanced["logistic regression"]
    assert lr_balanced["test_balanced_accuracy"] > lr_plain["test_balanced_accuracy"]
