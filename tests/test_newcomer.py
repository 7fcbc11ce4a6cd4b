"""A newcomer's first hour on their own tables, end to end: compare on a CSV with a dropout grid,
the ablation with --data-path, lr-find on the default recipe, fit on a DataFrame with text columns.
Generated tables stand in for public ones: a churn-like yes/no table and a loans-like one with a 5%
minority class, text, boolean, date and blank cells."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest
import yaml

from trainwell.cli import main

FAST = ["--set", "train.max_epochs=2", "--workers", "0", "--quiet"]


def churn(n=240, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure, charges = rng.integers(1, 72, n), rng.normal(70, 20, n).round(2)
    contract = rng.choice(["monthly", "yearly", "two-year"], n)
    logit = -1 + 0.04 * (charges - 70) - 0.05 * (tenure - 36) + (contract == "monthly")
    label = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    ids = [f"c{i}" for i in range(n)]
    return pd.DataFrame(
        {"customer_id": ids, "tenure": tenure, "charges": charges, "contract": contract, "churn": label}
    )


def loans(n=400, seed=1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50, 15, n).round(1)
    late = income < np.quantile(income, 0.05)  # a 5% minority
    return pd.DataFrame(
        {
            "income": np.where(np.arange(n) % 13 == 0, np.nan, income),
            "grade": rng.choice(list("ABCD"), n),
            "owner": rng.random(n) < 0.5,
            "issued": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "purpose": np.where(np.arange(n) % 7 == 0, "", rng.choice(["car", "home", "study"], n)),
            "status": np.where(late, "late", "paid"),
        }
    )


@pytest.fixture
def churn_csv(tmp_path):
    path = tmp_path / "churn.csv"
    churn().to_csv(path, index=False)
    return path


def data_of(out) -> set[tuple[str, str]]:
    """(data.name, data.path) of every run a compare wrote."""
    configs = [yaml.safe_load(p.read_text()) for p in out.glob("runs/*/seed-*/config.yaml")]
    assert configs
    return {(c["data"]["name"], c["data"]["path"]) for c in configs}


def test_compare_a_dropout_grid_on_my_csv(tmp_path, churn_csv, capsys):
    experiment = {
        "name": "churn-dropout",
        "base": {"preset": "tabular", "set": {"data.path": str(churn_csv), "data.target": "churn", "train.members": 2}},
        "grid": {"model.dropout": [0.0, 0.3]},
        "seeds": 2,
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(experiment))
    assert main(["compare", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "out"), *FAST]) == 0
    assert data_of(tmp_path / "out") == {("csv", str(churn_csv))}
    printed = capsys.readouterr().out
    assert f"data {churn_csv}: 240 rows" in printed and "target churn, classification" in printed
    assert "classes weighted balanced; ranked by test ROC AUC" in printed and "MAE" not in printed
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"Data: {churn_csv}, 240 rows" in report and "noise floor" not in report


def test_the_ablation_on_my_csv_with_data_path(tmp_path, churn_csv, capsys):
    argv = ["compare", "--preset", "ablation", "--data-path", str(churn_csv), "--set", "data.target=churn"]
    assert main([*argv, "--seeds", "1", "--out", str(tmp_path / "out"), *FAST]) == 0
    assert data_of(tmp_path / "out") == {("csv", str(churn_csv))}
    assert "ranked by test log loss" in capsys.readouterr().out  # the ablation's recipe does not weight classes


def test_compare_takes_data_and_target_like_train(tmp_path, churn_csv, capsys):
    argv = ["compare", "--preset", "dropout", "--data", str(churn_csv), "--target", "churn", "--metric", "accuracy"]
    assert main([*argv, "--seeds", "1", "--out", str(tmp_path / "out"), *FAST]) == 0
    assert data_of(tmp_path / "out") == {("csv", str(churn_csv))}
    assert "ranked by test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    "base, words",
    [
        ({"data": {"name": "delivery", "path": "churn.csv"}}, "data.path"),
        ({"preset": "tabular", "set": {"data.name": "digits", "data.path": "churn.csv"}}, "data.path"),
    ],
)
def test_a_data_file_with_a_built_in_data_set_is_refused_in_one_line(tmp_path, churn_csv, capsys, base, words):
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({"name": "x", "base": base}))
    assert main(["compare", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "out"), *FAST]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("table, target", [(churn, "churn"), (loans, "status")])
def test_lr_find_on_the_default_recipe(tmp_path, capsys, table, target):
    table().to_csv(tmp_path / "t.csv", index=False)
    argv = ["lr-find", "--data", str(tmp_path / "t.csv"), "--target", target, "--steps", "30"]
    assert main([*argv, "--out", str(tmp_path / "lf"), "--quiet"]) == 0
    assert "(used by 'auto')" in capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "lf" / "lr_find.csv").open()))
    assert len(rows) >= 4


def test_fit_on_a_dataframe_with_text_columns_then_predict_raw_rows(tmp_path):
    from torch import nn

    import trainwell

    df = loans()
    model = nn.Sequential(nn.Linear(15, 32), nn.ReLU(), nn.Linear(32, 2))
    config = {"train": {"max_epochs": 2, "quiet": True}}
    result = trainwell.fit(model, df, target="status", config=config, out=tmp_path / "run")
    assert result.ok and "test_roc_auc" in result.metrics
    raw = df.drop(columns=["status"]).head(5)
    predicted = trainwell.predict_run(tmp_path / "run", raw, model=model)
    assert list(predicted["predicted_status"].unique()) and {"probability_late", "probability_paid"} <= set(predicted)
