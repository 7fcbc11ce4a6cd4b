"""Schedules as pure functions, compared with torch's own schedulers, and their cadence."""

import math

import pytest
import torch

from trainwell.config import ScheduleConfig
from trainwell.errors import ConfigError
from trainwell.schedules import SCHEDULES, build_schedule, cosine_lr, onecycle_lr, plateau_update, step_lr


def sgd(lr=0.1):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_step_matches_torch():
    opt = sgd()
    ref = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    for epoch in range(10):
        assert step_lr(0.1, epoch, 3, 0.5) == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()


def test_cosine_matches_torch():
    opt = sgd()
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8, eta_min=1e-4)
    for epoch in range(9):
        assert cosine_lr(0.1, epoch, 8, 1e-4) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
        opt.step()
        ref.step()
    assert cosine_lr(0.1, 20, 8, 1e-4) == pytest.approx(1e-4)  # held at eta_min after t_max


def test_onecycle_matches_torch():
    opt = sgd()
    total = 50
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=total, pct_start=0.3)
    for step in range(total):
        assert onecycle_lr(step, total, 0.01, 0.3, 25.0, 1e4) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
        opt.step()
        if step < total - 1:
            ref.step()


def test_plateau_matches_torch():
    opt = sgd()
    cfg = ScheduleConfig(name="plateau", patience=2, factor=0.5)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", patience=2, factor=0.5)
    state = {"lr": 0.1, "best": None, "bad_epochs": 0}
    for metric in [1.0, 0.9, 0.95, 0.93, 0.92, 0.91, 0.95, 0.96, 0.97, 0.5, 0.6]:
        ref.step(metric)
        state = plateau_update(state, metric, "min", cfg)
        assert state["lr"] == pytest.approx(opt.param_groups[0]["lr"])


def test_unknown_schedule_lists_choices():
    with pytest.raises(ConfigError, match="cosine, none, onecycle, plateau, step"):
        SCHEDULES.get("warmup")


@pytest.mark.parametrize(
    "name, cadence",
    [("none", "none"), ("step", "epoch"), ("cosine", "epoch"), ("plateau", "metric"), ("onecycle", "batch")],
)
def test_cadence_batch_hooks_move_only_per_batch_schedules(name, cadence):
    """A simulated epoch of 5 batches: epoch schedules hold the lr through the batches and move
    once at the epoch's end; onecycle moves after every optimizer step."""
    cfg = ScheduleConfig(name=name, step_size=1, gamma=0.5, patience=0, factor=0.5)
    opt = sgd(0.1)
    sched = build_schedule(cfg, 0.1, steps_per_epoch=5, max_epochs=4, mode="min")
    assert sched.cadence == cadence
    sched.apply(opt)
    lrs = []
    for _ in range(5):
        opt.step()
        sched.after_batch(opt)
        lrs.append(opt.param_groups[0]["lr"])
    if cadence == "batch":
        assert len(set(lrs)) == 5
    else:
        assert len(set(lrs)) == 1
    before = opt.param_groups[0]["lr"]
    sched.after_epoch(opt, metric=1.0)  # first plateau metric is the best so far: no drop
    sched.after_epoch(opt, metric=2.0)  # worse: plateau with patience 0 drops
    after = opt.param_groups[0]["lr"]
    if cadence in ("epoch", "metric"):
        assert after < before
    else:
        assert after == opt.param_groups[0]["lr"]


def test_state_round_trip_continues_exactly():
    cfg = ScheduleConfig(name="plateau", patience=1)
    a = build_schedule(cfg, 0.1, 4, 10, "min")
    opt = sgd()
    for m in [1.0, 1.1, 1.2, 0.9]:
        a.after_epoch(opt, m)
    b = build_schedule(cfg, 0.1, 4, 10, "min")
    b.load_state_dict(a.state_dict())
    for m in [1.3, 1.4]:
        a.after_epoch(opt, m)
        b.after_epoch(sgd(), m)
        assert a.lr == b.lr
    assert math.isclose(a.lr, 0.025)
