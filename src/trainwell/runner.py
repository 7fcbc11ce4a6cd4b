"""The library's entry points: train, resume, train_runs (several runs as one stack) and load_run.

`train_runs(configs, run_dirs)` builds every member of every run from the validated configs,
seeded exactly as a run alone would be, runs `fit` once for all of them, and writes each run's
directory: best.pt at each improvement, last.pt at the same points for a run alone or in a
stack, and at the end history, metrics and curves. `train` is one run; `resume` continues one
run (or, from a compare, a stack) from last.pt. The CLI only calls these.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from . import distributed, metric_names, paths, rundir
from .atomic import fsync_path
from .checkpoint import BEST, LAST, load_checkpoint, load_model_state, save_checkpoint, validate_spec
from .config import RunConfig, dump_yaml, load_config
from .data import DataBundle, load_data
from .early_stopping import EarlyStopping
from .errors import CheckpointError, ConfigError, DataError, TrainwellError
from .loop import (
    EARLY_STOP,
    INTERRUPTED,
    MAX_EPOCHS,
    NOT_FINITE,
    Emit,
    LoopState,
    Member,
    Trainer,
    fit,
    predict_outputs,
    test_metrics,
)
from .members import CustomLoss, ModuleMembers, build_members, member_losses
from .models import build_model, count_parameters, has_batchnorm
from .optim import FlatOptimizer, decay_split
from .planning import fast_path_reason
from .progress import Progress
from .resume_rules import RESUMABLE_FIELDS, apply_resume_overrides, check_same_run, load_resumable  # noqa: F401
from .schedules import build_schedule
from .seeding import make_generator, rng_restore, rng_snapshot, seed_everything, set_deterministic

SMALL_MODEL_PARAMS = 1_000_000  # below this, one CPU thread beats several (thread sync costs more than the math)
SHUFFLE, AUGMENT, DROPOUT = 0, 1, 2  # generator streams of a member (seeding.make_generator)
SYNC_SECONDS = 10.0  # last.pt is fsynced at most this often: every write survives a killed process, and a power cut loses at most this much


@dataclass
class RunResult:
    run_dir: Path
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    stop_reason: str
    message: str = ""
    config: RunConfig | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.stop_reason in (EARLY_STOP, MAX_EPOCHS)


@dataclass
class RunSlot:
    """One run directory among the runs a process trains together."""

    cfg: RunConfig
    run_dir: Path
    emit: Emit
    members: list[Member] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)
    engine: str = ""
    engine_reason: str = ""
    dirty: bool = False  # a member improved this epoch: best.pt is due
    synced: float = 0.0  # time.monotonic() of last.pt's last fsync
    best_synced: float = 0.0  # and of best.pt's (both are fsynced when the run ends)
    result: RunResult | None = None


# ---- building -------------------------------------------------------------------------------


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {name!r} is not allowed here: no CUDA device is available; use auto or cpu")
    return torch.device(name)


def resolve_mode(cfg: RunConfig) -> str:
    return cfg.train.mode if cfg.train.mode != "auto" else metric_names.mode_of(cfg.train.monitor)


def check_against_data(cfg: RunConfig, data: DataBundle) -> None:
    metric = cfg.train.monitor.removeprefix("val_")
    if metric != "loss" and metric not in metric_names.names(data.task):
        allowed = ", ".join(f"val_{m}" for m in ("loss", *metric_names.names(data.task)))
        raise ConfigError(
            f"train.monitor = {cfg.train.monitor!r} is not allowed for a {data.task} task: use one of {allowed}"
        )
    if cfg.train.class_weights == "balanced" and data.task != "classification":
        raise ConfigError(
            f"train.class_weights = {cfg.train.class_weights!r} is not allowed for a {data.task} task: use none"
        )
    if len(data.x_train) < cfg.train.batch_size:
        raise DataError(
            f"only {len(data.x_train)} training rows, fewer than one batch (train.batch_size = {cfg.train.batch_size}); "
            "give more rows or a smaller batch size"
        )
    if len(data.x_val) < 1 or len(data.x_test) < 1:
        raise DataError("the validation and test splits must each hold at least one row; give more rows")


def make_autocast(
    cfg: RunConfig, device: torch.device, images: bool
) -> Callable[[], contextlib.AbstractContextManager]:
    """bf16 autocast on CUDA for images by default; full precision elsewhere."""
    mode = cfg.train.amp
    if device.type != "cuda" or mode == "off" or (mode == "auto" and not images):
        return contextlib.nullcontext
    dtype = torch.float16 if mode == "fp16" else torch.bfloat16
    return lambda: torch.autocast(device_type="cuda", dtype=dtype)


def class_weight(cfg: RunConfig, data: DataBundle) -> torch.Tensor | None:
    """balanced (or auto, on a classification task): rows / (classes × rows of the class), from the training split."""
    if cfg.train.class_weights == "none" or data.task != "classification":
        return None
    counts = torch.bincount(data.y_train.cpu(), minlength=data.n_outputs).float()
    return len(data.y_train) / (data.n_outputs * counts.clamp(min=1))


def model_spec(cfg: RunConfig, data: DataBundle) -> dict[str, Any]:
    """Plain data saved with the weights: the preprocessing and what rebuilds the model."""
    return {
        **data.spec,
        "task": data.task,
        "input_shape": list(data.input_shape),
        "n_outputs": data.n_outputs,
        "model_kind": cfg.model.kind if cfg.model.kind != "auto" else data.default_model,
        "members": cfg.train.members,
    }


def _member(cfg: RunConfig, run: int, seed: int, steps: int, mode: str) -> Member:
    t = cfg.train
    member = Member(
        cfg=cfg,
        run=run,
        schedule=build_schedule(cfg.schedule, cfg.optim.lr, steps, t.max_epochs, mode),
        generators={
            "shuffle": make_generator(seed, SHUFFLE),
            "augment": make_generator(seed, AUGMENT),
            "dropout": make_generator(seed, DROPOUT),
        },
        stopper=EarlyStopping(t.patience, t.min_delta, mode, t.early_stopping),
    )
    member.schedule.apply(member.lr)
    return member


def build_models(
    cfg: RunConfig, data: DataBundle, seed: int, model: nn.Module | None = None
) -> tuple[nn.Module, torch.Tensor]:
    """A member's network, seeded as a run with that seed alone would be; and torch's global
    generator state right after (the member's dropout stream on the module path)."""
    seed_everything(seed)
    net = (
        model
        if model is not None
        else build_model(cfg.model, data.input_shape, data.n_outputs, data.default_model, data.spec.get("embedded"))
    )
    return net, torch.get_rng_state()


def build_trainer(
    cfgs: list[RunConfig],
    run_dirs: list[Path],
    emits: list[Emit],
    data: DataBundle | None = None,
    max_threads: int | None = None,
    model: nn.Module | None = None,
    loss_fn: Callable | None = None,
) -> tuple[Trainer, "RunBook", list[str]]:
    """Every member of every run, seeded; the runs must share one stack key (planning.group_key).
    A model, data or loss given here (trainwell.fit) replace those the config describes."""
    c0 = cfgs[0]
    if model is not None and (len(cfgs) > 1 or c0.train.members > 1):
        raise ConfigError(
            "train.members must be 1 when training a model of one's own (trainwell cannot rebuild it with other seeds)"
        )
    device = pick_device(c0.train.device)
    parallel = distributed.start(c0, device)  # None unless under torchrun
    device = parallel.device if parallel else device
    set_deterministic(c0.train.deterministic)
    data = data if data is not None else load_data(c0.data)
    for cfg in cfgs:
        check_against_data(cfg, data)
    runs = [RunSlot(cfg, d, e, spec=model_spec(cfg, data)) for cfg, d, e in zip(cfgs, run_dirs, emits)]
    if model is not None:
        runs[0].spec["model_kind"] = f"custom:{type(model).__name__}"
    built = [
        (i, build_models(cfg, data, cfg.train.seed + k, model))
        for i, cfg in enumerate(cfgs)
        for k in range(cfg.train.members)
    ]
    models = [m for _, (m, _) in built]
    n_params = count_parameters(models[0])
    # one thread for small models (faster, and their numbers then never depend on a worker's
    # thread count); larger ones use train.threads, or the share of cores this process was given
    share = max_threads or max(1, torch.get_num_threads())
    torch.set_num_threads(c0.train.threads or (1 if n_params < SMALL_MODEL_PARAMS else share))
    images = len(data.input_shape) == 3
    data.to(device)
    for m in models:
        m.to(device)
        if images and device.type == "cuda" and c0.train.channels_last:
            m.to(memory_format=torch.channels_last)
    reasons = [
        fast_path_reason(cfg, torch.cuda.is_available()) if model is None else "a model of one's own" for cfg in cfgs
    ]
    if loss_fn is not None:
        reasons = [r or "a loss of one's own" for r in reasons]
    stack = build_members(models, any(c.train.ema_decay for c in cfgs), fast=not any(reasons))
    if isinstance(stack, ModuleMembers) and stack.K > 1:
        stack.rng_states = [state for _, (_, state) in built]
    for run, reason in zip(runs, reasons):
        run.engine = stack.engine
        run.engine_reason = reason or ("" if stack.engine == "vectorised" else "the model is not trainwell's MLP")
    drop_last = (
        has_batchnorm(models[0]) and len(data.x_train) % c0.train.batch_size == 1
    )  # BatchNorm cannot normalise a batch of one
    if parallel:
        drop_last = drop_last or parallel.needs_drop_last(
            len(data.x_train), c0.train.batch_size, has_batchnorm(models[0])
        )
        parallel.same_start(stack)
    steps = (
        len(data.x_train) // c0.train.batch_size if drop_last else math.ceil(len(data.x_train) / c0.train.batch_size)
    )
    members = []
    for row, (i, _) in enumerate(built):
        cfg = cfgs[i]
        m = _member(cfg, i, cfg.train.seed + len(runs[i].members), steps, resolve_mode(cfg))
        m.row = row
        runs[i].members.append(m)
        members.append(m)
    optimizer = FlatOptimizer(stack.flat, stack.grad, stack.decay_size, [m.cfg.optim for m in members])
    smoothing = torch.tensor([[m.cfg.train.label_smoothing] for m in members])
    trainer = Trainer(
        members=members,
        stack=stack,
        optimizer=optimizer,
        data=data,
        loss_fn=member_losses(data.task, smoothing, class_weight(c0, data), loss_fn),
        device=device,
        autocast=make_autocast(c0, device, images),
        book=RunBook(runs),
        batch_size=c0.train.batch_size,
        drop_last=drop_last,
        parallel=parallel,
    )
    return trainer, trainer.book, describe(c0, data, runs[0], models[0], n_params, device, drop_last, members[0])


def describe(
    cfg: RunConfig,
    data: DataBundle,
    run: RunSlot,
    model: nn.Module,
    n_params: int,
    device: torch.device,
    drop_last: bool,
    m: Member,
) -> list[str]:
    sizes = f"{len(data.x_train)}/{len(data.x_val)}/{len(data.x_test)}"
    split = decay_split([(n, p) for n, p in model.named_parameters() if p.requires_grad])
    mode = m.stopper.mode
    ensemble = f", an ensemble of {cfg.train.members} members" if cfg.train.members > 1 else ""
    return [
        f"run directory: {run.run_dir}",
        f"data: {cfg.data.name} ({data.task}), train/val/test rows {sizes}"
        + (", last batch of one dropped (BatchNorm)" if drop_last else ""),
        *data.notes,  # what loading inferred: the task and why, column roles, warnings
        f"model: {run.spec['model_kind']}, {n_params:,} parameters, on {device}, {run.engine} path{ensemble}"
        + (f" ({run.engine_reason})" if run.engine_reason else ""),
        f"optimizer: {cfg.optim.name} lr {cfg.optim.lr:g}, {split.describe(cfg.optim.weight_decay, cfg.optim.decay_norm_and_bias)}",
        f"schedule: {cfg.schedule.name} (steps {m.schedule.cadence if m.schedule.cadence != 'none' else 'never'}), "
        f"monitor {cfg.train.monitor} ({mode}), early stopping {'patience ' + str(cfg.train.patience) if cfg.train.early_stopping else 'off'}",
    ]


# ---- what the loop tells the run directories ------------------------------------------------------


class RunBook:
    """Writes each run's files at the loop's fixed points; finishes runs whose members all stopped."""

    def __init__(self, runs: list[RunSlot]) -> None:
        self.runs = runs

    def improved(self, member: Member) -> None:
        self.runs[member.run].dirty = True

    def open_runs(self) -> list[RunSlot]:
        return [r for r in self.runs if r.result is None]

    def due(self, t: Trainer, s: LoopState, run: RunSlot) -> bool:
        every = run.cfg.train.checkpoint_every_steps
        return s.interrupted or bool(every and (s.epoch * t.steps_per_epoch + s.step) % every == 0)

    def checkpoint_due(self, t: Trainer, s: LoopState) -> bool:
        return any(self.due(t, s, run) for run in self.open_runs())

    def checkpoint(self, t: Trainer, s: LoopState) -> None:
        for run in self.open_runs():
            if self.due(t, s, run):
                save_last(t, s, run)
                if not s.interrupted:
                    run.emit("checkpoint", epoch=s.epoch, step=s.step, lr=run.members[0].lr.lr)

    def epoch_end(self, t: Trainer, s: LoopState) -> None:
        for run in self.open_runs():
            if run.dirty:
                save_best(t, run)
                run.emit("best", epoch=s.epoch, value=run.members[0].stopper.best_value)
                run.dirty = False
            if run.members[0].history and run.members[0].history[-1]["epoch"] == s.epoch:
                run.emit("epoch_end", row=run_history(run)[-1], state=run.members[0].stopper)
            if all(not m.training for m in run.members):
                finish(t, s, run)
            else:
                save_last(t, s, run)
                run.emit("checkpoint", epoch=s.epoch, step=0, lr=run.members[0].lr.lr)
        shrink(t)


def shrink(t: Trainer) -> None:
    """When most members have stopped, the rest train on as a smaller stack (unchanged numbers)."""
    rows = t.rows()
    keep = [m for m in rows if m.training]
    if not keep or len(keep) > len(rows) // 2:
        return
    picked = [m.row for m in keep]
    t.stack = t.stack.subset(picked)
    t.optimizer = t.optimizer.subset(picked, t.stack.flat, t.stack.grad)
    for m in rows:
        m.row = None
    for row, m in enumerate(keep):
        m.row = row
    if not isinstance(t.loss_fn, CustomLoss):
        t.loss_fn = member_losses(
            t.data.task, torch.tensor([[m.cfg.train.label_smoothing] for m in keep]), class_weight(keep[0].cfg, t.data)
        )


def run_history(run: RunSlot) -> list[dict[str, Any]]:
    """The run's per-epoch rows: its member's, or for an ensemble the mean over the members
    that trained that epoch (with their count)."""
    if len(run.members) == 1:
        return run.members[0].history
    rows = []
    for epoch in range(1, max(len(m.history) for m in run.members) + 1):
        present = [m.history[epoch - 1] for m in run.members if len(m.history) >= epoch]
        row = {k: sum(r[k] for r in present) / len(present) for k in present[0] if k not in ("epoch", "seconds")}
        rows.append(
            {"epoch": epoch, **row, "seconds": sum(r["seconds"] for r in present), "members_training": len(present)}
        )
    return rows


def member_state(t: Trainer, s: LoopState, m: Member) -> dict[str, Any]:
    """Everything one member needs to continue exactly, as plain data."""
    row = m.row
    mid = s.perm is not None and row is not None
    return {
        "weights": t.stack.pack(row, average=False) if row is not None else None,
        "average": t.stack.pack(row, average=True) if row is not None and t.stack.has_average else None,
        "optimizer": t.optimizer.state_rows(row) if row is not None else None,
        "schedule": m.schedule.state_dict(),
        "early_stopping": m.stopper.state_dict(),
        # history as one JSON string: torch.save pays ~1 µs per pickled object
        "history": json.dumps(m.history),
        "stop_reason": m.stop_reason,
        "stop_detail": m.stop_detail,
        "seconds": m.seconds,
        "best": m.best,
        "generators": {k: g.get_state() for k, g in m.generators.items()},
        "torch_rng": t.stack.rng_state(row) if row is not None else None,
        "perm": s.perm[row].cpu() if mid else None,
        "step_loss": s.step_loss[:, row].cpu() if mid else None,
        "step_norm": s.step_norm[:, row].cpu() if mid else None,
    }


def _sync_due(run: RunSlot, which: str, forced: bool = False) -> bool:
    """Whether this write of last.pt or best.pt (`which`: "synced" or "best_synced") is fsynced:
    when forced, or when SYNC_SECONDS have passed since that file's last fsync."""
    now = time.monotonic()
    if forced or now - getattr(run, which) >= SYNC_SECONDS:
        setattr(run, which, now)
        return True
    return False


def save_last(t: Trainer, s: LoopState, run: RunSlot, durable: bool = False) -> None:
    durable = _sync_due(run, "synced", durable or s.interrupted)
    body = {
        "config": run.cfg.to_dict(),
        "loop": {
            "epoch": s.epoch,
            "step": s.step,
            "epoch_seconds": s.epoch_seconds,
            "interrupted": s.interrupted,
            "world_size": t.parallel.world if t.parallel else 1,
        },
        "members": [member_state(t, s, m) for m in run.members],
        "layout": t.stack.layout,  # the architecture, to check a model given on resume
        "rng": rng_snapshot({}),
        "spec": run.spec,
    }
    save_checkpoint(LAST, body, run.run_dir / rundir.LAST_PT, durable)


def save_best(t: Trainer, run: RunSlot) -> None:
    durable = _sync_due(run, "best_synced")
    states = [t.stack.packed_state_dict(m.best) if m.best is not None else None for m in run.members]
    first = run.members[0]
    body = {
        "model": states[0],
        "epoch": first.stopper.best_epoch,
        "monitor": run.cfg.train.monitor,
        "value": first.stopper.best_value,
        "spec": run.spec,
    }
    if len(states) > 1:
        body["members"] = states
    save_checkpoint(BEST, body, run.run_dir / rundir.BEST_PT, durable)


# ---- finishing a run ------------------------------------------------------------------------------


def _final_weights(t: Trainer, m: Member) -> tuple[dict[str, torch.Tensor] | None, bool]:
    """The weights a member is tested with: its best (restore_best) or its last evaluated ones."""
    if m.cfg.train.restore_best and m.best is not None:
        return m.best, True
    if m.stop_reason == NOT_FINITE:
        return m.best, m.best is not None
    return t.stack.pack(m.row, average=True), False


def finish(t: Trainer, s: LoopState, run: RunSlot) -> None:
    """Restore best weights, score the test split, write history, metrics and curves."""
    cfg, data = run.cfg, t.data
    save_last(t, s, run, durable=True)
    if (run.run_dir / rundir.BEST_PT).exists():
        fsync_path(run.run_dir / rundir.BEST_PT)
    finals = [(m, *_final_weights(t, m)) for m in run.members]
    scored = [(m, w, r) for m, w, r in finals if w is not None]
    model = copy.deepcopy(t.stack.template).to(t.device)
    outs = []
    for m, weights, _ in scored:
        load_model_state(model, t.stack.packed_state_dict(weights), run.run_dir / rundir.BEST_PT)
        outs.append(predict_outputs(model, data, data.x_test, cfg.train.eval_batch_size, t.autocast))
        if m.row is not None:  # the live weights end as tested (a model of one's own keeps its best weights)
            t.stack.unpack(m.row, weights, average=False)
    failed = [m for m in run.members if m.stop_reason == NOT_FINITE]
    reason = (
        NOT_FINITE
        if len(failed) == len(run.members)
        else next(m.stop_reason for m in run.members if m.stop_reason != NOT_FINITE)
    )
    metrics: dict[str, Any] = {}
    if outs:
        test = test_metrics(data.task, outs, data.y_test, data.target_std)
        metrics.update({f"test_{k}": v for k, v in test.items() if k != "loss"}, test_loss=test["loss"])
    first = run.members[0]
    history = run_history(run)
    metrics.update(
        epochs_run=len(history),
        best_epoch=first.stopper.best_epoch,
        best_value=first.stopper.best_value,
        monitor=cfg.train.monitor,
        restored_best=all(r for _, _, r in scored) and bool(scored),
        stop_reason=reason,
        wall_seconds=round(sum(m.seconds for m in run.members), 3),
        engine=run.engine,
        stacked_with=len({m.run for m in t.members}),
        threads=torch.get_num_threads(),
    )
    if run.engine_reason:
        metrics["engine_reason"] = run.engine_reason
    if len(run.members) > 1:
        metrics.update(member_metrics(data, outs))
    message = ""
    if failed:
        detail = failed[0].stop_detail
        metrics["error"] = detail
        kept = (
            f"best weights (epoch {first.stopper.best_epoch}) kept in {run.run_dir / rundir.BEST_PT}"
            if first.best is not None
            else "no best weights were saved"
        )
        message = (
            f"training stopped: {detail}; {kept}"
            if reason == NOT_FINITE
            else f"{len(failed)} of {len(run.members)} members stopped: {detail}"
        )
        run.emit("message", text=message)
    rundir.write_history(run.run_dir, history)
    rundir.write_json(run.run_dir / rundir.METRICS, metrics)
    if history and cfg.train.curves:
        from .plots import plot_curves

        plot_curves(
            history,
            run.run_dir / rundir.CURVES,
            title=f"{cfg.name} (seed {cfg.train.seed})",
            best_epoch=first.stopper.best_epoch,
        )
    run.result = RunResult(run.run_dir, history, metrics, reason, message, cfg)
    run.emit("end", stop_reason=reason)


def member_metrics(data: DataBundle, outs: list[torch.Tensor]) -> dict[str, Any]:
    """Each member's own test metric, and their mean ± std, beside the ensemble's."""
    main = metric_names.MAIN[data.task]
    values = [test_metrics(data.task, [o], data.y_test, data.target_std)[main] for o in outs]
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else float("nan")
    return {
        "members": len(outs),
        f"members_test_{main}": values,
        f"members_test_{main}_mean": mean,
        f"members_test_{main}_std": std,
    }


# ---- interrupts ------------------------------------------------------------------------------


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Callable[[], bool]]:
    """SIGINT/SIGTERM ask the loop to stop after the current step (it then writes last.pt)."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag.is_set
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, lambda *_: flag.set())
    try:
        yield flag.is_set
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# ---- train, resume ---------------------------------------------------------------------------


def train_runs(
    cfgs: list[RunConfig],
    run_dirs: list[Path],
    emits: list[Emit] | None = None,
    resume_from: list[dict[str, Any]] | None = None,
    max_threads: int | None = None,
    **given: Any,
) -> list[RunResult]:
    """Train (or, with last.pt payloads, continue) runs of one stack key together; one result per
    run. `max_threads`: the share of cores this process may use (a compare worker's); `given`:
    model, data, loss_fn of one's own (trainwell.fit)."""
    emits = emits or [lambda *_a, **_k: None for _ in cfgs]
    trainer, book, lines = build_trainer(
        cfgs, run_dirs, emits, max_threads=max_threads, **given
    )  # every input is checked before anything is written
    loop = LoopState()
    for cfg, d in zip(cfgs, run_dirs):
        if not distributed.is_follower():  # under torchrun only rank 0 writes
            paths.prepare_dir(d, "run directory")
            rundir.write_text_atomic(d / rundir.CONFIG, dump_yaml(cfg))
    if resume_from is not None:
        loop = restore(trainer, resume_from, run_dirs)
        lines = [f"resuming at epoch {loop.epoch + 1}, step {loop.step}", *lines]
        for run in book.runs:  # stopped after its last epoch, before its files were written
            if all(not m.training for m in run.members) and not distributed.is_follower():
                finish(trainer, loop, run)
    for run in book.runs:
        run.emit("start", lines=lines, notes=trainer.data.notes, max_epochs=run.cfg.train.max_epochs)
    with stop_on_signals() as stop_requested:
        trainer.stop_requested = stop_requested
        if trainer.parallel:  # processes stop together, and only rank 0 writes
            trainer.parallel.local_stop, trainer.stop_requested = stop_requested, trainer.parallel.stop_requested
            trainer.book = distributed.ParallelBook(book, trainer.parallel)
        try:
            fit(trainer, loop)
        finally:
            distributed.stop()
    if distributed.is_follower():  # its files are rank 0's; only how it ended matters
        return [
            RunResult(r.run_dir, run_history(r), {}, r.members[0].stop_reason or INTERRUPTED, "", r.cfg)
            for r in book.runs
        ]
    return [run.result or interrupted_result(run, loop) for run in book.runs]


def interrupted_result(run: RunSlot, loop: LoopState) -> RunResult:
    under = f"torchrun --nproc_per_node {distributed.world_size()} -m " if distributed.world_size() > 1 else ""
    msg = f"stopped at epoch {loop.epoch + 1}, step {loop.step}; continue with: {under}trainwell resume {run.run_dir}"
    run.emit("message", text=msg)
    run.emit("end", stop_reason=INTERRUPTED)
    return RunResult(run.run_dir, run_history(run), {}, INTERRUPTED, msg, run.cfg)


def train(
    config: RunConfig | dict[str, Any],
    out: str | Path | None = None,
    quiet: bool | None = None,
    emit: Emit | None = None,
    **given: Any,
) -> RunResult:
    """Train a run from a config (a RunConfig or a raw dict) and write its run directory.
    `given`: a model, data (DataBundle) or loss_fn of one's own (see trainwell.fit)."""
    cfg = config if isinstance(config, RunConfig) else RunConfig.from_dict(config)
    cfg.validate()
    if quiet is not None:
        cfg.train.quiet = quiet
    distributed.check(cfg)
    emit = emit or Progress(cfg.train.quiet)
    # the folder is checked now and created only once every input has been read and checked
    if distributed.is_follower():  # rank 0 checks and writes it
        run_dir = Path(out) if out is not None else rundir.default_run_dir(cfg.name)
    else:
        run_dir = rundir.check_run_out(out) if out is not None else rundir.default_run_dir(cfg.name)
    from .lr_find import resolve_auto_lr  # "auto" rates become numbers before config.yaml records them

    cfg = resolve_auto_lr(cfg, run_dir, say=lambda text: emit("message", text=text), **given)
    return train_runs([cfg], [run_dir], [run_emit(emit, cfg, run_dir)], **given)[0]


def run_emit(emit: Emit, cfg: RunConfig, run_dir: Path) -> Emit:
    """The run's events to the display and loggers; nowhere on torchrun processes other than rank 0."""
    if distributed.is_follower():
        return lambda *_a, **_k: None
    from .loggers import wrap_emit

    return wrap_emit(emit, cfg, run_dir)


def resume(
    run_dir: str | Path,
    overrides: dict[str, Any] | None = None,
    quiet: bool | None = None,
    emit: Emit | None = None,
    **given: Any,
) -> RunResult:
    """Continue a run from its last.pt; the result equals an uninterrupted run's (on the CPU)."""
    cfg, ckpt = load_resumable(run_dir)
    distributed.check_resume(ckpt["loop"].get("world_size", 1), Path(run_dir) / rundir.LAST_PT)
    cfg = apply_resume_overrides(cfg, overrides or {})
    if quiet is not None:
        cfg.train.quiet = quiet
    distributed.check(cfg)
    emit = emit or Progress(cfg.train.quiet)
    return train_runs([cfg], [Path(run_dir)], [run_emit(emit, cfg, Path(run_dir))], resume_from=[ckpt], **given)[0]


def restore(t: Trainer, payloads: list[dict[str, Any]], run_dirs: list[Path]) -> LoopState:
    """Load every member's state from its run's last.pt; all must stand at the same epoch and step."""
    loops = {(p["loop"]["epoch"], p["loop"]["step"]) for p in payloads}
    if len(loops) != 1:
        raise CheckpointError("runs resumed together must stand at the same epoch and step")
    ((epoch, step),) = loops
    s = LoopState(epoch=epoch, step=step, epoch_seconds=float(payloads[0]["loop"]["epoch_seconds"]))
    rows = t.rows()
    mids = []
    for run, payload, d in zip(t.book.runs, payloads, run_dirs):
        try:
            for m, saved in zip(run.members, payload["members"]):
                load_member(t, m, saved)
                mids.append(saved)
        except (KeyError, ValueError, RuntimeError, TypeError, IndexError):
            raise CheckpointError(
                f"checkpoint {str(d / rundir.LAST_PT)!r} does not match its run's model, optimizer or schedule"
            ) from None
    rng_restore(payloads[0]["rng"], {})
    mid = next((saved for saved in mids if saved["perm"] is not None), None)
    if mid is not None:  # mid-epoch: members that had stopped get placeholders (they do not train)
        pick = lambda saved, key: saved[key] if saved[key] is not None else torch.zeros_like(mid[key])  # noqa: E731
        s.perm = torch.stack([pick(saved, "perm") for saved in mids]).to(t.device)
        s.step_loss = torch.stack([pick(saved, "step_loss") for saved in mids], dim=1).to(t.device)
        s.step_norm = torch.stack([pick(saved, "step_norm") for saved in mids], dim=1).to(t.device)
    for m in rows:  # torch's global stream of a lone module-path member is restored last
        saved = mids[m.row]
        if saved["torch_rng"] is not None:
            t.stack.load_rng_state(m.row, saved["torch_rng"])
    for run in t.book.runs:  # a finished max_epochs may have grown; an interrupted member trains on
        for m in run.members:
            if m.stop_reason == MAX_EPOCHS and len(m.history) < m.cfg.train.max_epochs:
                m.stop_reason = None
            if m.stop_reason == INTERRUPTED:
                m.stop_reason = None
    return s


def load_member(t: Trainer, m: Member, saved: dict[str, Any]) -> None:
    if saved["weights"] is None:  # stopped before the last save: only its history and best weights matter
        _load_bookkeeping(m, saved)
        return
    t.stack.unpack(m.row, saved["weights"], average=False)
    if saved["average"] is not None and t.stack.has_average:
        t.stack.unpack(m.row, saved["average"], average=True)
    t.optimizer.load_rows(m.row, saved["optimizer"])
    _load_bookkeeping(m, saved)


def _load_bookkeeping(m: Member, saved: dict[str, Any]) -> None:
    m.schedule.load_state_dict(saved["schedule"])
    m.schedule.apply(m.lr)
    m.stopper.load_state_dict(saved["early_stopping"])
    m.history = json.loads(saved["history"]) if isinstance(saved["history"], str) else saved["history"]
    m.stop_reason, m.stop_detail, m.seconds, m.best = (
        saved["stop_reason"],
        saved["stop_detail"],
        float(saved["seconds"]),
        saved["best"],
    )
    for k, state in saved["generators"].items():
        m.generators[k].set_state(state)


# ---- using a finished run ---------------------------------------------------------------------


class Ensemble(nn.Module):
    """K members predicting together: the mean prediction (regression), or the log of the mean
    probability (classification; softmax of it gives the mean probability back)."""

    def __init__(self, members: list[nn.Module], task: str) -> None:
        super().__init__()
        self.members, self.task = nn.ModuleList(members), task

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = self.member_outputs(x)
        if self.task == "regression":
            return outs.mean(0)
        return torch.log(torch.softmax(outs.float(), dim=-1).mean(0).clamp(min=1e-12))


def load_run(run_dir: str | Path) -> tuple[RunConfig, nn.Module, dict[str, Any]]:
    """The run's config, its model with the best weights (eval mode; an Ensemble for members > 1),
    and the preprocessing spec."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TrainwellError(f"run directory {str(run_dir)!r} does not exist")
    cfg_path = run_dir / rundir.CONFIG
    if not cfg_path.exists():
        raise TrainwellError(f"{str(run_dir)!r} is not a run directory: it has no config.yaml")
    cfg = load_config(cfg_path)
    path = run_dir / rundir.BEST_PT
    ckpt = load_checkpoint(path, BEST)
    spec = validate_spec(ckpt.get("spec"), path)  # checked like a config before a model is built from it
    states = ckpt.get("members") or [ckpt["model"]]
    models = []
    for state in states:
        model = build_model(
            cfg.model, tuple(spec["input_shape"]), spec["n_outputs"], spec["model_kind"], spec.get("embedded")
        )
        load_model_state(model, state, path)
        models.append(model.eval())
    model = models[0] if len(models) == 1 else Ensemble(models, spec["task"]).eval()
    return cfg, model, spec


__all__ = ["RunResult", "train", "train_runs", "resume", "load_run", "build_trainer", "load_resumable", "Ensemble"]
