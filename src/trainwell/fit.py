"""The training loop: one function, read top to bottom, events at fixed points.

`fit` mutates a LoopState that holds everything a resume needs (epoch, step, this epoch's
batch order and running sums, history, early-stopping counters); `Trainer` holds the fixed
parts of a run. Nothing here raises to stop: a run ends by setting `state.stop_reason`.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .checkpoint import BEST, LAST, save_checkpoint
from .config import RunConfig
from .data import DataBundle
from .averaging import WeightAverage
from .recalibration import recalibrate_batchnorm
from .schedules import Schedule
from .seeding import rng_snapshot

Emit = Callable[..., None]  # emit(event_name, **payload)

# why a run ended
EARLY_STOP, MAX_EPOCHS, NOT_FINITE, INTERRUPTED = "early_stop", "max_epochs", "not_finite", "interrupted"


@dataclass
class LoopState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed within the current epoch
    perm: torch.Tensor | None = None  # the current epoch's sample order (None between epochs)
    step_loss: torch.Tensor | None = None  # per-step summed loss of the current epoch
    step_norm: torch.Tensor | None = None  # per-step pre-clip gradient norm of the current epoch
    epoch_seconds: float = 0.0  # seconds already spent in the current epoch (before a resume)
    history: list[dict[str, Any]] = field(default_factory=list)
    best_value: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0  # epochs since the last improvement
    stop_reason: str | None = None
    stop_detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LoopState":
        return cls(**d)


@dataclass
class Trainer:
    cfg: RunConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    data: DataBundle
    loss_fn: nn.Module
    device: torch.device
    generators: dict[str, torch.Generator]  # "shuffle", "augment": owned by the run
    run_dir: Path
    drop_last: bool
    mode: str  # "min" or "max" for the monitored metric
    autocast: Callable[[], contextlib.AbstractContextManager]
    emit: Emit
    stop_requested: Callable[[], bool] = lambda: False  # set by SIGINT/SIGTERM handlers
    spec: dict[str, Any] = field(default_factory=dict)  # preprocessing, saved with the weights
    average: WeightAverage | None = None  # moving average of the weights (train.ema_decay)

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated, saved as best and tested: the average when there is one."""
        return self.average.module if self.average is not None else self.model

    @property
    def steps_per_epoch(self) -> int:
        n, b = len(self.data.x_train), self.cfg.train.batch_size
        return n // b if self.drop_last else math.ceil(n / b)


