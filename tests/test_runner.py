"""Training behaviour end to end on tiny delivery runs."""

import contextlib
import json

import pandas as pd
import pytest
import torch

from conftest import tiny_config
from trainwell.build import build_trainer
from trainwell.checkpoint import BEST, load_checkpoint
from trainwell.config import RunConfig
from trainwell.loop import NOT_FINITE
from trainwell.runner import train


def test_run_directory_contents(tmp_path):
    result = train(tiny_config(), out=tmp_path / "run")
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.yaml", "history.csv", "history.json", "best.pt", "last.pt", "metrics.json", "curves.svg"} <= files
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(history.columns) == [
        "epoch",
        "train_loss",
        "val_loss",
        "val_mae",
        "val_rmse",
        "val_r2",
        "lr",
        "grad_norm_mean",
        "grad_norm_max",
        "clipped_fraction",
        "seconds",
    ]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"test_mae", "test_loss", "epochs_run", "best_epoch", "wall_seconds"} <= set(metrics)
    assert metrics == result.metrics and metrics["epochs_run"] == len(history)
    assert (
        RunConfig.from_dict(__import__("yaml").safe_load((tmp_path / "run" / "config.yaml").read_text()))
        == result.config
    )


def test_existing_run_directory_is_refused_not_overwritten(tmp_path):
    train(tiny_config(train={"max_epochs": 1}), out=tmp_path / "run")
    before = (tmp_path / "run" / "best.pt").read_bytes()
    with pytest.raises(Exception, match="already holds a run"):
        train(tiny_config(), out=tmp_path / "run")
    assert (tmp_path / "run" / "best.pt").read_bytes() == before


def test_early_stopping_stops_and_restores_best_weights(tmp_path):
    # a large lr on tiny data overfits quickly: validation stops improving
    cfg = tiny_config(optim={"lr": 0.05}, train={"max_epochs": 60, "patience": 3})
    result = train(cfg, out=tmp_path / "run")
    m = result.metrics
    assert m["stop_reason"] == "early_stop"
    assert m["epochs_run"] < 60 and m["epochs_run"] == m["best_epoch"] + 3
    assert m["restored_best"]
    best_val = min(r["val_loss"] for r in result.history)
    assert m["best_value"] == pytest.approx(best_val)
    # the test metrics are those of the best weights on disk
    from trainwell.inference import evaluate_run

    assert evaluate_run(tmp_path / "run")["test_mae"] == pytest.approx(m["test_mae"], rel=1e-5)


def test_no_early_stopping_runs_every_epoch(tmp_path):
    result = train(
        tiny_config(optim={"lr": 0.05}, train={"max_epochs": 8, "patience": 1, "early_stopping": False}),
        out=tmp_path / "r",
    )
    assert result.metrics["epochs_run"] == 8 and result.stop_reason == "max_epochs"


def test_non_finite_loss_stops_and_keeps_best_checkpoint(tmp_path):
    cfg = tiny_config(
        optim={"name": "sgd", "lr": 1.0e6, "momentum": 0.0},
        model={"norm": "none", "dropout": 0.0},
        train={"max_epochs": 20},
    )
    result = train(cfg, out=tmp_path / "run")
    assert result.stop_reason == NOT_FINITE
    assert "non-finite at epoch" in result.message and "step" in result.message
    assert result.metrics["epochs_run"] < 20
    if result.metrics["best_epoch"]:
        best = load_checkpoint(tmp_path / "run" / "best.pt", BEST)
        assert all(torch.isfinite(v).all() for v in best["model"].values())


def test_gradient_clipping_records_pre_clip_norms(tmp_path):
    result = train(tiny_config(train={"max_epochs": 2, "clip_norm": 1e-4}), out=tmp_path / "run")
    for row in result.history:
        assert row["clipped_fraction"] == 1.0 and row["grad_norm_max"] >= row["grad_norm_mean"] > 1e-4
    free = train(tiny_config(train={"max_epochs": 2}), out=tmp_path / "free")
    assert all(r["clipped_fraction"] == 0.0 for r in free.history)


def test_drop_last_turns_on_for_batchnorm_when_last_batch_holds_one(tmp_path):
    # delivery n=400 → 272 training rows; batch 271 leaves a last batch of one
    cfg = RunConfig.from_dict(tiny_config(train={"batch_size": 271}))
    trainer, _, lines = build_trainer([cfg], [tmp_path], [lambda *a, **k: None])
    assert trainer.drop_last and trainer.steps_per_epoch == 1 and any("dropped" in line for line in lines)
    result = train(cfg, out=tmp_path / "run")
    assert result.ok
    cfg_ln = RunConfig.from_dict(tiny_config(model={"norm": "layer"}, train={"batch_size": 271}))
    assert not build_trainer([cfg_ln], [tmp_path], [lambda *a, **k: None])[0].drop_last


def test_train_loss_is_averaged_by_sample_count(tmp_path):
    # lr tiny so the weights barely move; the recorded train loss ≈ the exact sample mean
    cfg = RunConfig.from_dict(
        tiny_config(
            model={"dropout": 0.0, "norm": "none"}, optim={"lr": 1e-9}, train={"max_epochs": 1, "batch_size": 100}
        )
    )
    trainer, _, _ = build_trainer([cfg], [tmp_path], [lambda *a, **k: None])
    out = trainer.stack.outputs(trainer.data.x_train, 4096, contextlib.nullcontext, average=False)[0]
    exact = torch.nn.functional.mse_loss(out, trainer.data.y_train).item()
    result = train(cfg, out=tmp_path / "run")
    assert result.history[0]["train_loss"] == pytest.approx(exact, rel=1e-4)  # 272 rows: batches 100, 100, 72


def test_classification_reports_accuracy(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    df["label"] = np.where(df.a > 0, "pos", "neg")
    df.to_csv(tmp_path / "c.csv", index=False)
    cfg = tiny_config(
        data={"name": "csv", "path": str(tmp_path / "c.csv"), "target": "label"},
        optim={"lr": 0.01},
        train={"max_epochs": 15},
    )
    result = train(cfg, out=tmp_path / "run")
    assert "val_accuracy" in result.history[0] and result.metrics["test_accuracy"] > 0.85


def test_monitor_must_fit_the_task(tmp_path):
    with pytest.raises(Exception, match="val_accuracy.*regression"):
        train(tiny_config(train={"monitor": "val_accuracy"}), out=tmp_path / "r")


def test_evaluation_leaves_the_model_in_train_mode(tmp_path):
    seen = []
    cfg = RunConfig.from_dict(
        tiny_config(model={"norm": "layer"}, train={"max_epochs": 2})
    )  # the module path: real modules
    trainer, _, _ = build_trainer(
        [cfg],
        [tmp_path],
        [lambda event, **p: seen.append(trainer.stack.modules[0].training) if event == "epoch_end" else None],
    )
    from trainwell.loop import LoopState, fit

    fit(trainer, LoopState())
    assert seen == [True, True]


def test_same_seed_same_results(tmp_path):
    a = train(tiny_config(), out=tmp_path / "a")
    b = train(tiny_config(), out=tmp_path / "b")
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    assert {k: v for k, v in a.metrics.items() if k != "wall_seconds"} == {
        k: v for k, v in b.metrics.items() if k != "wall_seconds"
    }
    wa, wb = (load_checkpoint(p / "best.pt", BEST)["model"] for p in (tmp_path / "a", tmp_path / "b"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = train(tiny_config(train={"seed": 1}), out=tmp_path / "c")
    assert strip(c.history) != strip(a.history)
