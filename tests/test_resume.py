"""Exact resume: a run SIGKILLed at any moment and resumed ends bit-identical to an
uninterrupted run (weights, history, metrics), on the CPU."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from trainwell.checkpoint import BEST, LAST, load_checkpoint
from trainwell.cli import main
from trainwell.errors import ConfigError, TrainwellError
from trainwell.runner import resume, train

CHILD = Path(__file__).with_name("resume_child.py")


def run_child(mode, out, cfg, kill, expect_killed=True):
    proc = subprocess.run(
        [sys.executable, str(CHILD), mode, str(out), json.dumps(cfg), json.dumps(kill)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if expect_killed:
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    return proc


def strip(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def assert_same_run(a: Path, b: Path):
    ha, hb = (json.loads((p / "history.json").read_text()) for p in (a, b))
    assert strip(ha) == strip(hb)
    ma, mb = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
    ma.pop("wall_seconds"), mb.pop("wall_seconds")
    assert ma == mb
    wa, wb = (load_checkpoint(p / "best.pt", BEST)["model"] for p in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), "best.pt"
    la, lb = (load_checkpoint(p / "last.pt", LAST)["members"] for p in (a, b))
    for ma_, mb_ in zip(la, lb):
        for part in ("weights", "optimizer"):
            assert ma_[part].keys() == mb_[part].keys()
            for k in ma_[part]:
                x, y = ma_[part][k], mb_[part][k]
                assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y, (part, k)


SCENARIOS = {
    # name: (config changes, where the child kills itself)
    "epoch_boundary": ({}, {"event": "checkpoint", "epoch": 2, "step": 0}),
    "mid_epoch": ({"train": {"checkpoint_every_steps": 4}}, {"event": "checkpoint", "mid_epoch_of": 1}),
    "patience_window": (
        {"optim": {"lr": 0.05}, "train": {"max_epochs": 30, "patience": 4}},
        {"event": "epoch_end", "bad_epochs": 2},
    ),
    "after_plateau_drop": (
        {
            "optim": {"lr": 0.05},
            "schedule": {"name": "plateau", "patience": 0, "factor": 0.5},
            "train": {"max_epochs": 12, "early_stopping": False},
        },
        {"event": "checkpoint", "lr_below": 0.05},
    ),
    "onecycle_warmup": (
        {
            "schedule": {"name": "onecycle", "warmup_fraction": 0.5},
            "train": {"max_epochs": 4, "checkpoint_every_steps": 3},
        },
        {"event": "checkpoint", "epoch": 0, "step": 6},
    ),
    "image_augmentation": (
        {
            "data": {"name": "digits"},
            "model": {"kind": "cnn", "channels": [8, 16], "head_width": 32},
            "train": {"max_epochs": 2, "checkpoint_every_steps": 7},
        },
        {"event": "checkpoint", "mid_epoch_of": 1},
    ),
    "validated_within_a_pass": (
        {"train": {"val_every": 0.25, "max_epochs": 7}},
        {"event": "checkpoint", "epoch": 2, "step": 0},
    ),
    "step_budget_mid_epoch_within_a_pass": (
        {"train": {"val_every": 0.5, "max_steps": 40, "checkpoint_every_steps": 3}},
        {"event": "checkpoint", "mid_epoch_of": 3},
    ),
    "fp16_loss_scale_after_overflows": (
        {"train": {"amp": "fp16", "loss_scale": 2.0**72, "checkpoint_every_steps": 4}},
        {"event": "checkpoint", "nth": 4},
    ),
    "weight_average_and_clipping": (
        {"train": {"ema_decay": 0.9, "clip_norm": 0.5, "checkpoint_every_steps": 5}},
        {"event": "checkpoint", "nth": 3},
    ),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_killed_and_resumed_equals_uninterrupted(tmp_path, name):
    changes, kill = SCENARIOS[name]
    cfg = tiny_config(**changes)
    train(cfg, out=tmp_path / "straight")
    run_child("train", tmp_path / "killed", cfg, kill)
    assert (tmp_path / "killed" / "last.pt").exists() and not (tmp_path / "killed" / "metrics.json").exists()
    resume(tmp_path / "killed", quiet=True)
    assert_same_run(tmp_path / "straight", tmp_path / "killed")


def test_killed_several_times(tmp_path):
    cfg = tiny_config(train={"max_epochs": 5, "checkpoint_every_steps": 4})
    train(cfg, out=tmp_path / "straight")
    run_child("train", tmp_path / "killed", cfg, {"event": "checkpoint", "epoch": 0, "step": 4})
    run_child("resume", tmp_path / "killed", cfg, {"event": "checkpoint", "epoch": 2, "step": 0})
    run_child("resume", tmp_path / "killed", cfg, {"event": "checkpoint", "mid_epoch_of": 3})
    resume(tmp_path / "killed", quiet=True)
    assert_same_run(tmp_path / "straight", tmp_path / "killed")


def test_killed_at_an_arbitrary_moment(tmp_path):
    """The parent SIGKILLs the child at a moment of its choosing, not at a checkpoint event."""
    cfg = tiny_config(train={"max_epochs": 40, "early_stopping": False, "checkpoint_every_steps": 2})
    train(cfg, out=tmp_path / "straight")
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), "train", str(tmp_path / "killed"), json.dumps(cfg), json.dumps({})],
        stdout=subprocess.PIPE,
        text=True,
    )
    for _ in range(23):  # some way into training
        assert proc.stdout.readline()
    time.sleep(0.013)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    resume(tmp_path / "killed", quiet=True)
    assert_same_run(tmp_path / "straight", tmp_path / "killed")


def test_sigterm_stops_after_the_step_and_prints_the_resume_command(tmp_path):
    cfg = tiny_config(train={"max_epochs": 400, "early_stopping": False, "quiet": False})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainwell.cli",
            "train",
            "--preset",
            "delivery-quick",
            "--set",
            "train.max_epochs=400",
            "--set",
            "train.early_stopping=false",
            "--out",
            str(tmp_path / "run"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stderr:
        if line.startswith("epoch"):
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"trainwell resume {tmp_path / 'run'}" in err
    ck = load_checkpoint(tmp_path / "run" / "last.pt", LAST)
    assert ck["loop"]["interrupted"] and not (tmp_path / "run" / "metrics.json").exists()
    del cfg


def test_sigint_in_process_then_resume_equals_uninterrupted(tmp_path):
    import os

    cfg = tiny_config(train={"max_epochs": 5})
    train(cfg, out=tmp_path / "straight")

    def emit(event, **p):
        if event == "epoch_end" and p["row"]["epoch"] == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would

    result = train(cfg, out=tmp_path / "stopped", emit=emit)
    assert result.stop_reason == "interrupted"
    resume(tmp_path / "stopped", quiet=True)
    assert_same_run(tmp_path / "straight", tmp_path / "stopped")


def test_resume_may_grow_max_epochs(tmp_path):
    train(tiny_config(train={"max_epochs": 2, "early_stopping": False}), out=tmp_path / "short")
    train(tiny_config(train={"max_epochs": 4, "early_stopping": False}), out=tmp_path / "long")
    (tmp_path / "short" / "metrics.json").unlink()  # as if killed after its last epoch
    result = resume(tmp_path / "short", overrides={"train.max_epochs": 4}, quiet=True)
    assert result.metrics["epochs_run"] == 4
    assert strip(result.history) == strip(json.loads((tmp_path / "long" / "history.json").read_text()))


def test_resume_refusals(tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny_config(train={"max_epochs": 2}), out=run)
    with pytest.raises(TrainwellError, match="already finished"):
        resume(run)
    (run / "metrics.json").unlink()
    with pytest.raises(ConfigError, match="may change: train.max_epochs"):
        resume(run, overrides={"optim.lr": 0.1})
    with pytest.raises(ConfigError, match="may only grow"):
        resume(run, overrides={"train.max_epochs": 1})
    (run / "last.pt").unlink()
    assert main(["resume", str(run)]) == 2
    assert "has no last.pt" in capsys.readouterr().err
    assert main(["resume", str(tmp_path / "nowhere")]) == 2
