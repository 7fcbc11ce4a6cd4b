"""Built-in experiments: each seed comparison with its own data and settings, and the ablation."""

from __future__ import annotations

import pytest

from trainwell.data import DATASETS
from trainwell.experiments import preset
from trainwell.experiments.presets import DEMO, EXPERIMENTS
from trainwell.experiments.spec import expand

TABULAR = [n for n in EXPERIMENTS.names() if n != "cnn-upgrade"]


@pytest.mark.parametrize("name", TABULAR)
def test_every_tabular_preset_validates(name):
    runs = expand(preset(name))
    assert runs and all(r.config.data.name == "delivery" for r in runs)


@pytest.mark.parametrize("name", ["optimizers", "batchnorm", "dropout", "schedules"])
def test_seed_comparisons_train_fixed_epochs_and_score_the_last_weights(name):
    for run in expand(preset(name)):
        assert run.config.train.early_stopping is False and run.config.train.restore_best is False


def test_seed_settings():
    opt = {r.variant: r.config for r in expand(preset("optimizers").with_seeds(1))}
    assert (opt["sgd"].optim.lr, opt["sgd"].optim.momentum) == (0.01, 0.0) and opt["sgd-momentum"].optim.momentum == 0.9
    assert opt["adam"].optim.weight_decay == 0.0 and opt["adamw"].optim.weight_decay == 0.01
    assert (
        opt["adam"].model.hidden == [64, 32]
        and opt["adam"].model.norm == "none"
        and opt["adam"].train.max_epochs == 100
    )
    drop = {r.variant: r.config for r in expand(preset("dropout").with_seeds(1))}
    assert list(drop) == ["dropout=0", "dropout=0.1", "dropout=0.3", "dropout=0.5", "dropout=0.7"]
    c = drop["dropout=0.5"]
    assert (c.data.n, c.model.hidden, c.train.batch_size, c.train.max_epochs, c.model.dropout) == (
        1000,
        [256, 256, 128, 64],
        32,
        150,
        0.5,
    )
    sched = {r.variant: r.config for r in expand(preset("schedules").with_seeds(1))}
    assert (
        sched["plateau"].schedule.patience == 8
        and sched["onecycle"].schedule.max_lr == 0.01
        and sched["cosine"].schedule.t_max == 100
    )
    assert sched["none"].optim.lr == 0.01 and sched["none"].model.norm == "batch" and sched["none"].model.dropout == 0.2


def test_ablation_takes_one_ingredient_away_at_a_time():
    runs = {r.variant: r.config.to_dict() for r in expand(preset("ablation").with_seeds(1))}
    full = runs.pop("full recipe")
    assert full["train"]["clip_norm"] == 1.0 and full["train"]["early_stopping"] and full["optim"]["name"] == "adamw"
    assert len(runs) == 7
    for variant, cfg in runs.items():
        changed = {
            f"{s}.{k}" for s in ("model", "optim", "schedule", "train") for k in cfg[s] if cfg[s][k] != full[s][k]
        }
        expected = {"no early stopping": {"train.early_stopping", "train.restore_best"}}.get(variant)
        assert len(changed) == 1 or changed == expected, (variant, changed)


def test_demo_is_the_tabular_comparisons_and_the_ablation():
    assert DEMO == ("optimizers", "batchnorm", "dropout", "schedules", "recipe", "ablation")


@pytest.mark.skipif("digits" not in DATASETS, reason="the digits data set is not registered on this branch")
def test_cnn_upgrade_validates_on_digits():
    runs = {r.variant: r.config for r in expand(preset("cnn-upgrade").with_seeds(1))}
    assert runs["plain"].model.kind == "cnn-plain" and runs["upgraded"].schedule.name == "onecycle"


def test_cnn_upgrade_moves_to_cifar10_with_a_folder():
    exp = preset("cnn-upgrade", data_path="/data/cifar")
    assert exp.base["data"] == {"name": "cifar10", "path": "/data/cifar"}
