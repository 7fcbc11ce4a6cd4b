"""The command line: what a user types, what they get back, and one-line errors with exit 2."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from trainwell.cli import main

QUICK = ["--set", "data.n=400", "--set", "train.max_epochs=3", "--set", "model.hidden=[16]", "--quiet"]


def one_line_error(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    # a table's inferred roles may be shown before a later check refuses it: the error is still one line, the last
    lines = err.splitlines()
    assert [i for i, line in enumerate(lines) if "error" in line] == [len(lines) - 1] and "Traceback" not in err, err
    err = lines[-1] + "\n"
    for w in words:
        assert w in err, err
    return err


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"size": rng.uniform(20, 200, 120), "rooms": rng.integers(1, 6, 120).astype(float)})
    df["price"] = 3 * df["size"] + 10 * df["rooms"] + rng.normal(0, 5, 120)
    df.to_csv(tmp_path / "homes.csv", index=False)
    return tmp_path / "homes.csv", df


def test_train_evaluate_predict_on_a_csv(tmp_path, table, capsys):
    path, df = table
    run = tmp_path / "run"
    assert main(["train", "--data", str(path), "--target", "price", "--out", str(run), "--seed", "3", *QUICK[4:]]) == 0
    out = capsys.readouterr().out
    assert "test_mae" in out and str(run) in out
    assert main(["evaluate", str(run)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["test_mae"] == pytest.approx(json.loads((run / "metrics.json").read_text())["test_mae"], rel=1e-5)
    assert main(["evaluate", str(run), "--data", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 120
    new = df.drop(columns=["price"]).head(5)
    new.to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", str(run), str(tmp_path / "new.csv"), "--out", str(tmp_path / "pred.csv")]) == 0
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert (
        list(pred.columns) == ["size", "rooms", "predicted_price", "members_std_price"] and len(pred) == 5
    )  # the tabular preset is an ensemble
    assert pred["predicted_price"].between(0, 1000).all()  # original units, not standardised


def test_predict_classification_returns_label_names(tmp_path, capsys):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    df["kind"] = np.where(df.a > 0, "cat", "dog")
    df.to_csv(tmp_path / "pets.csv", index=False)
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "pets.csv"),
                "--target",
                "kind",
                "--out",
                str(run),
                "--quiet",
                "--set",
                "train.max_epochs=5",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["predict", str(run), str(tmp_path / "pets.csv")]) == 0
    pred = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert (
        set(pred["predicted_kind"]) <= {"cat", "dog"}
        and (pred["probability_cat"] + pred["probability_dog"]).between(0.999, 1.001).all()
    )
    chosen = np.where(pred["predicted_kind"] == "cat", pred["probability_cat"], pred["probability_dog"])
    assert (chosen >= 0.5).all()


def test_preset_run_with_live_progress(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--preset",
                "delivery-production",
                "--out",
                str(tmp_path / "r"),
                "--set",
                "data.n=400",
                "--set",
                "train.max_epochs=2",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "val_mae" in err and "weight decay 0.01 on 4 tensors" in err


def test_presets_lists_names(capsys):
    assert main(["presets"]) == 0
    assert "delivery-production" in capsys.readouterr().out


def test_bad_inputs_exit_2_with_one_line(tmp_path, table, capsys):
    path, df = table
    one_line_error(capsys, ["train", "--data", str(tmp_path / "missing.csv"), "--target", "price"], "does not exist")
    one_line_error(capsys, ["train", "--data", str(path), "--target", "cost"], "no target column 'cost'", "price")
    df.assign(rooms=["many"] + list(df["rooms"][1:])).to_csv(tmp_path / "text.csv", index=False)
    one_line_error(
        capsys,
        ["train", "--data", str(tmp_path / "text.csv"), "--target", "price", "--set", "data.numeric=[rooms]"],
        "has text 'many'",
    )
    df.assign(price=[np.nan] + list(df["price"][1:])).to_csv(tmp_path / "nan.csv", index=False)
    one_line_error(
        capsys, ["train", "--data", str(tmp_path / "nan.csv"), "--target", "price"], "blank in 1 row(s) (file rows 2)"
    )
    df.head(12).to_csv(tmp_path / "few.csv", index=False)
    one_line_error(capsys, ["train", "--data", str(tmp_path / "few.csv"), "--target", "price"], "fewer than one batch")
    one_line_error(capsys, ["train", "--preset", "nope"], "unknown preset 'nope'", "delivery-production")
    one_line_error(
        capsys, ["train", "--preset", "delivery-production", "--set", "optim.lr=-1"], "optim.lr = -1.0", "> 0"
    )
    one_line_error(capsys, ["train", "--preset", "delivery-production", "--set", "model.dropout=1"], "model.dropout")
    one_line_error(capsys, ["train", "--preset", "delivery-production", "--seed", "x"], "invalid int value")
    one_line_error(capsys, ["train"], "say what to train")
    one_line_error(capsys, ["evaluate", str(tmp_path)], "no config.yaml")
    one_line_error(capsys, ["bogus"], "invalid choice")


def test_console_script_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "trainwell.cli", "train", "--preset", "nope"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


def test_help_and_argument_errors_import_neither_torch_nor_pandas():
    code = (
        "import sys, trainwell, trainwell.cli as c\n"
        "for argv in (['--help'], ['presets'], ['train', '--bogus']):\n"
        "    try: c.main(argv)\n"
        "    except SystemExit: pass\n"
        "heavy = sorted(m for m in ('torch', 'pandas', 'numpy', 'matplotlib') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert callable(trainwell.train) and 'torch' in sys.modules  # the library still loads on first use\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_evaluate_on_rows_the_run_trained_on_warns(tmp_path, table, capsys):
    path, df = table
    run = tmp_path / "run"
    assert main(["train", "--data", str(path), "--target", "price", "--out", str(run), *QUICK[2:]]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(path)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["rows_seen_in_training"] == 96  # of 120 rows: 24 are test rows (20%)
    assert "rows the run trained or validated on" in captured.err and captured.err.count("\n") == 1
    unseen = tmp_path / "unseen.csv"
    df.assign(size=df["size"] + 0.5).to_csv(unseen, index=False)
    assert main(["evaluate", str(run), "--data", str(unseen)]) == 0
    captured = capsys.readouterr()
    assert "rows_seen_in_training" not in captured.out and captured.err == ""
