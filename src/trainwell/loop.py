"""The training loop (`fit`, and `evaluate_epoch` at each epoch end), read top to bottom, for K members trained
together.

A single run is K = 1; a compare stack is K runs of one member each; an ensemble is one run
of K members. Every ingredient below exists once and acts on all members at once: batches
gathered by index from each member's own shuffle order, forward/backward (stack.py, fastmlp.py), the
pre-clip gradient norm and clipping, the optimizer update (optim.py), the schedule at its
cadence (schedules.py), the weight average, BatchNorm re-estimation, validation metrics
(metrics.py), the history row and early stopping (early_stopping.py).

Under torchrun (distributed.py, `Trainer.parallel`) each process trains on its shard of every
batch and one all_reduce averages the flat gradient right after backward; nothing else changes.

`fit` mutates a LoopState that holds everything a resume needs; files are written by the
`book` (runbook.py) at fixed points. Nothing here raises to stop: a member ends by setting
its stop_reason, the loop ends when no member trains or an interrupt was asked for.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch

from . import metrics as M
from .config import RunConfig
from .data import DataBundle
from .distributed import DataParallel
from .early_stopping import EarlyStopping
from .losses import LossFn
from .optim import FlatOptimizer, LossScale
from .outputs import model_scores
from .recalibration import recalibrate_batchnorm
from .scaling import steps_per_pass
from .schedules import Schedule
from .stack import ParamStack

# why a member ended: the one vocabulary (stop_reasons.py, torch-free); INTERRUPTED is re-exported for the CLI
from .stop_reasons import EARLY_STOP, INTERRUPTED, MAX_EPOCHS, NOT_FINITE  # noqa: F401

Emit = Callable[..., None]  # emit(event_name, **payload)


@dataclass
class Member:
    """One network of the stack and everything it owns."""

    cfg: RunConfig
    run: int  # index of the run (run directory) it belongs to
    schedule: Schedule
    generators: dict[str, torch.Generator]  # "shuffle", "dropout", "augment": its own streams
    stopper: EarlyStopping
    history: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None
    stop_detail: str = ""
    seconds: float = 0.0  # its share of the training time
    best: dict[str, torch.Tensor] | None = None  # evaluated weights at the best epoch (stack.ParamStack.pack)
    row: int | None = 0  # its row in the stack while it trains (None once removed)

    @property
    def training(self) -> bool:
        return self.stop_reason is None

    @property
    def lr(self) -> float:
        """The learning rate of its next optimizer step, as its schedule set it."""
        return self.schedule.lr


@dataclass
class LoopState:
    """An "epoch" is a validation round: a whole pass, or 1/k of one (train.val_every)."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed within the current epoch
    offset: int = 0  # steps of the current pass taken in earlier epochs (0 unless validated within a pass)
    perm: torch.Tensor | None = None  # (rows, n) this pass's sample order per stack row (None between passes)
    step_loss: torch.Tensor | None = None  # (steps, rows) summed loss per step
    step_norm: torch.Tensor | None = None  # (steps, rows) pre-clip gradient norm per step
    epoch_seconds: float = 0.0  # seconds already spent in the current epoch (before a resume)
    interrupted: bool = False


class Book(Protocol):
    """What the loop tells the run directories (runbook.py writes the files)."""

    def improved(self, member: Member) -> None: ...
    def checkpoint(self, t: "Trainer", s: LoopState) -> None: ...
    def epoch_end(self, t: "Trainer", s: LoopState) -> None: ...
    def step(self, t: "Trainer", s: LoopState) -> None: ...


@dataclass
class Trainer:
    members: list[Member]
    stack: ParamStack
    optimizer: FlatOptimizer
    data: DataBundle
    loss_fn: LossFn
    device: torch.device
    autocast: Callable[[], contextlib.AbstractContextManager]
    book: Book
    batch_size: int
    drop_last: bool
    stop_requested: Callable[[], bool] = lambda: False  # set by SIGINT/SIGTERM handlers
    parallel: DataParallel | None = None  # one run over the processes of a torchrun group (distributed.py)
    validations_per_pass: int = 1  # > 1 on big tables: an epoch is 1/k of a pass (scaling.py)

    @property
    def steps_per_pass(self) -> int:
        return steps_per_pass(len(self.data.x_train), self.batch_size, self.drop_last)

    @property
    def steps_per_epoch(self) -> int:
        """Steps between validations (the last epoch of a pass may be shorter)."""
        return math.ceil(self.steps_per_pass / self.validations_per_pass)

    def epoch_steps(self, s: LoopState) -> int:
        return min(self.steps_per_epoch, self.steps_per_pass - s.offset)

    def rows_seen(self, s: LoopState) -> int:
        """Training rows of the current epoch so far."""
        end = self.steps_per_pass * self.batch_size if self.drop_last else len(self.data.x_train)
        return min((s.offset + s.step) * self.batch_size, end) - s.offset * self.batch_size

    def rows(self) -> list[Member]:
        """Members in stack-row order."""
        return sorted((m for m in self.members if m.row is not None), key=lambda m: m.row)


