import numpy as np
import pandas as pd
import pytest
import torch

from trainwell.config import DataConfig
from trainwell.data import load_data
from trainwell.data.delivery import generate, true_function
from trainwell.data.splits import three_way, train_test_indices
from trainwell.errors import DataError


def seed_lesson_rows(n, seed):
    """The lesson's generator, drawn from NumPy's global RNG exactly as it is written."""
    np.random.seed(seed)
    distance = np.abs(np.random.normal(4.0, 2.0, n)).clip(0.5, 15)
    traffic = np.random.randint(1, 11, n).astype(float)
    prep = np.abs(np.random.normal(15, 5, n)).clip(5, 35)
    value = np.abs(np.random.normal(350, 150, n)).clip(50, 1200)
    delivery = (8.6 + 7.3 * distance + 0.8 * prep + 1.5 * traffic + np.random.normal(0, 4, n)).clip(10, 120)
    return np.column_stack([distance, traffic, prep, value]), delivery


def test_delivery_rows_equal_the_seed_lessons():
    x, y = generate(3000, 42)
    x_ref, y_ref = seed_lesson_rows(3000, 42)
    assert np.array_equal(x, x_ref) and np.array_equal(y, y_ref)


def test_splits_equal_scikit_learn():
    from sklearn.model_selection import train_test_split

    rows = np.arange(3000)
    rest, test = train_test_split(rows, test_size=0.2, random_state=42)
    tv, val = train_test_split(rest, test_size=0.15, random_state=42)
    tr_i, va_i, te_i = three_way(3000, 0.2, 0.15, 42)
    assert np.array_equal(tr_i, tv) and np.array_equal(va_i, val) and np.array_equal(te_i, test)
    a, b = train_test_indices(101, 0.3, 7)
    ra, rb = train_test_split(np.arange(101), test_size=0.3, random_state=7)
    assert np.array_equal(a, ra) and np.array_equal(b, rb)


def test_delivery_standardised_with_training_statistics_only():
    data = load_data(DataConfig())
    assert data.x_train.mean(0).abs().max() < 1e-4 and (data.x_train.std(0, unbiased=False) - 1).abs().max() < 1e-3
    assert data.x_test.mean(0).abs().max() > 1e-3  # test rows are not re-centred on their own statistics
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (2040, 360, 600)
    x, y = generate(3000, 42)
    _, _, te = three_way(3000, 0.2, 0.15, 42)
    mae_true = np.abs(true_function(x[te]).clip(10, 120) - y[te]).mean()
    assert mae_true == pytest.approx(3.33, abs=0.01)  # the noise floor the seeds quote
    restored = data.y_test[:, 0].numpy() * data.target_std + data.target_mean
    assert np.allclose(restored, y[te], atol=1e-3)


def write_csv(path, rows=60, label=False, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    df["y"] = np.where(df.a + df.b > 0, "yes", "no") if label else 3 * df.a - df.b
    df.to_csv(path, index=False)
    return df


def test_csv_regression_and_string_labelled_classification(tmp_path):
    write_csv(tmp_path / "r.csv")
    reg = load_data(DataConfig(name="csv", path=str(tmp_path / "r.csv"), target="y"))
    assert reg.task == "regression" and reg.feature_names == ["a", "b"] and reg.n_outputs == 1
    write_csv(tmp_path / "c.csv", label=True)
    cls = load_data(DataConfig(name="csv", path=str(tmp_path / "c.csv"), target="y"))
    assert cls.task == "classification" and cls.classes == ["no", "yes"] and cls.y_train.dtype == torch.long


def test_csv_declared_classification_and_separate_test_file(tmp_path):
    df = write_csv(tmp_path / "r.csv")
    df["y"] = (df.y > 0).astype(int)
    df.to_csv(tmp_path / "i.csv", index=False)
    df.iloc[:10].to_csv(tmp_path / "t.csv", index=False)
    data = load_data(
        DataConfig(
            name="csv",
            path=str(tmp_path / "i.csv"),
            target="y",
            task="classification",
            test_path=str(tmp_path / "t.csv"),
        )
    )
    assert data.classes == ["0", "1"] and len(data.x_test) == 10 and len(data.x_train) + len(data.x_val) == 60


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda df: df.drop(columns=["y"]), "no target column 'y'"),
        (lambda df: df.assign(a=[np.nan] * len(df), b=["x"] * len(df)), "no usable feature column"),
        (lambda df: df.assign(y=[np.nan] + [1.0] * (len(df) - 1)), "target 'y' is blank in 1 row(s) (file rows 2)"),
    ],
)
def test_bad_csv_one_line_errors(tmp_path, mutate, words):
    df = write_csv(tmp_path / "ok.csv")
    mutate(df).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name="csv", path=str(tmp_path / "bad.csv"), target="y"))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data(DataConfig(name="csv", path=str(tmp_path / "none.csv"), target="y"))
