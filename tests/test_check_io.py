"""The model check as a user meets it: `trainwell check` (exit 0, 1, 2) and trainwell.fit's start
lines and metrics.json."""

import json

import numpy as np
import pytest
import torch
from torch import nn

import trainwell
from trainwell import check_io
from trainwell.cli import main

NETS = """
from torch import nn

def Bad():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.2), nn.Flatten())

def Good():
    return nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout2d(0.2))

layer = nn.Linear(8, 1)
number = 3

def Broken():
    raise ValueError("no such layer size")
"""


@pytest.fixture
def nets(tmp_path, monkeypatch):
    (tmp_path / "mynets.py").write_text(NETS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_exit_statuses_zero_and_one(nets, capsys):
    assert main(["check", "mynets:Good", "--input-shape", "3,8,8"]) == 0
    assert capsys.readouterr().out.strip() == "model check: nothing to report"
    assert main(["check", "mynets.py:Bad", "--input-shape", "3x8x8"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "warning bias-before-batchnorm",
        "warning elementwise-dropout-on-maps",
    ]
    assert main(["check", "mynets:layer", "--input-shape", "8", "--json"]) == 0  # an instance works too
    assert json.loads(capsys.readouterr().out) == []


def test_the_last_batch_rule_from_the_command_line(nets, capsys):
    args = ["check", "mynets:Good", "--input-shape", "3,8,8", "--batch-size", "32", "--train-size"]
    assert main([*args, "65"]) == 0  # information only: trainwell drops the row
    assert "last-batch-of-one" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["mynets", "--input-shape", "8"], "MODULE:CALLABLE"),
        (["mynets:Nope", "--input-shape", "8"], "has no attribute 'Nope'"),
        (["nomodule:Net", "--input-shape", "8"], "cannot import module 'nomodule'"),
        (["missing.py:Net", "--input-shape", "8"], "no Python file 'missing.py'"),
        (["mynets:number", "--input-shape", "8"], "not an nn.Module or a callable"),
        (["mynets:Broken", "--input-shape", "8"], "calling mynets:Broken() failed: ValueError: no such layer size"),
        (["mynets:Good", "--input-shape", "3,a"], "--input-shape must be positive integers"),
        (["mynets:Good", "--input-shape", "0,4"], "--input-shape must be positive integers"),
        (["mynets:Good", "--input-shape", "5"], "forward pass failed on a batch of shape (4, 5)"),
        (["mynets:Good", "--input-shape", "3,8,8", "--input-dtype", "int8"], "--input-dtype must be one of"),
    ],
)
def test_bad_input_is_one_line_and_exit_two(nets, capsys, argv, words):
    assert main(["check", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1 and "Traceback" not in captured.err
    assert words in captured.err, captured.err


class Mistaken(nn.Module):
    """Two of the lessons' mistakes: a bias before BatchNorm, and Dropout feeding a BatchNorm; and
    the lessons' advice of BatchNorm before the activation not followed (information)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 16), nn.BatchNorm1d(16), nn.Dropout(0.1), nn.BatchNorm1d(16))
        self.head = nn.Sequential(nn.Linear(16, 16, bias=False), nn.ReLU(), nn.BatchNorm1d(16), nn.Linear(16, 1))

    def forward(self, x):
        return self.head(self.body(x))


def data(n=200):
    rs = np.random.RandomState(0)
    x = rs.normal(size=(n, 3)).astype("float32")
    return x, x[:, 0] - x[:, 1]


CONFIG = {"train": {"max_epochs": 2, "batch_size": 32}}
WARNINGS = ["check: warning bias-before-batchnorm", "check: warning dropout-before-batchnorm"]


def test_fit_shows_the_findings_and_records_them(tmp_path, capsys):
    torch.manual_seed(0)
    result = trainwell.fit(Mistaken(), data(), config=CONFIG, out=tmp_path / "loud", quiet=False)
    err = capsys.readouterr().err
    start = err[: err.index("epoch 1/")]  # among the start lines, before the first epoch
    for line in [*WARNINGS, "check: info activation-before-batchnorm"]:
        assert line in start, err
    recorded = json.loads((result.run_dir / "metrics.json").read_text())["check"]
    assert [f["rule"] for f in recorded] == [
        "bias-before-batchnorm",
        "dropout-before-batchnorm",
        "activation-before-batchnorm",
    ]
    assert recorded[0]["modules"] == ["body.0 (Linear)", "body.1 (BatchNorm1d)"] and recorded[0]["cost"].startswith(
        "16 dead parameters"
    )
    trainwell.fit(Mistaken(), data(), config=CONFIG, out=tmp_path / "quiet", quiet=True)
    err = capsys.readouterr().err  # quiet keeps the warnings, not the information
    shown = [line for line in err.splitlines() if line.startswith("check:")]
    assert [w for w in WARNINGS if any(line.startswith(w + ":") for line in shown)] == WARNINGS and len(shown) == 2, err


def clean():
    return nn.Sequential(nn.Linear(3, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))


def test_a_clean_model_records_an_empty_check_and_training_is_unchanged_by_it(tmp_path, monkeypatch):
    x, y = data()
    torch.manual_seed(0)
    checked = trainwell.fit(clean(), (x, y), config=CONFIG, out=tmp_path / "checked", quiet=True)
    assert checked.metrics["check"] == []
    monkeypatch.setattr(check_io, "fit_check", lambda *a: None)
    monkeypatch.setattr(trainwell.api, "fit_check", lambda *a: None)
    torch.manual_seed(0)
    unchecked = trainwell.fit(clean(), (x, y), config=CONFIG, out=tmp_path / "unchecked", quiet=True)
    assert "check" not in unchecked.metrics
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in checked.history] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in unchecked.history
    ]
