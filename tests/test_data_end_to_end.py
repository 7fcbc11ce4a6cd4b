"""The two tables of the real-tables issue, small: each trains from the raw CSV with
`trainwell train --data FILE --target COL` and predicts from raw rows."""

import json

import numpy as np
import pandas as pd

from trainwell.cli import main

QUICK = ["--quiet", "--set", "train.max_epochs=2"]


def housing(n=1500, seed=0):
    """Two text columns (city, weekday), an id, and blank cells (~15% of sqft, some cities)."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["Vienna", "Graz", "Linz", "Salzburg"], n)
    sqft = rng.uniform(300, 3000, n).round()
    rooms = rng.integers(1, 7, n)
    price = 0.3 * sqft + 20 * rooms + (city == "Vienna") * 200 + rng.normal(0, 30, n)
    df = pd.DataFrame(
        {
            "id": np.arange(n) + 1000,
            "city": city,
            "weekday": rng.choice(["Mon", "Tue", "Wed", "Thu", "Fri"], n),
            "sqft": sqft,
            "rooms": rooms,
            "price": price.round(1),
        }
    )
    df.loc[rng.random(n) < 0.15, "sqft"] = np.nan
    df.loc[rng.random(n) < 0.05, "city"] = np.nan
    return df


def churn(n=1300, seed=0):
    """String labels with 100 of 1,300 customers (7.7%) churning."""
    rng = np.random.default_rng(seed)
    calls = rng.poisson(2, n).astype(float)
    status = np.array(["stay"] * n, dtype=object)
    status[np.argsort(-(calls + rng.normal(0, 1, n)))[:100]] = "churn"
    df = pd.DataFrame(
        {
            "customer": [f"C{i:05d}" for i in range(n)],
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "support_calls": calls,
            "status": status,
        }
    )
    df.loc[rng.random(n) < 0.1, "support_calls"] = np.nan
    return df


def test_housing_trains_from_the_raw_csv_and_predicts_raw_rows(tmp_path, capsys):
    df = housing()
    assert df.isna().sum().sum() > 200 and not pd.api.types.is_numeric_dtype(df["city"])
    df.to_csv(tmp_path / "housing.csv", index=False)
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "housing.csv"), "--target", "price", "--out", str(run), *QUICK]) == 0
    err = capsys.readouterr().err
    assert "task: regression" in err and "city (5 levels, onehot)" in err and "'id' looks like an identifier" in err
    assert json.loads((run / "metrics.json").read_text())["test_mae"] < df["price"].std()
    new = df.drop(columns=["price", "id"]).head(4).copy()
    new.loc[0, "city"], new.loc[1, "sqft"] = "Paris", np.nan  # a city never seen, and a blank
    new.to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", str(run), str(tmp_path / "new.csv"), "--out", str(tmp_path / "pred.csv")]) == 0
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 4 and pred["predicted_price"].notna().all() and pred["predicted_price"].between(0, 2000).all()


def test_churn_warns_and_predicts_a_probability_per_class(tmp_path, capsys):
    df = churn()
    assert (df["status"] == "churn").mean() == 100 / 1300
    df.to_csv(tmp_path / "churn.csv", index=False)
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "churn.csv"), "--target", "status", "--out", str(run), *QUICK]) == 0
    err = capsys.readouterr().err
    assert (
        "task: classification (the target holds text labels, 2 classes)" in err and "warning: class 'stay' is 9" in err
    )
    df.drop(columns=["status"]).head(50).to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", str(run), str(tmp_path / "new.csv"), "--out", str(tmp_path / "pred.csv")]) == 0
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert {"predicted_status", "probability_churn", "probability_stay"} <= set(pred.columns)
    assert np.allclose(pred["probability_churn"] + pred["probability_stay"], 1, atol=1e-5)
    assert pred["probability_churn"].nunique() > 10  # customers can be ranked by their chance of churning


def test_data_alone_starts_from_the_tabular_preset(tmp_path, capsys):
    housing(300).to_csv(tmp_path / "h.csv", index=False)
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "h.csv"),
                "--target",
                "price",
                "--out",
                str(tmp_path / "a"),
                "--set",
                "train.max_epochs=1",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "schedule: plateau" in err
    config = (tmp_path / "a" / "config.yaml").read_text()
    assert "clip_norm: 5.0" in config and "name: h\n" in config
    assert (
        main(
            [
                "train",
                "--preset",
                "delivery-production",
                "--data",
                str(tmp_path / "h.csv"),
                "--target",
                "price",
                "--out",
                str(tmp_path / "b"),
                *QUICK,
            ]
        )
        == 0
    )
    assert "clip_norm: null" in (tmp_path / "b" / "config.yaml").read_text()  # the named preset's recipe, on the file