def fit(t: Trainer, s: LoopState) -> LoopState:
    cfg, model, data = t.cfg.train, t.model, t.data
    n_train, steps = len(data.x_train), t.steps_per_epoch
    check_every = 1 if t.device.type == "cpu" else 50  # finiteness checks sync the GPU: batch them
    params = [p for p in model.parameters() if p.requires_grad]
    while s.epoch < cfg.max_epochs and s.stop_reason is None:
        started = time.perf_counter()
        # -- this epoch's order: drawn from the run's generator unless resuming mid-epoch
        if s.perm is None:
            s.perm = torch.randperm(n_train, generator=t.generators["shuffle"]).to(t.device)
            s.step_loss, s.step_norm = torch.zeros(steps, device=t.device), torch.zeros(steps, device=t.device)
        model.train()
        checked = s.step
        while s.step < steps:
            # -- one optimizer step on a batch gathered by index
            idx = s.perm[s.step * cfg.batch_size : (s.step + 1) * cfg.batch_size]
            x, y = data.inputs(data.x_train[idx]), data.y_train[idx]
            if data.augment is not None:
                x = data.augment(x, t.generators["augment"])
            with t.autocast():
                loss = t.loss_fn(model(x), y)
            t.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grads = [p.grad for p in params if p.grad is not None]
            norm = torch.nn.utils.get_total_norm(grads)  # pre-clip global norm, a free diagnostic
            if cfg.clip_norm is not None:  # between backward and step, or it protects nothing
                torch.nn.utils.clip_grads_with_norm_(params, cfg.clip_norm, norm)
            t.optimizer.step()
            t.schedule.after_batch(t.optimizer)  # moves the lr only for per-batch schedules
            if t.average is not None:
                t.average.update(model)
            s.step_loss[s.step], s.step_norm[s.step] = loss.detach().float() * len(idx), norm
            s.step += 1
            # -- finiteness, interrupt and mid-epoch checkpoint at fixed points
            save_now = cfg.checkpoint_every_steps and t.schedule.steps_done % cfg.checkpoint_every_steps == 0
            if s.step - checked >= check_every or s.step == steps or save_now or t.stop_requested():
                bad = (~torch.isfinite(s.step_loss[checked : s.step])).nonzero()
                if len(bad):
                    s.stop_reason = NOT_FINITE
                    s.stop_detail = f"loss became non-finite at epoch {s.epoch + 1}, step {checked + int(bad[0]) + 1}"
                    break
                checked = s.step
                if t.stop_requested():
                    s.stop_reason, s.epoch_seconds = INTERRUPTED, s.epoch_seconds + time.perf_counter() - started
                    save_last(t, s)
                    break
                if save_now and s.step < steps:
                    save_last(t, s, extra_seconds=time.perf_counter() - started)
                    t.emit("checkpoint", epoch=s.epoch, step=s.step, lr=t.optimizer.param_groups[0]["lr"])
        if s.stop_reason is not None:
            break
        # -- validate (eval mode, no autograd) and let the schedule react
        lr = t.optimizer.param_groups[0]["lr"]  # the lr this epoch trained with (per-batch: the next step's)
        # BatchNorm statistics as the network is evaluated: with dropout off
        recalibrate_batchnorm(t.eval_model, data, cfg.bn_recalibration_samples, cfg.eval_batch_size, t.autocast)
        val = evaluate(t, data.x_val, data.y_val)
        monitored = val[cfg.monitor.removeprefix("val_")]
        t.schedule.after_epoch(t.optimizer, monitored)  # epoch/plateau schedules move here
        # -- record the epoch
        s.epoch += 1
        n_seen = steps * cfg.batch_size if t.drop_last else n_train
        clipped = (s.step_norm > cfg.clip_norm).float().mean().item() if cfg.clip_norm else 0.0
        row = {
            "epoch": s.epoch,
            "train_loss": s.step_loss.sum().item() / n_seen,
            "val_loss": val["loss"],
            **{f"val_{k}": v for k, v in val.items() if k != "loss"},
            "lr": lr,
            "grad_norm_mean": s.step_norm.mean().item(),
            "grad_norm_max": s.step_norm.max().item(),
            "clipped_fraction": clipped,
            "seconds": s.epoch_seconds + time.perf_counter() - started,
        }
        s.history.append(row)
        s.perm, s.step, s.epoch_seconds = None, 0, 0.0
        # -- best weights to disk at once; early stopping by an explicit counter
        if improved(monitored, s.best_value, t.mode, cfg.min_delta):
            s.best_value, s.best_epoch, s.bad_epochs = monitored, s.epoch, 0
            save_best(t, s)
            t.emit("best", epoch=s.epoch, value=monitored)
        else:
            s.bad_epochs += 1
        t.emit("epoch_end", row=row, state=s)
        if cfg.early_stopping and s.bad_epochs >= cfg.patience:  # `patience` epochs in a row without improvement
            s.stop_reason = EARLY_STOP
        elif s.epoch >= cfg.max_epochs:
            s.stop_reason = MAX_EPOCHS
        save_last(t, s)
        t.emit("checkpoint", epoch=s.epoch, step=0, lr=t.optimizer.param_groups[0]["lr"])
    return s


def improved(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if best is None:
        return math.isfinite(value)
    return value < best - min_delta if mode == "min" else value > best + min_delta


@torch.inference_mode()
def predict_outputs(model: nn.Module, data: DataBundle, x: torch.Tensor, batch_size: int, autocast: Callable) -> torch.Tensor:
    """Model outputs for stored inputs x, in eval mode; the model's previous mode is restored."""
    was_training = model.training
    model.eval()
    try:
        outs = []
        for i in range(0, len(x), batch_size):
            with autocast():
                outs.append(model(data.inputs(x[i : i + batch_size])).float())
        return torch.cat(outs)
    finally:
        model.train(was_training)


def evaluate(t: Trainer, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    out = predict_outputs(t.eval_model, t.data, x, t.cfg.train.eval_batch_size, t.autocast)
    return score(out, y, t.data, t.loss_fn)


def score(out: torch.Tensor, y: torch.Tensor, data: DataBundle, loss_fn: nn.Module) -> dict[str, float]:
    """Loss averaged over samples, plus MAE in the target's units or accuracy."""
    with torch.inference_mode():
        loss = loss_fn(out, y).item()  # loss functions use mean reduction: exact over all samples
        if data.task == "regression":
            return {"loss": loss, "mae": (out - y).abs().mean().item() * data.target_std}
        return {"loss": loss, "accuracy": (out.argmax(1) == y).float().mean().item()}


def save_best(t: Trainer, s: LoopState) -> None:
    state = {k: v.detach().cpu() for k, v in t.eval_model.state_dict().items()}
    body = {"model": state, "epoch": s.epoch, "monitor": t.cfg.train.monitor, "value": s.best_value, "spec": t.spec}
    save_checkpoint(BEST, body, t.run_dir / "best.pt")


def save_last(t: Trainer, s: LoopState, extra_seconds: float = 0.0) -> None:
    loop = s.to_dict()
    loop["epoch_seconds"] += extra_seconds
    body = {
        "config": t.cfg.to_dict(),
        "model": t.model.state_dict(),
        "optimizer": t.optimizer.state_dict(),
        "schedule": t.schedule.state_dict(),
        "average": t.average.state_dict() if t.average is not None else None,
        "loop": loop,
        "rng": rng_snapshot(t.generators),
        "spec": t.spec,
    }
    save_checkpoint(LAST, body, t.run_dir / "last.pt")
