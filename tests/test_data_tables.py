"""Raw tables: column roles, blanks, categories, robust scaling, the target's task, and the
one-line refusals — each fitted on the training rows only and stored as plain data."""

import io
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import torch

from trainwell.config import DataConfig, ModelConfig, load_config
from trainwell.data import load_data
from trainwell.data.preprocess import embedding_width, transform
from trainwell.data.splits import three_way
from trainwell.data.tabular import features_for_prediction
from trainwell.errors import ConfigError, DataError
from trainwell.models import InputEmbedding, build_model


def mixed_table(n=200, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "order": [f"A{i:04d}" for i in range(n)],
            "city": rng.choice(["Vienna", "Graz", "Linz"], n),
            "express": rng.choice(["yes", "no"], n),
            "gift": rng.choice([True, False], n),
            "placed": pd.date_range("2023-03-01 08:00", periods=n, freq="7h").strftime("%Y-%m-%dT%H:%M:%S"),
            "weight": rng.gamma(2.0, 2.0, n),
        }
    )
    df["cost"] = 2 * df["weight"] + (df["city"] == "Vienna") * 5 + rng.normal(0, 1, n)
    return df


def load(tmp_path, df, target="cost", **fields):
    df.to_csv(tmp_path / "t.csv", index=False)
    return load_data(DataConfig(name="csv", path=str(tmp_path / "t.csv"), target=target, **fields))


def one_line(err):
    text = str(err.value)
    assert "\n" not in text
    return text


def test_roles_are_inferred_and_shown(tmp_path, capsys):
    data = load(tmp_path, mixed_table())
    err = "\n".join(data.notes)  # shown before training (build.describe), also with --quiet
    assert "task: regression (the target holds numbers with 200 distinct values)" in err
    assert "columns numeric: weight" in err and "columns categorical: city (3 levels, onehot)" in err
    assert "columns boolean: express (2 levels, binary), gift (2 levels, binary)" in err
    assert "columns date: placed (→ year, month, day_of_week, day_of_year, hour)" in err
    assert "'order' looks like an identifier (text unique per row) and is left out" in err
    names = data.feature_names
    assert (
        "order" not in " ".join(names) and "placed.hour" in names and {"city=Graz", "express", "weight"} <= set(names)
    )
    assert data.notes and data.notes[0].startswith("task: regression")


def test_a_row_index_is_an_identifier_whatever_its_name(tmp_path):
    df = mixed_table()
    df.insert(0, "rownames", np.arange(1, len(df) + 1) * 3)  # rises with the row order, gaps allowed
    df["visits"] = np.random.default_rng(1).permutation(len(df))  # unique per row but not in row order
    data = load(tmp_path, df)
    notes = "\n".join(data.notes)
    assert "'rownames' looks like an identifier (whole numbers unique per row, rising with the row order)" in notes
    assert "list it in data.numeric to keep it" in notes
    assert "rownames" not in data.feature_names and "visits" in data.feature_names
    kept = load(tmp_path, df, numeric=["rownames"])
    assert "rownames" in kept.feature_names
    alone = load(tmp_path, df[["rownames", "cost"]])  # never the reason a table has no feature
    assert alone.feature_names == ["rownames"]


def test_roles_overridden_in_the_config(tmp_path, capsys):
    df = mixed_table()
    df["zone"] = np.arange(len(df)) % 4
    data = load(tmp_path, df, categorical=["zone"], ignore=["express", "gift"], numeric=None)
    assert {"zone=0", "zone=3"} <= set(data.feature_names) and not any(
        n.startswith(("express", "gift")) for n in data.feature_names
    )
    assert "column 'express' is left out (data.ignore)" in "\n".join(data.notes)
    with pytest.raises(DataError) as err:
        load(tmp_path, df, categorical=["zip"])
    assert "data.categorical names column 'zip'" in one_line(err) and "city" in str(err.value)
    with pytest.raises(DataError, match="more than one of"):
        load(tmp_path, df, categorical=["zone"], ignore=["zone"])
    with pytest.raises(DataError, match="numeric column 'city' has text 'Graz'"):
        load(tmp_path, df, numeric=["city"])


def test_numeric_blanks_filled_with_the_training_median_plus_an_indicator(tmp_path):
    df = mixed_table()
    df.loc[::5, "weight"] = np.nan
    data = load(tmp_path, df)
    entry = next(e for e in data.spec["preprocess"]["columns"] if e["name"] == "weight")
    tr, _, _ = three_way(len(df), 0.2, 0.15, 42)
    assert entry["fill"] == pytest.approx(np.nanmedian(df["weight"].to_numpy()[tr]))  # training rows only
    assert entry["fill"] != pytest.approx(np.nanmedian(df["weight"]))
    col = data.feature_names.index("weight (missing)")
    blank_rows = df["weight"].isna().to_numpy()[tr]
    assert torch.equal(data.x_train[:, col], torch.as_tensor(blank_rows, dtype=torch.float32))
    assert (
        data.x_train[blank_rows, data.feature_names.index("weight")].abs().max() == 0
    )  # the median sits at the centre


