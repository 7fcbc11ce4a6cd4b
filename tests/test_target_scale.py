"""data.target_transform: the rule that logs a positive right-skewed target, the round trip back
to the target's units (predict, evaluate, metrics.json, the scikit-learn regressor), old runs
without the field, and bad values."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from trainwell.checkpoint import BEST, load_checkpoint, validate_spec
from trainwell.cli import main
from trainwell.config import load_config
from trainwell.data.target_scale import SKEW_GATE, TargetScale, choose, skewness
from trainwell.errors import CheckpointError, ConfigError, DataError
from trainwell.inference import evaluate_run, predict_run
from trainwell.sklearn import TrainwellRegressor

QUICK = ["--quiet", "--set", "train.max_epochs=3", "--set", "train.members=1"]


def skewed_table(n=600, seed=0):
    """Prices spread over decades: log(price) is linear in the two columns plus noise."""
    rng = np.random.default_rng(seed)
    size, rooms = rng.uniform(0, 3, n), rng.integers(1, 6, n)
    price = np.exp(1.0 + 1.5 * size + 0.2 * rooms + rng.normal(0, 0.5, n))
    return pd.DataFrame({"size": size, "rooms": rooms, "price": price})


def split_of(x, y, train=1500):
    x = np.asarray(x, dtype=np.float64).reshape(len(y), -1)
    return x[:train], y[:train], x[train:], y[train:]


def test_the_rule_logs_targets_whose_log_predicts_better():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (2000, 2))
    multiplicative = np.exp(1.0 + 0.9 * x[:, 0] + 0.4 * x[:, 1] + rng.normal(0, 0.3, 2000))  # prices, wages
    visits = rng.poisson(np.exp(1.0 + 0.8 * x[:, 0])).astype(float)  # counts with zeros and a long tail
    assert skewness(multiplicative) > SKEW_GATE and choose(split_of(x, multiplicative), "auto")[0] == "log1p"
    assert choose(split_of(x, visits), "auto")[0] == "log1p"
    # as skewed, but additive in a skewed column: the log's fit is worse, so the target stays as given
    size = np.exp(rng.normal(0, 1, 2000))
    additive = 20 * size + rng.normal(0, 1, 2000) + 5
    assert skewness(additive) > SKEW_GATE
    kept, why = choose(split_of(size, additive), "auto")
    assert kept == "none" and "a linear fit of log1p has" in why
    normal = 50 + 10 * x[:, 0]
    assert choose(split_of(x, normal), "auto") == (
        "none",
        f"auto: skewness {skewness(normal[:1500]):.2f}; log1p is tried above {SKEW_GATE:g}",
    )
    assert choose(split_of(x, multiplicative - 2), "auto") == ("none", "auto: the target has negative values")
    assert choose(split_of(x, normal), "log1p")[0] == "log1p"  # the user decides
    assert choose(split_of(x, multiplicative), "none")[0] == "none"


def test_scale_round_trip_and_refusal_below_minus_one():
    y = np.array([0.0, 1.0, 10.0, 1000.0])
    scale, note = TargetScale.fit((np.zeros((4, 1)), y, np.zeros((0, 1)), y[:0]), "log1p", "the training rows")
    assert note.startswith("target: log(1 + target), standardised")
    z = scale.standardise(y, "x")
    assert abs(z.mean()) < 1e-9 and np.allclose(scale.to_original(z), y)
    assert torch.allclose(scale.to_original(torch.as_tensor(z)), torch.as_tensor(y), rtol=1e-9)
    with pytest.raises(DataError, match="defined only above -1"):
        scale.standardise(np.array([-1.5]), "test file 't.csv'")
    assert TargetScale.from_spec({"y_mean": 2.0, "y_std": 3.0}) == TargetScale(2.0, 3.0, "none")  # an older run


def test_a_skewed_csv_learns_the_log_and_predicts_in_its_own_units(tmp_path, capsys):
    df = skewed_table()
    df.iloc[:480].to_csv(tmp_path / "train.csv", index=False)
    df.iloc[480:].to_csv(tmp_path / "test.csv", index=False)
    run = tmp_path / "run"
    args = ["train", "--data", str(tmp_path / "train.csv"), "--target", "price", "--out", str(run), *QUICK]
    assert main([*args, "--set", f"data.test_path={tmp_path / 'test.csv'}"]) == 0
    assert "target: log(1 + target), standardised (auto: skewness" in capsys.readouterr().err
    spec = load_checkpoint(run / "best.pt", BEST)["spec"]
    # standardised on the log's scale (the mean of the training rows, a share of the file's first 480)
    assert spec["target_transform"] == "log1p" and abs(spec["y_mean"] - np.log1p(df["price"][:480]).mean()) < 0.1
    pred = predict_run(run, tmp_path / "test.csv")["predicted_price"].to_numpy()
    truth = df["price"].iloc[480:].to_numpy()
    assert 0.3 < np.median(pred) / np.median(truth) < 3  # the price's units, not its log's
    rmse = float(np.sqrt(np.mean((pred - truth) ** 2)))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_rmse"] == pytest.approx(rmse, rel=1e-4)  # metrics.json measures the same predictions
    assert evaluate_run(run, tmp_path / "test.csv")["test_rmse"] == pytest.approx(rmse, rel=1e-4)


def test_none_keeps_the_target_and_an_old_run_without_the_field_still_predicts(tmp_path):
    skewed_table(300).to_csv(tmp_path / "t.csv", index=False)
    run = tmp_path / "run"
    args = ["train", "--data", str(tmp_path / "t.csv"), "--target", "price", "--out", str(run), *QUICK]
    assert main([*args, "--set", "data.target_transform=none"]) == 0
    ckpt = torch.load(run / "best.pt", weights_only=True)
    assert ckpt["spec"]["target_transform"] == "none"
    before = predict_run(run, tmp_path / "t.csv")["predicted_price"]
    del ckpt["spec"]["target_transform"]  # as a run saved before the field existed
    torch.save(ckpt, run / "best.pt")
    assert np.allclose(predict_run(run, tmp_path / "t.csv")["predicted_price"], before)


def test_bad_values_are_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"data.target_transform = 'exp' is not allowed: one of auto, none, log1p"):
        load_config(preset="tabular", overrides={"data.target_transform": "exp"})
    spec = {
        "kind": "tabular",
        "task": "regression",
        "input_shape": [2],
        "n_outputs": 1,
        "model_kind": "mlp",
        "feature_names": ["a", "b"],
        "target_name": "y",
        "x_mean": [0.0, 0.0],
        "x_std": [1.0, 1.0],
        "y_mean": 0.0,
        "y_std": 1.0,
    }
    assert validate_spec(spec, "best.pt") is spec  # no target_transform: an older run, learned as given
    with pytest.raises(CheckpointError, match="has target_transform 'sqrt'; expected one of none, log1p"):
        validate_spec(spec | {"target_transform": "sqrt"}, "best.pt")


def test_the_regressor_predicts_in_the_targets_units():
    df = skewed_table(400, seed=1)
    x, y = df[["size", "rooms"]].to_numpy(), df["price"].to_numpy()
    fast = {"hidden": (16,), "max_epochs": 15, "batch_size": 32, "lr": 1e-2, "patience": 5, "random_state": 0}
    model = TrainwellRegressor(**fast).fit(x, y)
    assert model.spec_["target_transform"] == "log1p"
    pred = model.predict(x)
    assert pred.min() > -1 and 0.5 < np.median(pred) / np.median(y) < 2
