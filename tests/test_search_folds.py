"""The default run retrained on other validation folds (tune/folds.py): the folds hold out disjoint blocks of
the training rows and train on the rest, the saved ensemble averages every fold's copy, and the number of saved
members stays within what a run directory allows."""

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from trainwell.config import RunConfig
from trainwell.data import load_data
from trainwell.errors import ConfigError
from trainwell.inference import evaluate_run, load_run
from trainwell.stop_reasons import HALVED
from trainwell.tune import folds, search
from trainwell.tune.engine import run_stack
from trainwell.tune.ensemble import Candidate, seeds_of


def base_config(**train):
    return RunConfig.from_dict(tiny_config(train={"max_epochs": 4, "patience": 2, **train}))


def rows(x):
    return {tuple(r.tolist()) for r in x}


def test_folds_hold_out_disjoint_blocks_of_the_training_rows_and_train_on_the_rest():
    data = load_data(base_config().data)
    assert folds.refold(data, 0, 42) is data
    one, two = folds.refold(data, 1, 42), folds.refold(data, 2, 42)
    everything = rows(data.x_train) | rows(data.x_val)
    for fold in (one, two):
        assert len(fold.x_val) == len(data.x_val) and len(fold.x_train) == len(data.x_train)
        assert rows(fold.x_val) <= rows(data.x_train)  # held out of the search's training rows
        assert rows(data.x_val) <= rows(fold.x_train)  # the search's own validation rows are trained on
        assert rows(fold.x_train) | rows(fold.x_val) == everything
    assert not rows(one.x_val) & rows(two.x_val)
    assert torch.equal(folds.refold(data, 1, 42).x_val, one.x_val)  # seeded: a continued search gets the same
    assert not torch.equal(folds.refold(data, 1, 43).x_val, one.x_val)
    assert one.spec is data.spec  # the same preprocessing: members of every fold average as one run's


def test_usable_folds_stop_where_the_training_rows_run_out():
    assert folds.usable_folds(3, 2550, 450) == 3
    assert folds.usable_folds(10, 2550, 450) == 6  # 5 disjoint blocks of 450 in 2,550 rows
    assert folds.usable_folds(3, 100, 0) == 1


def test_search_saves_the_chosen_ensemble_with_the_default_of_every_fold(tmp_path):
    base = base_config()
    result = search(base, 2, out=tmp_path / "s", folds=2)
    metrics = json.loads((result.ensemble_dir / "metrics.json").read_text())
    assert metrics["folds"] == 2 and result.summary["folds"] == 2
    half = len(metrics["picks"]) // 2
    own, again = metrics["picks"][:half], metrics["picks"][half:]
    # the default's seeds are replaced by fold 1's copies; a picked configuration counts once per fold
    assert again == [f"f1/{p}" if p.startswith("default") else p for p in own]
    assert any(p.startswith("f1/default") for p in again)
    _, _, spec = load_run(result.ensemble_dir)
    assert spec["members"] == len(metrics["picks"]) == 2 * half == result.summary["saved_members"]
    assert evaluate_run(result.ensemble_dir)["test_mae"] == pytest.approx(metrics["test_mae"], rel=1e-5)
    fold_run = tmp_path / "s" / folds.FOLDS_DIR / "f1" / "default"
    # the fold's copy early-stopped on its own held-out block: its validation loss differs from the original's
    first = json.loads((fold_run / "history.json").read_text())[0]["val_loss"]
    assert first != pytest.approx(json.loads((tmp_path / "s" / "default" / "history.json").read_text())[0]["val_loss"])
    # the fold run's seconds are part of the search's cost
    assert result.summary["search_seconds"] >= folds.seconds(tmp_path / "s") > 0


def test_search_with_one_fold_saves_the_picks_alone(tmp_path):
    result = search(base_config(), 2, out=tmp_path / "s", folds=1)
    metrics = json.loads((result.ensemble_dir / "metrics.json").read_text())
    assert metrics["folds"] == 1 and not any(p.startswith("f") and "/" in p for p in metrics["picks"])
    assert not (tmp_path / "s" / folds.FOLDS_DIR).exists()