def test_robust_scaling_tames_extremes():
    df = pd.DataFrame({"v": np.r_[np.arange(100.0), 1e9]})
    from trainwell.data.columns import Column
    from trainwell.data.preprocess import fit_preprocess

    prep = fit_preprocess(df, [Column("v", "numeric", "")], DataConfig(), "t")
    z = transform(df, prep, "t")[:, 0]
    assert np.abs(z).max() <= 3.0 and z[-1] > 2.99  # the outlier is squashed to 3 at most, not left at ~1e7
    assert z[50] == pytest.approx(0.0, abs=0.02) and 0.4 < z[75] < 0.6  # the median at 0, a quartile near ±0.5
    std = fit_preprocess(df, [Column("v", "numeric", "")], DataConfig(scaling="standard"), "t")
    assert abs(transform(df, std, "t")[-1, 0]) > 9  # plain standardisation leaves it extreme


def test_blank_category_is_a_level_and_unseen_levels_are_unknown(tmp_path):
    df = mixed_table()
    df.loc[::7, "city"] = np.nan
    data = load(tmp_path, df)
    assert "city=(blank)" in data.feature_names
    new = df.head(3).copy()
    new["city"] = ["Paris", np.nan, "Graz"]
    x = features_for_prediction(new, data.spec, "new rows")
    cols = [i for i, n in enumerate(data.feature_names) if n.startswith("city=")]
    assert x[0, cols].sum() == 0  # unseen: no level switched on
    assert x[1, data.feature_names.index("city=(blank)")] == 1 and x[2, data.feature_names.index("city=Graz")] == 1


def test_many_levels_get_codes_and_an_embedding_layer(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"shop": rng.choice([f"s{i}" for i in range(30)], 400), "x": rng.normal(size=400)})
    df["y"] = df["x"] + df["shop"].str[1:].astype(int) / 10
    data = load(tmp_path, df, target="y")
    (layout,) = data.spec["embedded"]
    assert layout == {"index": data.feature_names.index("shop (code)"), "rows": 31, "width": embedding_width(31, None)}
    codes = data.x_train[:, layout["index"]]
    assert codes.min() >= 1 and codes.max() <= 30 and torch.equal(codes, codes.round())
    assert embedding_width(8, None) == 5 and embedding_width(31, None) == 11 and embedding_width(9, 4) == 4
    assert load(tmp_path, df, target="y", embedding_width=3).spec["embedded"][0]["width"] == 3
    assert load(tmp_path, df, target="y", onehot_max_levels=40).spec["embedded"] == []
    new = df.head(2).assign(shop=["nowhere", "s3"])
    assert features_for_prediction(new, data.spec, "new")[0, layout["index"]] == 0  # unknown code


def test_embedding_layer_reads_codes_and_learns():
    torch.manual_seed(0)
    layer = InputEmbedding(3, [{"index": 1, "rows": 4, "width": 2}])
    x = torch.tensor([[0.5, 2.0, -1.0], [0.1, 0.0, 1.0], [0.0, 9.0, 0.0]])
    out = layer(x)
    assert out.shape == (3, 4) and layer.out_features == 4
    assert torch.equal(out[:, :2], x[:, [0, 2]]) and torch.equal(out[1, 2:], layer.tables[0].weight[0])
    assert torch.equal(out[2, 2:], layer.tables[0].weight[0])  # out of range reads as unknown
    model = build_model(ModelConfig(hidden=[8]), (3,), 1, "mlp", embedded=[{"index": 1, "rows": 4, "width": 2}])
    assert isinstance(model[0], InputEmbedding)
    before = model[0].tables[0].weight.detach().clone()
    torch.optim.SGD(model.parameters(), lr=0.5).zero_grad()
    model(x).pow(2).sum().backward()
    torch.optim.SGD(model.parameters(), lr=0.5).step()
    assert not torch.equal(before[2], model[0].tables[0].weight[2])  # the level that appeared was trained
    with pytest.raises(ConfigError, match="cannot read a table with embedded categories"):
        build_model(ModelConfig(kind="cnn"), (3,), 1, "mlp", embedded=[{"index": 1, "rows": 4, "width": 2}])


def test_spec_is_plain_data_that_loads_with_weights_only(tmp_path):
    df = mixed_table()
    df.loc[::9, "weight"] = np.nan
    data = load(tmp_path, df)
    torch.save({"spec": data.spec}, tmp_path / "s.pt")
    back = torch.load(tmp_path / "s.pt", weights_only=True)["spec"]
    assert back == data.spec
    assert torch.equal(features_for_prediction(df, back, "again"), features_for_prediction(df, data.spec, "again"))