def fit(t: Trainer, s: LoopState) -> LoopState:
    data, B = t.data, t.batch_size
    t.stack.shared_gradient = t.parallel is not None  # the all_reduce writes rows this process did not
    while any(m.training for m in t.members) and not s.interrupted:
        started = time.perf_counter()
        rows = t.rows()
        # -- this pass's order, per member from its own generator (kept when resuming mid-pass)
        if s.perm is None:
            s.perm = torch.stack(
                [torch.randperm(len(data.x_train), generator=m.generators["shuffle"]) for m in rows]
            ).to(t.device)
        steps = t.epoch_steps(s)
        if s.step == 0:
            s.step_loss = torch.zeros(steps, len(rows), device=t.device)
            s.step_norm = torch.zeros(steps, len(rows), device=t.device)
        while s.step < steps and any(m.training for m in rows):
            # -- one optimizer step for every member, each on its own batch gathered by index
            at = s.offset + s.step
            idx = s.perm[:, at * B : (at + 1) * B]
            mine = t.parallel.shard(idx) if t.parallel else idx  # under torchrun: this process's part of the batch
            x, y = data.inputs(gather(data.x_train, mine)), gather(data.y_train, mine)
            if data.augment is not None:
                augment = streams(t, rows, "augment")
                x = torch.stack([data.augment(x[m.row], augment[m.row]) for m in rows])
            scaler = t.optimizer.loss_scale  # fp16 only
            with t.autocast():
                losses = t.stack.train_step(
                    x, y, t.loss_fn, streams(t, rows, "dropout"), scale=scaler.scale if scaler else None
                )
            if t.parallel:  # one all_reduce: every process now holds the global batch's gradient and loss
                losses = t.parallel.average(t.stack.grad, losses, share=mine.shape[1] / idx.shape[1])
            norm = update(t, rows, scaler)
            s.step_loss[s.step], s.step_norm[s.step] = losses.float() * idx.shape[1], norm
            s.step += 1
            # -- a member whose loss is not finite stops alone; interrupts and mid-epoch checkpoints
            stop_non_finite(t, s, rows, losses)
            if t.stop_requested():
                s.interrupted, s.epoch_seconds = True, s.epoch_seconds + time.perf_counter() - started
                t.book.checkpoint(t, s)
                return s
            t.book.step(t, s)  # live progress
            if s.step < steps:
                t.book.checkpoint(t, s)  # writes only where checkpoint_every_steps asks
        s.epoch += 1
        if any(m.training for m in rows):
            evaluate_epoch(t, s, rows, started)
        s.offset, s.step, s.epoch_seconds = s.offset + s.step, 0, 0.0
        if s.offset >= t.steps_per_pass:
            s.perm, s.offset = None, 0
        t.book.epoch_end(t, s)  # best.pt, last.pt, finished runs
        picked = shrink(t)
        if picked is not None and s.perm is not None:  # mid-pass: the order of the members that train on
            s.perm = s.perm[picked]
    return s


