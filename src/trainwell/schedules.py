"""Learning-rate schedules: pure functions of the step or epoch count, plus a stepper that knows
its cadence so the training loop never chooses when to step.

Cadence (the classic mistakes made impossible):
  onecycle → after every optimizer step (per batch)
  step, cosine → once per epoch, after the epoch's last optimizer step
  plateau → once per epoch, with the monitored validation metric
The closed forms match torch.optim.lr_scheduler (tested side by side); the only state is a
pair of counters and, for plateau, its best value and bad-epoch count, all plain numbers.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .registry import Registry
from .sections import ScheduleConfig

# ---- pure functions -------------------------------------------------------------------------


def step_lr(base_lr: float, epochs_done: int, step_size: int, gamma: float) -> float:
    """×gamma every `step_size` completed epochs."""
    return base_lr * gamma ** (epochs_done // step_size)


def cosine_lr(base_lr: float, epochs_done: int, t_max: int, eta_min: float) -> float:
    """Half a cosine from base_lr to eta_min over t_max epochs, then held at eta_min."""
    t = min(epochs_done, t_max)
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2


def onecycle_lr(
    step: int, total_steps: int, max_lr: float, warmup_fraction: float, div_factor: float, final_div_factor: float
) -> float:
    """Cosine warm-up from max_lr/div_factor to max_lr, then cosine anneal to start/final_div_factor."""
    start = max_lr / div_factor
    final = start / final_div_factor
    warm_end = float(warmup_fraction * total_steps) - 1
    last = total_steps - 1

    def anneal(a: float, b: float, pct: float) -> float:
        return b + (a - b) / 2 * (math.cos(math.pi * pct) + 1)

    step = min(step, last)
    if step <= warm_end:
        return anneal(start, max_lr, step / warm_end if warm_end > 0 else 1.0)
    return anneal(max_lr, final, (step - warm_end) / (last - warm_end))


def plateau_update(state: dict[str, Any], metric: float, mode: str, cfg: ScheduleConfig) -> dict[str, Any]:
    """One epoch of reduce-on-plateau: returns the new state {lr, best, bad_epochs}."""
    best, lr, bad = state["best"], state["lr"], state["bad_epochs"]
    # relative threshold, exactly as torch's ReduceLROnPlateau(threshold_mode="rel")
    if best is None:
        better = True
    elif mode == "min":
        better = metric < best * (1 - cfg.threshold)
    else:
        better = metric > best * (1 + cfg.threshold)
    if better:
        return {"lr": lr, "best": metric, "bad_epochs": 0}
    bad += 1
    if bad > cfg.patience:
        new_lr = max(lr * cfg.factor, cfg.min_lr)
        return {"lr": new_lr if lr - new_lr > 1e-8 else lr, "best": best, "bad_epochs": 0}
    return {"lr": lr, "best": best, "bad_epochs": bad}


# ---- steppers ------------------------------------------------------------------------------


class Schedule:
    """The learning rate `lr` over training; `cadence` says which hook moves it. A hook given an
    optimizer also sets it there (trainwell's loop reads `lr` itself and passes none)."""

    cadence = "none"

    def __init__(self, cfg: ScheduleConfig, base_lr: float, steps_per_epoch: int, max_epochs: int, mode: str) -> None:
        self.cfg, self.base_lr, self.mode = cfg, base_lr, mode
        self.steps_per_epoch, self.max_epochs = steps_per_epoch, max_epochs
        self.steps_done = 0  # optimizer steps taken
        self.epochs_done = 0  # epochs completed
        self.lr = self.current()

    def current(self) -> float:
        return self.base_lr

    def apply(self, optimizer: torch.optim.Optimizer) -> None:
        for group in optimizer.param_groups:
            group["lr"] = self.lr

    def after_batch(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Call right after optimizer.step()."""
        self.steps_done += 1
        if self.cadence == "batch":
            self.lr = self.current()
            if optimizer is not None:
                self.apply(optimizer)

    def after_epoch(self, optimizer: torch.optim.Optimizer | None, metric: float) -> None:
        """Call once per epoch, after validation, with the monitored metric."""
        self.epochs_done += 1
        if self.cadence in ("epoch", "metric"):
            self.observe(metric)
            self.lr = self.current()
            if optimizer is not None:
                self.apply(optimizer)

    def observe(self, metric: float) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"steps_done": self.steps_done, "epochs_done": self.epochs_done, "lr": self.lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps_done, self.epochs_done, self.lr = (
            int(state["steps_done"]),
            int(state["epochs_done"]),
            float(state["lr"]),
        )


SCHEDULES: Registry[type[Schedule]] = Registry("schedule")
SCHEDULES.register("none")(Schedule)


@SCHEDULES.register("step")
class StepSchedule(Schedule):
    cadence = "epoch"

    def current(self) -> float:
        return step_lr(self.base_lr, self.epochs_done, self.cfg.step_size, self.cfg.gamma)


@SCHEDULES.register("cosine")
class CosineSchedule(Schedule):
    cadence = "epoch"

    def current(self) -> float:
        return cosine_lr(self.base_lr, self.epochs_done, self.cfg.t_max or self.max_epochs, self.cfg.eta_min)


@SCHEDULES.register("onecycle")
class OneCycleSchedule(Schedule):
    cadence = "batch"

    def current(self) -> float:
        c = self.cfg
        total = self.steps_per_epoch * self.max_epochs
        return onecycle_lr(
            self.steps_done, total, c.max_lr or self.base_lr, c.warmup_fraction, c.div_factor, c.final_div_factor
        )


@SCHEDULES.register("plateau")
class PlateauSchedule(Schedule):
    cadence = "metric"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.best: float | None = None
        self.bad_epochs = 0
        self.plateau_lr: float | None = None
        super().__init__(*args, **kwargs)

    def current(self) -> float:
        return self.base_lr if self.plateau_lr is None else self.plateau_lr

    def observe(self, metric: float) -> None:
        state = plateau_update(
            {"lr": self.current(), "best": self.best, "bad_epochs": self.bad_epochs}, metric, self.mode, self.cfg
        )
        self.plateau_lr, self.best, self.bad_epochs = state["lr"], state["best"], state["bad_epochs"]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "best": self.best, "bad_epochs": self.bad_epochs, "plateau_lr": self.plateau_lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.best, self.bad_epochs, self.plateau_lr = state["best"], int(state["bad_epochs"]), state["plateau_lr"]


def build_schedule(cfg: ScheduleConfig, base_lr: float, steps_per_epoch: int, max_epochs: int, mode: str) -> Schedule:
    return SCHEDULES.get(cfg.name)(cfg, base_lr, steps_per_epoch, max_epochs, mode)