@pytest.mark.parametrize(
    "target, declared, expected",
    [
        ([0, 1] * 30, "auto", "refused"),
        (list(range(1, 6)) * 12, "auto", "refused"),
        ([0, 1] * 30, "classification", "classification"),
        ([0, 1] * 30, "regression", "regression"),
        (list(np.linspace(0, 1, 60)), "auto", "regression"),
        (["a", "b", "c"] * 20, "auto", "classification"),
        ([True, False] * 30, "auto", "classification"),
    ],
)
def test_task_inferred_or_asked_for(tmp_path, target, declared, expected):
    df = pd.DataFrame({"x": np.arange(60.0), "y": target})
    if expected == "refused":
        with pytest.raises(DataError) as err:
            load(tmp_path, df, target="y", task=declared)
        assert "--task classification or --task regression" in one_line(err)
    else:
        assert load(tmp_path, df, target="y", task=declared).task == expected


def test_dominant_class_is_warned_about(tmp_path, capsys):
    df = pd.DataFrame({"x": np.arange(100.0), "y": ["stay"] * 90 + ["churn"] * 10})
    data = load(tmp_path, df, target="y")
    assert "warning: class 'stay' is" in "\n".join(data.notes) and "balanced accuracy" in data.notes[-1]
    assert sum(data.spec["class_counts"]) == len(data.x_train)


def write(tmp_path, text, name="t.csv"):
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


def test_bad_tables_get_one_line(tmp_path):
    def refused(path, *words, **fields):
        with pytest.raises(DataError) as err:
            load_data(DataConfig(name="csv", path=path, target="y", **fields))
        for w in words:
            assert w in one_line(err), err.value

    rows = "\n".join(f"{i},{i % 3}" for i in range(30))
    refused(
        write(tmp_path, "x,y\n" + "\n".join(f"{i},same" for i in range(30))),
        "single class 'same'",
        task="classification",
    )
    refused(write(tmp_path, "x,y\n"), "has a header but no rows")
    refused(write(tmp_path, "x;y\n" + rows.replace(",", ";")), "the header looks semicolon-separated", "data.sep")
    assert len(
        load_data(
            DataConfig(name="csv", path=write(tmp_path, "x;y\n" + rows.replace(",", ";") + ".5"), target="y", sep=";")
        ).x_train
    )
    blanks = "x,y\n" + "\n".join(f"{i},{'' if i in (2, 5, 6, 9, 11, 20) else i * 0.5}" for i in range(30))
    refused(write(tmp_path, blanks), "blank in 6 row(s) (file rows 4, 7, 8, 11, 13, ...)")
    refused(write(tmp_path, "x,y\n" + rows + ".5\n1e308,2.5"), "column 'x' holds 1e+308", "float limit")
    refused(write(tmp_path, "x,y\n" + rows + ".5"), "data.ignore names column 'z'", ignore=["z"])


def test_predict_file_with_other_columns_is_named(tmp_path):
    data = load(tmp_path, mixed_table())
    with pytest.raises(DataError) as err:
        features_for_prediction(mixed_table().drop(columns=["city", "weight"]), data.spec, "input file 'new.csv'")
    assert "lacks 2 column(s) the run was trained with: 'city', 'weight'" in one_line(err)


def test_dates_split_into_parts(tmp_path):
    df = pd.DataFrame(
        {"day": pd.date_range("2024-01-01", periods=60, freq="D").strftime("%Y-%m-%d"), "y": np.linspace(0, 1, 60)}
    )
    data = load(tmp_path, df, target="y")
    assert data.feature_names == [
        "day.year",
        "day.month",
        "day.day_of_week",
        "day.day_of_year",
    ]  # no hour without times
    x = pd.DataFrame({"day": ["2024-02-29"]})
    assert torch.isfinite(features_for_prediction(x, data.spec, "new")).all()
    with pytest.raises(DataError, match="ISO dates"):
        features_for_prediction(pd.DataFrame({"day": ["tomorrow"]}), data.spec, "new")


def test_text_columns_round_trip_through_a_csv_with_blanks(tmp_path):
    """An int-coded category reads as floats once a blank appears; the levels must still match."""
    df = pd.DataFrame({"zone": [1, 2, 3] * 20, "y": np.linspace(0, 1, 60)})
    data = load(tmp_path, df, target="y", categorical=["zone"])
    with_blank = pd.read_csv(io.StringIO("zone,other\n2,a\n,b\n"))
    assert with_blank["zone"].dtype == float
    x = features_for_prediction(with_blank, data.spec, "new")
    assert x[0, data.feature_names.index("zone=2")] == 1 and x[1].sum() == 0


