"""The vectorised engine: same arithmetic as single runs, per-member stopping and failures, job splitting."""

from __future__ import annotations

import json

import pytest

from trainwell.config import load_config
from trainwell.experiments.spec import Run
from trainwell.experiments.stacked import eligible, group_jobs, group_key, train_stacked
from trainwell.runner import train

BASE = {"data.n": 300, "model.hidden": [16, 8], "model.norm": "none", "model.dropout": 0.0, "train.max_epochs": 3, "train.batch_size": 32, "train.early_stopping": False}


def cfg(**changes):
    return load_config(overrides={**BASE, **{k.replace("__", "."): v for k, v in changes.items()}})


@pytest.mark.parametrize(
    "members",
    [
        [  # Adam L2, AdamW with decay on everything and one-cycle, clipping: one stack
            {"optim__name": "adam", "optim__weight_decay": 0.01, "train__seed": 0},
            {"optim__name": "adamw", "optim__weight_decay": 0.1, "optim__decay_norm_and_bias": True, "schedule__name": "onecycle", "train__seed": 1},
            {"optim__name": "adamw", "train__clip_norm": 0.3, "schedule__name": "step", "schedule__step_size": 1, "train__seed": 2},
        ],
        [  # SGD plain, momentum with Nesterov and L2
            {"optim__name": "sgd", "optim__lr": 0.01, "optim__momentum": 0.0, "optim__weight_decay": 0.0, "train__seed": 0},
            {"optim__name": "sgd", "optim__lr": 0.02, "optim__nesterov": True, "optim__weight_decay": 0.01, "train__seed": 3},
        ],
    ],
)
def test_members_match_single_runs(tmp_path, members):
    cfgs = [cfg(**m) for m in members]
    assert len({group_key(c) for c in cfgs}) == 1 and all(eligible(c) for c in cfgs)
    rows = train_stacked([Run("t", f"v{i}", c.train.seed, c) for i, c in enumerate(cfgs)], [tmp_path / f"s{i}" for i in range(len(cfgs))], 1)
    for i, c in enumerate(cfgs):
        single = train(c, out=tmp_path / f"single{i}", quiet=True)
        stacked = json.loads((tmp_path / f"s{i}" / "history.json").read_text())
        assert len(stacked) == len(single.history) == 3
        for a, b in zip(single.history, stacked):
            for key in ("train_loss", "val_loss", "val_mae", "lr", "grad_norm_mean", "clipped_fraction"):
                assert b[key] == pytest.approx(a[key], rel=2e-4, abs=1e-7), key
        assert rows[i]["status"] == "ok" and rows[i]["engine"] == "stacked"
        assert rows[i]["test_mae"] == pytest.approx(single.metrics["test_mae"], rel=1e-3)
        for name in ("config.yaml", "metrics.json", "history.csv", "best.pt"):
            assert (tmp_path / f"s{i}" / name).exists()


def test_batchnorm_dropout_and_early_stopping_per_member(tmp_path):
    cfgs = [
        cfg(model__norm="batch", model__dropout=0.2, train__max_epochs=30, train__early_stopping=True, train__patience=2, train__seed=0),
        cfg(model__norm="batch", model__dropout=0.5, train__max_epochs=4, train__seed=1),
    ]
    rows = train_stacked([Run("t", f"v{i}", i, c) for i, c in enumerate(cfgs)], [tmp_path / f"s{i}" for i in range(2)], 1)
    assert rows[1]["epochs"] == 4 and rows[1]["stop_reason"] == "max_epochs"
    assert rows[0]["stop_reason"] in ("early_stop", "max_epochs") and rows[0]["best_epoch"] <= rows[0]["epochs"]
    metrics = json.loads((tmp_path / "s0" / "metrics.json").read_text())
    assert metrics["restored_best"] is True and metrics["stacked_with"] == 2
    # best.pt loads into the single path's model: evaluate works on a stacked run
    from trainwell.inference import evaluate_run

    assert evaluate_run(tmp_path / "s0")["test_mae"] == pytest.approx(metrics["test_mae"], rel=1e-4)


def test_non_finite_member_fails_alone(tmp_path):
    cfgs = [cfg(optim__name="sgd", optim__lr=1e10, train__seed=0), cfg(optim__name="sgd", optim__lr=0.01, train__seed=1)]
    rows = train_stacked([Run("t", f"v{i}", i, c) for i, c in enumerate(cfgs)], [tmp_path / f"s{i}" for i in range(2)], 1)
    assert rows[0]["status"] == "failed" and "non-finite" in rows[0]["error"]
    assert rows[1]["status"] == "ok" and rows[1]["epochs"] == 3