def gather(rows: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """rows[idx] for a (K, B) index, bit for bit: index_select on the flattened index takes about a
    third of advanced indexing's time (5 members x 512 rows x 40 floats: 0.05 ms against 0.16 ms)."""
    return rows.index_select(0, idx.flatten()).view(*idx.shape, *rows.shape[1:])


def update(t: Trainer, rows: list[Member], scaler: LossScale | None) -> torch.Tensor:
    """Clip, then one optimizer step for every training member (an fp16 overflow skips a
    member's step and halves its scale), the per-batch schedules and the weight average;
    returns the pre-clip gradient norms."""
    norm = clip_gradients(t.stack.grad, [m.cfg.train.clip_norm for m in rows], scaler)
    training = [m for m in rows if m.training]
    if scaler is not None:
        overflow = norm.isnan().tolist()
        scaler.update([m.row for m in training], overflow)
        training = [m for m in training if not overflow[m.row]]
    t.optimizer.step([m.row for m in training], [m.lr for m in training])
    for m in training:
        m.schedule.after_batch()  # moves the lr only for per-batch schedules
    update_average(t, rows)
    return norm


def evaluate_epoch(t: Trainer, s: LoopState, rows: list[Member], started: float) -> None:
    """Validate (eval mode, no autograd) with BatchNorm statistics as the network is evaluated,
    then each training member's history row, schedule step and early stopping."""
    data = t.data
    train_cfg = rows[0].cfg.train  # recalibration and evaluation batch are shared by a stack (planning.group_key)
    average = t.stack.has_average
    if t.parallel:  # every process evaluates the same weights and BatchNorm statistics
        t.parallel.same_statistics(t.stack)
    recalibrate_batchnorm(
        t.stack,
        data.x_train,
        data.inputs,
        train_cfg.bn_recalibration_samples,
        train_cfg.eval_batch_size,
        t.autocast,
        average,
    )
    val = validation(t, t.stack.outputs(data.x_val, train_cfg.eval_batch_size, t.autocast, average, data.inputs))
    seconds = (s.epoch_seconds + time.perf_counter() - started) / max(1, sum(m.training for m in rows))
    for m in rows:
        if m.training:
            record_epoch(t, s, m, val, seconds)


def shrink(t: Trainer) -> list[int] | None:
    """When most members have stopped, the rest train on as a smaller stack (unchanged numbers);
    the stack rows kept, or None."""
    rows = t.rows()
    keep = [m for m in rows if m.training]
    if not keep or len(keep) > len(rows) // 2:
        return None
    picked = [m.row for m in keep]
    t.stack = t.stack.subset(picked)
    t.optimizer = t.optimizer.subset(picked, t.stack.flat, t.stack.grad)
    t.loss_fn = t.loss_fn.subset(picked)
    for m in rows:
        m.row = None
    for row, m in enumerate(keep):
        m.row = row
    return picked


def streams(t: Trainer, rows: list[Member], kind: str) -> list[torch.Generator]:
    """Each member's generator of that kind; under torchrun, this process's stream for its shard."""
    own = [m.generators[kind] for m in rows]
    return t.parallel.streams(own, seed_global=kind == "dropout" and t.stack.engine == "module") if t.parallel else own


def clip_gradients(grad: torch.Tensor, clip_norms: list[float | None], scaler: LossScale | None = None) -> torch.Tensor:
    """Pre-clip global gradient norm per member (K,), then clipping by it where asked: between
    backward and the update, or it protects nothing. Coefficient as torch's clip_grad_norm_.
    With fp16 loss scaling the gradient holds scale × the true one: the norm is unscaled here
    (NaN where it overflowed) and the fused update divides by scale / coefficient as it reads."""
    norm = grad.norm(dim=1)
    if scaler is not None:
        norm = torch.where(torch.isfinite(norm), norm / scaler.scale, torch.nan)
        limit = small_tensor(tuple(c if c is not None else math.inf for c in clip_norms), grad.device)
        coef = (limit / (norm.nan_to_num(0.0) + 1e-6)).clamp_(max=1.0)
        scaler.divisor.copy_(scaler.scale / coef)
        return norm
    if any(c is not None for c in clip_norms):
        # a float32 tensor for one member or many, so a member clips identically alone and in a stack
        limit = small_tensor(tuple(c if c is not None else math.inf for c in clip_norms), grad.device)
        coef = (limit / (norm + 1e-6)).clamp_(max=1.0)
        if grad.device.type != "cpu" or bool((coef < 1.0).any()):  # × 1.0 changes no bit: skip a pass over every row
            grad.mul_(coef.unsqueeze(1))
    return norm


def update_average(t: Trainer, rows: list[Member]) -> None:
    """The weight average (train.ema_decay), ramped as min(decay, (1 + n) / (10 + n)) after n
    updates so early averages are not dominated by the random initial weights; members
    without one copy their live weights (weight 1)."""
    if not t.stack.has_average:
        return
    weights = []
    for m in rows:
        n = int(m.schedule.steps_done)
        d = m.cfg.train.ema_decay or 0.0
        weights.append(1.0 - min(d, (1 + n) / (10 + n)))
    t.stack.update_average(small_tensor(tuple(weights), t.stack.flat.device).unsqueeze(1))


_SMALL: dict[tuple, torch.Tensor] = {}


def small_tensor(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """torch.tensor(values) made once while the values stay the same (the clip limits; the weight
    average's weights once its ramp ends): read only, so it can be shared."""
    key = (values, device)
    found = _SMALL.get(key)  # one lookup: stacks training in threads may clear the cache between two
    if found is None:
        _SMALL.clear() if len(_SMALL) > 16 else None
        found = _SMALL[key] = torch.tensor(values, device=device)
    return found


def stop_non_finite(t: Trainer, s: LoopState, rows: list[Member], losses: torch.Tensor) -> None:
    if bool(torch.isfinite(losses).all()):  # the usual case in two ops
        return
    bad = ~torch.isfinite(losses)
    for m in rows:
        if m.training and bool(bad[m.row]):
            m.stop_reason, m.stop_detail = NOT_FINITE, f"loss became non-finite at epoch {s.epoch + 1}, step {s.step}"
            with torch.no_grad():  # keep the stack finite: the member is zeroed and no longer updated
                t.stack.flat[m.row].zero_()


def validation(t: Trainer, out: torch.Tensor) -> dict[str, list[float]]:
    """Per row: the loss (without label smoothing, losses.py) and every metric of the task on the
    validation split."""
    y = t.data.y_val
    with torch.no_grad():
        losses = t.loss_fn.for_validation()(out, y.unsqueeze(0).expand(out.shape[0], *y.shape))
    return {"loss": losses.tolist(), **M.compute(t.data.task, model_scores(t.data.task, out), y, t.data.target_scale)}


def history_row(
    m: Member,
    epoch: int,
    val: dict[str, list[float]],
    lr: float,
    losses: torch.Tensor,
    norms: torch.Tensor,
    n_seen: int,
    seconds: float,
) -> dict[str, Any]:
    """One epoch of one member: a flat dict (history.csv's columns)."""
    # a contiguous copy of the member's column: a strided sum adds in another order, and the
    # member's numbers would then depend on how many partners share its stack
    step_losses, step_norms = losses[:, m.row].contiguous(), norms[:, m.row].contiguous()
    clip = m.cfg.train.clip_norm
    return {
        "epoch": epoch,
        "train_loss": step_losses.sum().item() / n_seen,
        "val_loss": val["loss"][m.row],
        **{f"val_{k}": v[m.row] for k, v in val.items() if k != "loss"},
        "lr": lr,
        "grad_norm_mean": step_norms.nanmean().item(),  # NaN: a step skipped for fp16 overflow
        "grad_norm_max": step_norms.nan_to_num(0.0).max().item(),
        "clipped_fraction": (step_norms > clip).float().mean().item() if clip else 0.0,
        "seconds": seconds,
    }


def record_epoch(t: Trainer, s: LoopState, m: Member, val: dict[str, list[float]], seconds: float) -> None:
    """The member's history row, its schedule's epoch step and early stopping."""
    cfg = m.cfg.train
    lr = m.lr  # the lr this epoch trained with (per-batch schedules: the next step's)
    monitored = val[cfg.monitor.removeprefix("val_")][m.row]
    m.schedule.after_epoch(None, monitored)  # epoch and plateau schedules move here
    row = history_row(m, s.epoch, val, lr, s.step_loss, s.step_norm, t.rows_seen(s), seconds)
    if t.optimizer.loss_scale is not None:  # fp16: steps skipped for overflow in this epoch
        row["skipped_steps"] = t.optimizer.loss_scale.skipped[m.row] - sum(h["skipped_steps"] for h in m.history)
    m.history.append(row)
    m.seconds += seconds
    if m.stopper.update(s.epoch, monitored):
        m.best = t.stack.pack(m.row, average=True)
        t.book.improved(m)
    if m.stopper.should_stop:  # `patience` epochs in a row without improvement
        m.stop_reason = EARLY_STOP
    elif s.epoch >= cfg.max_epochs:
        m.stop_reason = MAX_EPOCHS
    elif cfg.max_steps is not None and m.schedule.steps_done >= cfg.max_steps:
        m.stop_reason, m.stop_detail = MAX_EPOCHS, f"the budget of {cfg.max_steps:,} optimizer steps is spent"