def test_a_folder_given_as_the_data_file_is_named_a_folder(tmp_path):
    (tmp_path / "tables").mkdir()
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name="csv", path=str(tmp_path / "tables"), target="cost"))
    assert "is a folder, not a file" in one_line(err) and "does not exist" not in one_line(err)


def test_blank_targets_are_refused_unless_dropped_and_counted(tmp_path):
    df = mixed_table()
    df["cost"] = df["cost"].astype(object)
    df.loc[[3, 7, 11], "cost"] = None
    with pytest.raises(DataError) as err:
        load(tmp_path, df)
    assert "blank in 3 row(s)" in one_line(err) and "data.drop_blank_target" in one_line(err)
    data = load(tmp_path, df, drop_blank_target=True)
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == len(df) - 3
    assert "left out 3 of 200 rows whose target 'cost' is blank (data.drop_blank_target)" in data.notes
    assert DataConfig().drop_blank_target is False  # off by default


def test_rows_seen_in_training_are_counted(tmp_path):
    from trainwell.data.tabular import rows_seen_in_training

    df = mixed_table()
    df.to_csv(tmp_path / "t.csv", index=False)
    cfg = DataConfig(name="csv", path=str(tmp_path / "t.csv"), target="cost")
    test_rows = df.iloc[three_way(len(df), cfg.test_fraction, cfg.val_fraction, cfg.split_seed)[2]]
    assert rows_seen_in_training(pd.read_csv(tmp_path / "t.csv").iloc[test_rows.index], cfg) == 0
    assert rows_seen_in_training(pd.read_csv(tmp_path / "t.csv"), cfg) == len(df) - len(test_rows)


def test_date_onehot_adds_day_of_week_and_month_columns(tmp_path):
    """data.date_onehot: a weekday's effect need not rise with its number, so day of week and month also come
    one-hot; the numeric parts stay, a blank date is all zeros, and the tabular preset turns it on."""
    days = pd.date_range("2024-01-01", periods=60, freq="D").strftime("%Y-%m-%d")  # 2024-01-01 is a Monday
    data = load(tmp_path, pd.DataFrame({"day": days, "y": np.linspace(0, 1, 60)}), target="y", date_onehot=True)
    names = data.feature_names
    assert names[:4] == ["day.year", "day.month", "day.day_of_week", "day.day_of_year"]
    assert names[4:11] == [f"day.day_of_week={d}" for d in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")]
    assert names[11:] == [f"day.month={m}" for m in ("Jan", "Feb", "Mar", "Apr", "May", "Jun")] + [
        f"day.month={m}" for m in ("Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    ]
    x = features_for_prediction(pd.DataFrame({"day": ["2024-03-02", None]}), data.spec, "new")  # a Saturday in March
    hot = [names[i] for i in torch.nonzero(x[0, 4:] == 1).flatten().add(4).tolist()]
    assert hot == ["day.day_of_week=Sat", "day.month=Mar"]
    assert x[1, 4:].abs().sum() == 0
    assert "day (→ year, month, day_of_week, day_of_year, day_of_week one-hot, month one-hot)" in "\n".join(data.notes)
    assert load_config(preset="tabular").data.date_onehot is True


def test_scaling_auto_maps_a_skewed_column_by_its_quantiles(tmp_path):
    """data.scaling auto: a long-tailed column keeps its order to the top (robust scaling's smooth clip squeezes
    the tail below 3), and a symmetric column is scaled as robust scales it."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"size": rng.lognormal(0, 1.5, 400), "even": rng.normal(0, 1, 400), "y": rng.normal(0, 1, 400)})
    robust, auto = load(tmp_path, df, target="y"), load(tmp_path, df, target="y", scaling="auto")
    new = pd.DataFrame({"size": np.quantile(df["size"], [0.5, 0.9, 0.99, 1.0]), "even": [0.0, 1.0, 2.0, 3.0]})
    xr = features_for_prediction(new, robust.spec, "new")
    xa = features_for_prediction(new, auto.spec, "new")
    assert torch.equal(xa[:, 1], xr[:, 1])
    tail = xa[:, 0]
    assert abs(tail[0]) < 0.05 and (tail.diff() > 0.3).all() and tail.abs().max() < 3.1
    assert xr[3, 0] - xr[2, 0] < 0.1  # robust: the 99th percentile and the maximum crowd just under 3
    with_blank = features_for_prediction(pd.DataFrame({"size": [np.nan, 1e9], "even": [0.0, 0.0]}), auto.spec, "n")
    assert with_blank[1, 0] == pytest.approx(NormalDist().inv_cdf(0.999), abs=1e-4)  # beyond the range: the end
    with pytest.raises(ConfigError, match="scaling"):
        DataConfig(name="csv", scaling="quantile").validate()
