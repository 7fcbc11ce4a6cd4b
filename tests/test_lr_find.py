"""The LR finder on real runs: files, suggestions, no trace left on the run, `lr: auto`."""

import csv

import pytest
import torch
import yaml

from trainwell.build import build_trainer
from trainwell.cli import main
from trainwell.config import RunConfig
from trainwell.errors import ConfigError, TrainwellError
from trainwell.loop import LoopState, fit
from trainwell.lr_find import lr_find, range_test_trainer
from trainwell.runner import train


def quiet(*_, **__):
    pass


def test_range_test_leaves_the_run_as_it_was(tmp_path, tiny):
    """A run fitted after a range test equals one fitted without (dropout and BatchNorm included)."""
    cfg = RunConfig.from_dict(tiny(train={"max_epochs": 2}))
    t1, _, _ = build_trainer([cfg], [tmp_path], [quiet])
    before = t1.stack.pack(0, average=False)
    test = range_test_trainer(t1, steps=30)
    assert len(test.lrs) >= 4
    after = t1.stack.pack(0, average=False)
    assert all(torch.equal(before[k], after[k]) for k in before)
    fit(t1, LoopState())
    after_test = t1.members[0].history
    (tmp_path / "b").mkdir()
    t2, _, _ = build_trainer([cfg], [tmp_path / "b"], [quiet])
    fit(t2, LoopState())
    plain = t2.members[0].history
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(after_test) == strip(plain)


def test_lr_find_writes_csv_and_plot(tmp_path, tiny):
    result = lr_find(tiny(), out=tmp_path / "lr", steps=40)
    rows = list(csv.DictReader(open(tmp_path / "lr" / "lr_find.csv")))
    assert len(rows) == len(result.test.lrs) and set(rows[0]) == {"lr", "loss", "smoothed_loss"}
    assert (tmp_path / "lr" / "lr_find.png").stat().st_size > 1000
    assert set(result.suggestions) == {"steepest", "minimum/10", "valley"}
    assert result.suggested == result.suggestions["minimum/10"] and 1e-7 < result.suggested < 10
    with pytest.raises(TrainwellError, match="already holds a range test"):
        lr_find(tiny(), out=tmp_path / "lr", steps=40)  # never overwritten
    with pytest.raises(ConfigError, match="too short"):
        lr_find(tiny(), out=tmp_path / "x", steps=2)


def test_cli_lr_find_prints_the_rules(tmp_path, tiny, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny()))
    assert main(["lr-find", str(config), "--steps", "30", "--out", str(tmp_path / "lr")]) == 0
    out = capsys.readouterr().out
    assert "steepest" in out and "valley" in out and "decades" in out and "lr_find.png" in out


def test_auto_lr_records_the_suggestion_and_trains_like_that_number(tmp_path, tiny):
    auto = train(tiny(optim={"lr": "auto"}, train={"max_epochs": 2}), out=tmp_path / "auto")
    recorded = yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())["optim"]["lr"]
    assert isinstance(recorded, float) and (tmp_path / "auto" / "lr_find.csv").exists()
    fixed = train(tiny(optim={"lr": recorded}, train={"max_epochs": 2}), out=tmp_path / "fixed")
    assert [r["val_loss"] for r in auto.history] == [r["val_loss"] for r in fixed.history]
    onecycle = train(
        tiny(schedule={"name": "onecycle", "max_lr": "auto"}, train={"max_epochs": 1}), out=tmp_path / "oc"
    )
    assert isinstance(onecycle.config.schedule.max_lr, float)


def test_lr_find_and_auto_on_an_ensemble_test_one_member_and_apply_the_rate_to_all(tmp_path, tiny):
    cfg = tiny(train={"members": 3, "max_epochs": 2})
    assert main(["lr-find", *_as_file(tmp_path, cfg), "--out", str(tmp_path / "lf"), "--steps", "30"]) == 0
    assert (tmp_path / "lf" / "lr_find.csv").exists()
    result = train(tiny(train={"members": 3, "max_epochs": 2}, optim={"lr": "auto"}), out=tmp_path / "run")
    lr = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["optim"]["lr"]
    assert isinstance(lr, float) and result.metrics["members"] == 3
    assert result.history[0]["lr"] == pytest.approx(lr)  # every member trains at the found rate


def _as_file(tmp_path, cfg):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return [str(path)]


def test_a_failed_range_test_is_one_line_exit_2_and_leaves_no_folder(tmp_path, tiny, capsys, monkeypatch):
    from trainwell import lr_range

    def diverges_at_once(step, start, end, steps, *a, **k):
        step(start)
        return lr_range.RangeTest(lrs=[start], losses=[1.0], smoothed=[1.0], stop_reason="stopped: loss not finite")

    monkeypatch.setattr(lr_range, "run_range_test", diverges_at_once)
    assert main(["lr-find", *_as_file(tmp_path, tiny()), "--out", str(tmp_path / "lf")]) == 2
    err = capsys.readouterr().err
    assert "range test diverged" in err and err.count("\n") == 1
    assert not (tmp_path / "lf").exists()
    auto = tiny(optim={"lr": "auto"}, train={"members": 2})
    assert main(["train", *_as_file(tmp_path, auto), "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()