def test_eligibility():
    assert eligible(cfg())
    assert not eligible(cfg(model__norm="layer"))
    assert not eligible(cfg(train__compile=True))
    assert eligible(cfg(model__kind="mlp", data__name="csv", data__path="x.csv", data__target="y"))  # csv MLPs stack too


def test_group_jobs_give_every_worker_work(tmp_path):
    runs = [Run("t", "v", s, cfg(train__seed=s)) for s in range(6)]
    jobs = group_jobs([(r, tmp_path / str(i)) for i, r in enumerate(runs)], workers=2)
    assert len(jobs) >= 2 and sorted(r.seed for j in jobs for r in j.runs) == list(range(6))
    other = Run("t", "w", 0, cfg(model__hidden=[8]))
    jobs = group_jobs([(runs[0], tmp_path / "a"), (other, tmp_path / "b")], workers=1)
    assert len(jobs) == 2  # different shapes never share a stack


def test_stack_shrinks_when_most_members_stop(tmp_path):
    # members stop after 1, 1, 2 and 6 epochs; the last trains on alone in a smaller stack, unchanged
    cfgs = [cfg(train__max_epochs=m, train__seed=i, optim__lr=lr) for i, (m, lr) in enumerate([(1, 1e-3), (1, 2e-3), (2, 3e-3), (6, 4e-3)])]
    rows = train_stacked([Run("t", f"v{i}", i, c) for i, c in enumerate(cfgs)], [tmp_path / f"s{i}" for i in range(4)], 1)
    assert [r["epochs"] for r in rows] == [1, 1, 2, 6]
    single = train(cfgs[3], out=tmp_path / "single", quiet=True)
    stacked = json.loads((tmp_path / "s3" / "history.json").read_text())
    assert [h["val_loss"] for h in stacked] == pytest.approx([h["val_loss"] for h in single.history], rel=2e-4)


def test_weight_average_and_batchnorm_recalibration_match_single_runs(tmp_path):
    base = {"model__norm": "batch", "optim__name": "sgd", "optim__lr": 0.01, "optim__weight_decay": 0.0, "train__max_epochs": 4}
    cfgs = [cfg(**base, train__seed=0, train__ema_decay=0.9), cfg(**base, train__seed=1), cfg(**{**base, "train__max_epochs": 2}, train__seed=2, train__ema_decay=0.99)]
    assert all(c.train.bn_recalibration_samples > 0 for c in cfgs) and all(eligible(c) for c in cfgs)
    rows = train_stacked([Run("t", f"v{i}", i, c) for i, c in enumerate(cfgs)], [tmp_path / f"s{i}" for i in range(3)], 1)
    for i, c in enumerate(cfgs):
        single = train(c, out=tmp_path / f"single{i}", quiet=True)
        stacked = json.loads((tmp_path / f"s{i}" / "history.json").read_text())
        assert [h["val_loss"] for h in stacked] == pytest.approx([h["val_loss"] for h in single.history], rel=1e-4)
        assert rows[i]["test_mae"] == pytest.approx(single.metrics["test_mae"], rel=1e-4)


def test_classification_with_label_smoothing_matches_single_runs(tmp_path):
    import numpy as np

    rs = np.random.RandomState(0)
    x = rs.normal(size=(300, 3))
    label = np.array(["a", "b", "c"])[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)]
    path = tmp_path / "d.csv"
    path.write_text("f1,f2,f3,label\n" + "\n".join(f"{a},{b},{c},{d}" for (a, b, c), d in zip(x, label)))
    data = {"data__name": "csv", "data__path": str(path), "data__target": "label", "train__monitor": "val_accuracy"}
    cfgs = [cfg(**data, train__seed=0), cfg(**data, train__seed=1, train__label_smoothing=0.1)]
    assert all(eligible(c) for c in cfgs) and group_key(cfgs[0]) == group_key(cfgs[1])
    rows = train_stacked([Run("t", f"v{i}", i, c) for i, c in enumerate(cfgs)], [tmp_path / f"s{i}" for i in range(2)], 1)
    for i, c in enumerate(cfgs):
        single = train(c, out=tmp_path / f"single{i}", quiet=True)
        stacked = json.loads((tmp_path / f"s{i}" / "history.json").read_text())
        assert [h["val_loss"] for h in stacked] == pytest.approx([h["val_loss"] for h in single.history], rel=1e-4)
        assert rows[i]["test_accuracy"] == pytest.approx(single.metrics["test_accuracy"])
