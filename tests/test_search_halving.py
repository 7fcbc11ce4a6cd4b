"""The search's halving points come from the default run's own length, a member that stopped improving
stops, and the bagged ensemble selection with its fast greedy step."""

import json

import pytest
import torch

from conftest import tiny_config
from trainwell.config import RunConfig
from trainwell.stop_reasons import HALVED
from trainwell.tune import search
from trainwell.tune.halving import halver, rungs, stale_after
from trainwell.tune.selection import ROUNDS, bagged_caruana, caruana, loss_if_added, loss_scorer, rounded


def test_rungs_are_fractions_of_the_default_runs_epochs():
    assert rungs(18, 200) == [1, 2, 4, 9, 18]  # the default peaked early and early-stopped at 18
    assert rungs(84, 200) == [1, 5, 10, 21, 42, 84]  # epoch 1 on every table
    assert rungs(84, 50) == [1, 5, 10, 21, 42]  # none at or past max_epochs
    assert rungs(3, 200) == [1, 2, 3] and rungs(1, 200) == [1] and rungs(0, 200) == []
    assert stale_after(18) == 6 and stale_after(84) == 28 and stale_after(2) == 2


class Member:
    def __init__(self, values, bad_epochs):
        self.history = [{"val_loss": v} for v in values]
        self.stop_reason = None
        self.cfg = RunConfig.from_dict(tiny_config())
        self.stopper = type("S", (), {"mode": "min", "bad_epochs": bad_epochs})()

    @property
    def training(self):
        return self.stop_reason is None


def test_a_member_that_stopped_improving_stops_at_any_epoch():
    members = [Member([0.5, 0.6, 0.7, 0.8], bad_epochs=3), Member([0.9, 0.8, 0.7, 0.6], bad_epochs=0)]
    state = type("State", (), {"epoch": 4})()
    halver([2], stale=3)(type("T", (), {"members": members})(), state)  # epoch 4 is no rung
    assert members[0].stop_reason == HALVED and "no improvement for 3 epochs" in members[0].stop_detail
    assert members[1].training
    kept = Member([0.5, 0.6, 0.7, 0.8], bad_epochs=3)
    halver([2])(type("T", (), {"members": [kept]})(), state)  # without a limit, only its own patience
    assert kept.training


def test_a_search_halves_at_fractions_of_the_default_runs_epochs(tmp_path):
    raw = tiny_config(train={"max_epochs": 8, "patience": 3})
    result = search(raw, 5, out=tmp_path / "s", seed=1)
    default = json.loads((tmp_path / "s" / "default" / "metrics.json").read_text())
    assert default["stacked_with"] == 1  # the default trains first, alone
    assert result.summary["rungs"] == rungs(default["epochs_run"], 8)
    assert result.summary["default_seconds"] == default["wall_seconds"]


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_the_greedy_step_scores_every_addition_as_the_loss_does(task):
    g = torch.Generator().manual_seed(0)
    shape = (40, 1) if task == "regression" else (40, 3)
    outs = [torch.randn(shape, generator=g) for _ in range(5)]
    y = torch.randn(40, 1, generator=g) if task == "regression" else torch.randint(0, 3, (40,), generator=g)
    cal = None if task == "regression" else {"temperature": 1.3, "prior_shift": [0.2, 0.0, -0.5]}
    counts = {1: 2, 4: 1}
    each = loss_if_added(task, outs, y, cal)(counts)
    one = loss_scorer(task, outs, y, cal)
    assert each == pytest.approx([one({**counts, i: counts.get(i, 0) + 1}) for i in range(5)], rel=1e-5)
    assert loss_if_added(task, outs, y, cal)({}) == pytest.approx([one({i: 1}) for i in range(5)], rel=1e-5)


def test_rounding_keeps_the_pooled_shares():
    assert rounded({0: 10, 1: 5, 2: 5, 3: 0}, 4) == [0, 0, 1, 2]
    assert rounded({0: 1, 1: 1, 2: 1}, 2) == [0, 1]  # ties to the lower index
    assert len(rounded({0: 7, 1: 3, 2: 11}, 29)) == 29


def test_bagged_selection_is_repeatable_and_never_worse_than_the_start_on_all_rows():
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 2, (60,), generator=g)
    truth = torch.nn.functional.one_hot(y, 2).float() * 2 - 1
    outs = [truth + torch.randn(60, 2, generator=g) * s for s in (1.0, 1.5, 2.0, 1.2, 1.2)]
    start = [3, 4]
    first = bagged_caruana("classification", outs, y, "loss", "min", start=start)
    again = bagged_caruana("classification", outs, y, "loss", "min", start=start)
    assert first.picks == again.picks and first.score == again.score
    assert len(first.picks) <= len(start) + ROUNDS - 1  # as many as one pass may pick: no slower to predict
    alone = caruana("classification", outs, y, "loss", "min", start=start).trace[0]
    assert first.score <= alone
    assert first.score == pytest.approx(
        loss_scorer("classification", outs, y, None)({i: first.picks.count(i) for i in set(first.picks)})
    )
    worse = [outs[3] * 0 + 5 * (1 - 2 * torch.nn.functional.one_hot(y, 2).float())] * 3 + [outs[3], outs[4]]
    assert bagged_caruana("classification", worse, y, "loss", "min", start=start).picks == start  # nothing helps


def test_the_search_ensemble_temperature_may_sharpen_when_a_chosen_member_smoothed_labels():
    # members taught with label smoothing stay unsure; the saved ensemble's temperature may undo it, as train's does
    from pathlib import Path
    from types import SimpleNamespace

    from trainwell.config import load_config
    from trainwell.tune.ensemble import Candidate, calibrate

    torch.manual_seed(0)
    true_logits = torch.randn(4000, 3) * 1.5
    y = torch.distributions.Categorical(logits=true_logits).sample()
    data = SimpleNamespace(task="classification", y_val=y, y_train=y, n_outputs=3)
    base = load_config(preset="tabular", overrides={"train.class_weights": "none"})
    plain = load_config(preset="tabular", overrides={"train.class_weights": "none", "train.label_smoothing": 0.0})
    unsure = [torch.log_softmax(true_logits / 2, -1)]  # half as confident as the truth
    smoothed = calibrate(base, data, unsure, [Candidate(base, Path("a"))])
    assert smoothed["temperature"] == pytest.approx(0.5, rel=0.12)
    assert calibrate(base, data, unsure, [Candidate(plain, Path("b"))])["temperature"] == 1.0
