"""trainwell.fit on one's own module and data; resume, load_weights, register_model."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import trainwell
from trainwell.errors import CheckpointError, DataError
from trainwell.inference import evaluate_run

CONFIG = {"train": {"max_epochs": 6, "batch_size": 16, "quiet": True, "early_stopping": False}, "optim": {"lr": 2e-2}}


class Net(nn.Module):
    def __init__(self, d_in=3, n_out=1, width=16):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, width), nn.BatchNorm1d(width), nn.ReLU())
        self.head = nn.Linear(width, n_out)

    def forward(self, x):
        return self.head(self.body(x))


def regression_data(n=300, seed=0):
    rs = np.random.RandomState(seed)
    x = rs.normal(size=(n, 3))
    return x, 2 * x[:, 0] - x[:, 1] + 0.1 * rs.normal(size=n)


def test_fit_trains_a_module_in_place_and_keeps_the_best_weights(tmp_path):
    torch.manual_seed(0)
    model = Net()
    x, y = regression_data()
    result = trainwell.fit(model, (torch.tensor(x), torch.tensor(y)), config=CONFIG, out=tmp_path / "run")
    assert result.ok and result.metrics["test_mae"] < 0.6 and len(result.history) == 6
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    best = trainwell.load_weights(tmp_path / "run", Net())
    assert all(torch.equal(a, b) for a, b in zip(best.state_dict().values(), model.state_dict().values()))
    assert (tmp_path / "run" / "config.yaml").read_text().count("name: memory") == 1


def test_the_audit_names_the_users_own_parameters(tmp_path, capsys):
    x, y = regression_data(100)
    trainwell.fit(Net(), (x, y), config={"train": {"max_epochs": 1}}, out=tmp_path / "run", quiet=False)
    err = capsys.readouterr().err
    assert "no weight decay on (fewer than 2 dimensions): body.0.bias, body.1.weight, body.1.bias, head.bias" in err


def test_dataframe_with_string_labels_and_a_custom_metric(tmp_path):
    rs = np.random.RandomState(1)
    x = rs.normal(size=(240, 3))
    df = pd.DataFrame(x, columns=["a", "b", "c"]).assign(kind=np.where(x[:, 0] + x[:, 1] > 0, "yes", "no"))

    def error_rate(out, y):
        return (out.argmax(1) != y).float().mean().item()

    result = trainwell.fit(Net(n_out=2), df, target="kind", config=CONFIG, out=tmp_path / "run", metric=error_rate)
    assert "val_error_rate" in result.history[0] and "val_error_rate" in (tmp_path / "run" / "history.csv").read_text()
    assert result.metrics["test_error_rate"] == pytest.approx(1 - result.metrics["test_accuracy"])
    assert trainwell.RunConfig.from_dict(result.config.to_dict()).data.task == "classification"


def test_a_torch_dataset_and_given_splits(tmp_path):
    x, y = regression_data(200)
    ds = torch.utils.data.TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    xv, yv = regression_data(40, seed=1)
    result = trainwell.fit(Net(), ds, val=(xv, yv), test=(xv, yv), config=CONFIG, out=tmp_path / "run")
    best = result.history[result.metrics["best_epoch"] - 1]
    assert result.ok and result.metrics["test_mae"] == pytest.approx(best["val_mae"], rel=1e-5)  # test = val here
    with pytest.raises(DataError, match="must be"):
        trainwell.fit(Net(), "not data", config=CONFIG, out=tmp_path / "bad")


def test_load_weights_names_the_first_differing_parameter(tmp_path):
    x, y = regression_data()
    trainwell.fit(Net(), (x, y), config=CONFIG, out=tmp_path / "run")
    with pytest.raises(CheckpointError, match=r"'body.0.weight' has shape \(8, 3\) in the model but \(16, 3\)"):
        trainwell.load_weights(tmp_path / "run", Net(width=8))


def test_resume_with_the_model_and_data_again_equals_an_uninterrupted_run(tmp_path):
    x, y = regression_data()
    torch.manual_seed(0)
    whole = trainwell.fit(Net(), (x, y), config=CONFIG, out=tmp_path / "whole")
    short = {**CONFIG, "train": {**CONFIG["train"], "max_epochs": 2}}
    torch.manual_seed(0)
    trainwell.fit(Net(), (x, y), config=short, out=tmp_path / "part")
    (tmp_path / "part" / "metrics.json").unlink()  # as if stopped after epoch 2
    with pytest.raises(CheckpointError, match="differ"):
        trainwell.resume(tmp_path / "part", {"train.max_epochs": 6}, model=Net(), train=(x[::-1], y[::-1]))
    with pytest.raises(CheckpointError, match="'body.0.weight'"):
        trainwell.resume(tmp_path / "part", {"train.max_epochs": 6}, model=Net(width=8), train=(x, y))
    resumed = trainwell.resume(tmp_path / "part", {"train.max_epochs": 6}, model=Net(), train=(x, y))
    drop = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert drop(resumed.history) == drop(whole.history)


def test_registered_model_is_named_by_configs(tmp_path, tiny):
    @trainwell.register_model("test-two-layer")
    def two_layer(input_shape, n_outputs):
        return nn.Sequential(nn.Linear(input_shape[0], 8), nn.ReLU(), nn.Linear(8, n_outputs))

    result = trainwell.train(tiny(model={"kind": "test-two-layer"}), out=tmp_path / "run")
    assert result.ok and "test_mae" in evaluate_run(tmp_path / "run")


def loans_frame(n=300, seed=0, text_dtype=None):
    """A loans-like table as a user holds it: numbers with blanks, text, booleans, dates, a text target."""
    rs = np.random.RandomState(seed)
    income = rs.normal(50, 15, n)
    grade = rs.choice(list("ABCD"), n)
    df = pd.DataFrame(
        {
            "income": np.where(np.arange(n) % 17 == 0, np.nan, income),
            "grade": grade,
            "owner": rs.rand(n) < 0.5,
            "issued": pd.date_range("2020-01-01", periods=n, freq="D"),
            "purpose": np.where(np.arange(n) % 5 == 0, "", np.where(rs.rand(n) < 0.5, "car", "home")),
            "status": np.where(income + 10 * (grade == "A") > 55, "paid", "late"),
        }
    )
    if text_dtype is not None:
        df = df.astype({c: text_dtype for c in ("grade", "purpose", "status")})
    return df


@pytest.mark.parametrize("text_dtype", [None, "object", "string"])
def test_fit_takes_a_dataframe_with_text_boolean_date_and_blank_columns(tmp_path, text_dtype):
    """The same preprocessing as `train --data` (saved with the weights), pandas 2 and 3 string dtypes."""
    df = loans_frame(text_dtype=text_dtype)
    with pytest.raises(DataError, match="cannot take the prepared inputs: each sample is 15 numbers"):
        trainwell.fit(Net(d_in=3, n_out=2), df, target="status", config=CONFIG, out=tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    result = trainwell.fit(Net(d_in=15, n_out=2), df, target="status", config=CONFIG, out=tmp_path / "run")
    assert result.ok and 0 <= result.metrics["test_accuracy"] <= 1
    spec = torch.load(tmp_path / "run" / "best.pt", weights_only=True)["spec"]
    kinds = {c["name"]: c["kind"] for c in spec["preprocess"]["columns"]}
    assert set(kinds) == {"income", "grade", "owner", "issued", "purpose"}
    assert kinds["income"] == "numeric" and kinds["issued"] == "date" and kinds["grade"] == "categorical"


def test_fit_start_lines_name_the_rate_max_lr_auto_found(tmp_path, capsys):
    x, y = regression_data(400)
    config = {"train": {"max_epochs": 4, "batch_size": 32}, "schedule": {"name": "onecycle", "max_lr": "auto"}}
    result = trainwell.fit(Net(), (x, y), config=config, out=tmp_path / "run", quiet=False)
    err = capsys.readouterr().err
    found = float(next(line for line in err.splitlines() if line.startswith("schedule.max_lr = ")).split()[2])
    optimizer = next(line for line in err.splitlines() if line.startswith("optimizer: "))
    assert f"peak of {found:.3g}" in optimizer and "lr 0.001," not in optimizer
    peak = max(r["lr"] for r in result.history)
    assert peak == pytest.approx(found, rel=0.3)  # the history samples the schedule once per epoch