def test_many_picks_are_rounded_so_every_fold_fits_in_one_run_directory(tmp_path, monkeypatch):
    trained = []
    monkeypatch.setattr(folds, "run_stack", lambda cfgs, dirs, data, *halving: trained.append(dirs) or [])
    base = base_config(members=5)
    data = load_data(base.data)
    default = tmp_path / "default"
    picks = [Candidate(base, tmp_path / "c01")] * 14 + [Candidate(base, tmp_path / "c02")] * 6
    picks += [Candidate(base, default, k) for k in range(5)]
    members = folds.train_folds(tmp_path, picks, default, data, 3, 42)
    assert trained == [[tmp_path / "folds" / "f1" / "default"], [tmp_path / "folds" / "f2" / "default"]]
    assert len(members) <= folds.SAVED_MEMBERS and len(members) % 3 == 0
    per_fold = Counter(c.run_dir.name for c in members[: len(members) // 3])
    assert per_fold["c01"] > per_fold["c02"] > 0 and per_fold["default"] == 5  # the picks' proportions kept
    assert Counter(c.run_dir.name for c in members) == Counter({k: 3 * v for k, v in per_fold.items()})
    assert {c.run_dir.parent.name for c in members if c.run_dir.name == "default"} == {tmp_path.name, "f1", "f2"}
    # a fold trains the default's first FOLD_SEEDS seeds again; its picks of the default take them in turn
    copies = [c for c in members if c.run_dir.parent.name == "f1"]
    assert [c.member for c in copies] == [k % folds.FOLD_SEEDS for k in range(5)]
    assert {c.cfg.train.members for c in copies} == {folds.FOLD_SEEDS}


@pytest.mark.parametrize("bad", [0, 11, 2.5, True])
def test_a_bad_fold_count_is_one_line(bad, tmp_path):
    with pytest.raises(ConfigError, match="folds"):
        search(base_config(), 2, out=Path(tmp_path) / "s", folds=bad)


def test_a_table_too_wide_for_the_presets_embeddings_searches_without_them():
    from trainwell.scaling import MAX_EMBEDDED_COLUMNS
    from trainwell.tune import space

    raw = base_config().to_dict()
    auto = RunConfig.from_dict({**raw, "model": {**raw["model"], "numeric_embedding": "auto"}})

    def embedding_values(columns):
        dials = space.space_around(auto, "regression", 400, embeddable=columns)
        return next(d for d in dials if d.name == "numeric_embedding").values

    assert embedding_values(MAX_EMBEDDED_COLUMNS + 1) == ("auto",)  # one layout: the default's stack alone
    assert embedding_values(MAX_EMBEDDED_COLUMNS) == ("auto", "none")
    assert embedding_values(None) == ("auto", "periodic")  # width unknown: the rows alone decide, as before


def test_fold_copies_stop_once_they_have_not_improved_for_the_searchs_staleness_limit(tmp_path):
    # patience 40 would let them train all 40 epochs; stale=1 stops each at its first epoch without improvement
    raw = tiny_config(train={"max_epochs": 40, "patience": 40}, optim={"name": "adamw", "lr": 0.05})
    base = RunConfig.from_dict(raw)
    data = load_data(base.data)
    default_dir = tmp_path / "default"
    run_stack([base], [default_dir], data)
    picks = seeds_of(base, default_dir)
    members = folds.train_folds(tmp_path, picks, default_dir, data, 2, 42, stale=1)
    copy_dir = folds.fold_dir(tmp_path, 1, default_dir)
    metrics = json.loads((copy_dir / "metrics.json").read_text())
    assert metrics["stop_reason"] == HALVED and metrics["epochs_run"] < 40
    history = json.loads((copy_dir / "history.json").read_text())
    best = min(range(len(history)), key=lambda e: history[e]["val_loss"])
    assert len(history) == best + 2  # one epoch past its best, then stopped
    assert [c.run_dir for c in members] == [default_dir] * len(picks) + [copy_dir] * len(picks)
