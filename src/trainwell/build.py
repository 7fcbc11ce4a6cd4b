"""Building a trainer: every member of every run, seeded exactly as a run alone would be.

`build_trainer` reads the data, checks every config against it, builds and places the models,
picks the stack's engine (fastmlp.MLPStack or stack.ModuleStack), and gives each member its
schedule, generators and early stopping. Nothing is written here.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from . import calibration, distributed, metric_names
from .config import RunConfig
from .data import DataBundle, load_data, scaling_inputs
from .data.preprocess import numeric_columns
from .distributed import DataParallel
from .early_stopping import EarlyStopping
from .errors import ConfigError, DataError
from .fastmlp import build_stack
from .loop import Emit, Member, Trainer
from .losses import member_losses
from .models import build_model, count_parameters, drops_last_batch, has_batchnorm
from .optim import FlatOptimizer, LossScale, decay_split
from .planning import fast_path_reason
from .runbook import RunBook, RunSlot
from .scaling import Scaled, scale_configs
from .schedules import build_schedule
from .seeding import make_generator, seed_everything, set_deterministic
from .stack import ParamStack

SMALL_MODEL_PARAMS = 1_000_000  # below this, one CPU thread beats several (thread sync costs more than the math)
# Initial weights are drawn from torch's global generator (what nn.Module constructors use), which all
# threads of a process share: two trainers built at once in threads (a Dask worker with several threads, a
# LocalCluster without processes) took turns drawing from it and got other weights than alone.
_GLOBAL_RNG = threading.Lock()
SHUFFLE, AUGMENT, DROPOUT = 0, 1, 2  # generator streams of a member (seeding.make_generator)


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
            f"only {len(data.x_train)} training rows, fewer than one batch (train.batch_size = "
            f"{cfg.train.batch_size}); "
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
    """The loss's class weights: balanced (or auto, on a classification task), from the training split;
    none and decision train unweighted."""
    if cfg.train.class_weights in ("none", "decision") or data.task != "classification":
        return None
    return calibration.balanced_weights(data.y_train, data.n_outputs)


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
    return Member(
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


def build_models(
    cfg: RunConfig, data: DataBundle, seed: int, model: nn.Module | None = None
) -> tuple[nn.Module, torch.Tensor]:
    """A member's network, seeded as a run with that seed alone would be; and torch's global
    generator state right after (the member's dropout stream on the module path)."""
    with _GLOBAL_RNG:  # seeding, drawing the weights and reading the state back must not interleave
        seed_everything(seed)
        net = (
            model
            if model is not None
            else build_model(
                cfg.model,
                data.input_shape,
                data.n_outputs,
                data.default_model,
                data.spec.get("embedded"),
                numeric_columns(data.spec),
            )
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
) -> tuple[Trainer, RunBook, list[str]]:
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
    # "auto" batch, lr, step budget, validation cadence, numeric embedding
    scaled = scale_configs(cfgs, *scaling_inputs(data))
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
    set_threads(c0, n_params, max_threads)
    images = len(data.input_shape) == 3
    place(c0, data, models, device, images)
    stack = pick_engine(cfgs, runs, models, [state for _, (_, state) in built], model is not None, loss_fn)
    drop_last = needs_drop_last(c0, data, models[0], parallel, stack)
    steps = scaled.steps_per_validation(len(data.x_train), drop_last)  # schedules count validations as epochs
    members = add_members(cfgs, runs, [i for i, _ in built], steps)
    trainer = Trainer(
        members=members,
        stack=stack,
        optimizer=make_optimizer(c0, stack, members),
        data=data,
        loss_fn=member_losses(
            data.task, torch.tensor([[m.cfg.train.label_smoothing] for m in members]), class_weight(c0, data), loss_fn
        ),
        device=device,
        autocast=make_autocast(c0, device, images),
        book=RunBook(runs),
        batch_size=c0.train.batch_size,
        drop_last=drop_last,
        parallel=parallel,
        validations_per_pass=scaled.validations_per_pass,
    )
    lines = describe(c0, data, runs[0], models[0], n_params, device, drop_last, members[0])
    return trainer, trainer.book, lines + scale_lines(c0, len(data.x_train), scaled, trainer.optimizer)


def scale_lines(cfg: RunConfig, train_rows: int, scaled: Scaled, optimizer: FlatOptimizer) -> list[str]:
    """Start lines for what was chosen from the table and for fp16 loss scaling."""
    lines = [scaled.describe(train_rows, cfg.optim.lr)] if scaled.chosen else []
    if optimizer.loss_scale is not None:
        lines.append(f"amp fp16: dynamic loss scaling from {cfg.train.loss_scale:g}, overflowing steps skipped")
    return lines


def make_optimizer(cfg: RunConfig, stack: ParamStack, members: list[Member]) -> FlatOptimizer:
    scale = loss_scale(cfg, len(members), stack.flat.device)
    return FlatOptimizer(stack.flat, stack.grad, stack.decay_size, [m.cfg.optim for m in members], scale)


def loss_scale(cfg: RunConfig, members: int, device: torch.device) -> LossScale | None:
    """fp16 needs its loss scaled (small gradients underflow in half precision); on the CPU,
    where autocast stays off, the scaling still runs, which is how it is tested."""
    if cfg.train.amp != "fp16":
        return None
    return LossScale(members, cfg.train.loss_scale, device)


def add_members(cfgs: list[RunConfig], runs: list[RunSlot], run_of_row: list[int], steps: int) -> list[Member]:
    """Each stack row's member (run `run_of_row[row]`, seeded seed + its index in the run), in row order."""
    members = []
    for row, i in enumerate(run_of_row):
        cfg = cfgs[i]
        m = _member(cfg, i, cfg.train.seed + len(runs[i].members), steps, resolve_mode(cfg))
        m.row = row
        runs[i].members.append(m)
        members.append(m)
    return members


def set_threads(cfg: RunConfig, n_params: int, max_threads: int | None) -> None:
    """One thread for small models (faster, and their numbers then never depend on a worker's
    thread count); larger ones use train.threads, or the share of cores this process was given."""
    share = max_threads or max(1, torch.get_num_threads())
    torch.set_num_threads(cfg.train.threads or (1 if n_params < SMALL_MODEL_PARAMS else share))


def place(cfg: RunConfig, data: DataBundle, models: list[nn.Module], device: torch.device, images: bool) -> None:
    """Data and models onto the device (images channels-last on CUDA when asked)."""
    data.to(device)
    for m in models:
        m.to(device)
        if images and device.type == "cuda" and cfg.train.channels_last:
            m.to(memory_format=torch.channels_last)


def pick_engine(
    cfgs: list[RunConfig],
    runs: list[RunSlot],
    models: list[nn.Module],
    rng_states: list[torch.Tensor],
    own_model: bool,
    loss_fn: Callable | None,
) -> ParamStack:
    """The stack, on the fast path where every run may take it; each run records its engine and why."""
    reasons = [
        fast_path_reason(cfg, torch.cuda.is_available()) if not own_model else "a model of one's own" for cfg in cfgs
    ]
    if loss_fn is not None:
        reasons = [r or "a loss of one's own" for r in reasons]
    stack = build_stack(models, any(c.train.ema_decay for c in cfgs), fast=not any(reasons), rng_states=rng_states)
    for run, reason in zip(runs, reasons):
        run.engine = stack.engine
        run.engine_reason = reason or ("" if stack.engine == "vectorised" else "the model is not trainwell's MLP")
    return stack


def needs_drop_last(
    cfg: RunConfig, data: DataBundle, model: nn.Module, parallel: DataParallel | None, stack: ParamStack
) -> bool:
    """Whether the last partial batch is dropped: BatchNorm cannot normalise a batch of one (nor
    a shard of one under torchrun). Under torchrun every process also starts from rank 0's weights."""
    drop_last = drops_last_batch(model, len(data.x_train), cfg.train.batch_size)  # the model check asks the same
    if parallel:
        drop_last = drop_last or parallel.needs_drop_last(len(data.x_train), cfg.train.batch_size, has_batchnorm(model))
        parallel.same_start(stack)
    return drop_last


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
    """The lines shown before training: run directory, data, model, optimizer, schedule."""
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
        f"optimizer: {cfg.optim.name} {_rate_words(cfg)}, "
        f"{split.describe(cfg.optim.weight_decay, cfg.optim.decay_norm_and_bias)}",
        f"schedule: {cfg.schedule.name} (steps {m.schedule.cadence if m.schedule.cadence != 'none' else 'never'}), "
        f"monitor {cfg.train.monitor} ({mode}), early stopping "
        f"{'patience ' + str(cfg.train.patience) if cfg.train.early_stopping else 'off'}",
        *(
            [calibration.describe(class_weight(cfg, data) is not None, cfg.train.monitor, cfg.train.class_weights)]
            if data.task == "classification"
            else []
        ),
    ]


def _rate_words(cfg: RunConfig) -> str:
    """The learning rate the run trains at: optim.lr, or under one-cycle the rates it moves through
    (from peak / div_factor up to the peak, schedule.max_lr or optim.lr, then down to the final)."""
    sc = cfg.schedule
    if sc.name != "onecycle":
        return f"lr {cfg.optim.lr:.3g}"
    peak = float(sc.max_lr if isinstance(sc.max_lr, (int, float)) else cfg.optim.lr)
    start = peak / sc.div_factor
    return (
        f"lr {start:.3g} rising to a peak of {peak:.3g} (one-cycle), then falling to {start / sc.final_div_factor:.3g}"
    )


__all__ = ["build_trainer", "build_models", "pick_device", "describe"]
