"""The library's entry points: train, resume, evaluate_run and predict_run.

`train(config)` builds every component from the validated config, runs `fit`, restores the
best weights, computes test metrics and writes the run directory. The CLI only calls these.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from . import rundir
from .averaging import WeightAverage
from .checkpoint import BEST, LAST, load_checkpoint, load_model_state
from .config import RunConfig, dump_yaml, load_config
from .data import DataBundle, load_data
from .errors import CheckpointError, ConfigError, DataError, TrainwellError
from .fit import EARLY_STOP, INTERRUPTED, MAX_EPOCHS, NOT_FINITE, Emit, LoopState, Trainer, fit, predict_outputs, score
from .models import build_model, count_parameters, has_batchnorm
from .optim import build_optimizer
from .progress import Progress
from .schedules import build_schedule
from .seeding import make_generator, rng_restore, seed_everything, set_deterministic

SMALL_MODEL_PARAMS = 1_000_000  # below this, one CPU thread beats several (thread sync costs more than the math)


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


# ---- building a run ---------------------------------------------------------------------------


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {name!r} is not allowed here: no CUDA device is available; use auto or cpu")
    return torch.device(name)


def resolve_mode(cfg: RunConfig) -> str:
    if cfg.train.mode != "auto":
        return cfg.train.mode
    return "max" if cfg.train.monitor == "val_accuracy" else "min"


def check_against_data(cfg: RunConfig, data: DataBundle) -> None:
    wants = {"val_mae": "regression", "val_accuracy": "classification"}.get(cfg.train.monitor)
    if wants and wants != data.task:
        other = "val_mae" if data.task == "regression" else "val_accuracy"
        raise ConfigError(f"train.monitor = {cfg.train.monitor!r} is not allowed for a {data.task} task: use val_loss or {other}")
    if len(data.x_train) < cfg.train.batch_size:
        raise DataError(
            f"only {len(data.x_train)} training rows, fewer than one batch (train.batch_size = {cfg.train.batch_size}); "
            "give more rows or a smaller batch size"
        )
    if len(data.x_val) < 1 or len(data.x_test) < 1:
        raise DataError("the validation and test splits must each hold at least one row; give more rows")


def make_autocast(cfg: RunConfig, device: torch.device, images: bool) -> Callable[[], contextlib.AbstractContextManager]:
    """bf16 autocast on CUDA for images by default; full precision elsewhere."""
    mode = cfg.train.amp
    if device.type != "cuda" or mode == "off" or (mode == "auto" and not images):
        return contextlib.nullcontext
    dtype = torch.float16 if mode == "fp16" else torch.bfloat16
    return lambda: torch.autocast(device_type="cuda", dtype=dtype)


def build_trainer(
    cfg: RunConfig, run_dir: Path, emit: Emit, *, model: nn.Module | None = None, data: DataBundle | None = None, loss_fn: nn.Module | None = None
) -> tuple[Trainer, list[str]]:
    """Every component of a run, seeded; returns the trainer and lines describing it. A model, data
    or loss given here (trainwell.fit) replace the ones the config describes."""
    device = pick_device(cfg.train.device)
    seed_everything(cfg.train.seed)
    set_deterministic(cfg.train.deterministic)
    data = data if data is not None else load_data(cfg.data)
    check_against_data(cfg, data)
    kind = f"custom:{type(model).__name__}" if model is not None else (cfg.model.kind if cfg.model.kind != "auto" else data.default_model)
    model = model if model is not None else build_model(cfg.model, data.input_shape, data.n_outputs, data.default_model)
    n_params = count_parameters(model)
    torch.set_num_threads(cfg.train.threads or (1 if n_params < SMALL_MODEL_PARAMS else max(1, torch.get_num_threads())))
    images = len(data.input_shape) == 3
    data.to(device)
    model.to(device)
    if images and device.type == "cuda" and cfg.train.channels_last:
        model.to(memory_format=torch.channels_last)
    # BatchNorm cannot normalise a batch of one: drop such a last batch
    drop_last = has_batchnorm(model) and len(data.x_train) % cfg.train.batch_size == 1
    optimizer, split = build_optimizer(model, cfg.optim)
    mode = resolve_mode(cfg)
    steps = len(data.x_train) // cfg.train.batch_size if drop_last else math.ceil(len(data.x_train) / cfg.train.batch_size)
    schedule = build_schedule(cfg.schedule, cfg.optim.lr, steps, cfg.train.max_epochs, mode)
    schedule.apply(optimizer)
    if loss_fn is None:
        loss_fn = nn.MSELoss() if data.task == "regression" else nn.CrossEntropyLoss(label_smoothing=cfg.train.label_smoothing)
    trainer = Trainer(
        cfg=cfg,
        model=torch.compile(model) if cfg.train.compile else model,
        optimizer=optimizer,
        schedule=schedule,
        data=data,
        loss_fn=loss_fn,
        device=device,
        generators={"shuffle": make_generator(cfg.train.seed, 0), "augment": make_generator(cfg.train.seed, 1)},
        run_dir=run_dir,
        drop_last=drop_last,
        mode=mode,
        autocast=make_autocast(cfg, device, images),
        emit=emit,
        average=WeightAverage(model, cfg.train.ema_decay) if cfg.train.ema_decay else None,
        spec={
            **data.spec,
            "task": data.task,
            "input_shape": list(data.input_shape),
            "n_outputs": data.n_outputs,
            "model_kind": kind,
        },
    )
    sizes = f"{len(data.x_train)}/{len(data.x_val)}/{len(data.x_test)}"
    lines = [
        f"run directory: {run_dir}",
        f"data: {cfg.data.name} ({data.task}), train/val/test rows {sizes}" + (", last batch of one dropped (BatchNorm)" if drop_last else ""),
        f"model: {trainer.spec['model_kind']}, {n_params:,} parameters, on {device}",
        f"optimizer: {cfg.optim.name} lr {cfg.optim.lr:g}, {split.describe(cfg.optim.weight_decay)}",
        f"schedule: {cfg.schedule.name} (steps {schedule.cadence if schedule.cadence != 'none' else 'never'}), "
        f"monitor {cfg.train.monitor} ({mode}), early stopping {'patience ' + str(cfg.train.patience) if cfg.train.early_stopping else 'off'}",
    ]
    return trainer, lines


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


def train(config: RunConfig | dict[str, Any], out: str | Path | None = None, quiet: bool | None = None, emit: Emit | None = None, **given: Any) -> RunResult:
    """Train a run from a config (a RunConfig or a raw dict) and write its run directory."""
    cfg = config if isinstance(config, RunConfig) else RunConfig.from_dict(config)
    cfg.validate()
    if quiet is not None:
        cfg.train.quiet = quiet
    emit = emit or Progress(cfg.train.quiet)
    run_dir = rundir.new_run_dir(out, cfg.name)
    from .lr_find import resolve_auto_lr  # "auto" rates become numbers before config.yaml records them

    cfg = resolve_auto_lr(cfg, run_dir, say=lambda text: emit("message", text=text), **given)
    rundir.write_text_atomic(run_dir / rundir.CONFIG, dump_yaml(cfg))
    trainer, lines = build_trainer(cfg, run_dir, emit, **given)  # given: model, data, loss_fn (trainwell.fit)
    emit("start", lines=lines, max_epochs=cfg.train.max_epochs)
    return _run(trainer, LoopState(), time.perf_counter())


def resume(run_dir: str | Path, overrides: dict[str, Any] | None = None, quiet: bool | None = None, emit: Emit | None = None, **given: Any) -> RunResult:
    """Continue a run from its last.pt; the result equals an uninterrupted run's (on the CPU)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TrainwellError(f"run directory {str(run_dir)!r} does not exist")
    if (run_dir / rundir.METRICS).exists():
        raise TrainwellError(f"run {str(run_dir)!r} has already finished (metrics.json exists); there is nothing to resume")
    if not (run_dir / rundir.LAST_PT).exists():
        raise TrainwellError(f"run directory {str(run_dir)!r} has no last.pt, so it cannot be resumed; start it again with 'trainwell train'")
    ckpt = load_checkpoint(run_dir / rundir.LAST_PT, LAST)
    try:
        cfg = RunConfig.from_dict(ckpt["config"])
        loop = LoopState.from_dict(ckpt["loop"])
    except (TrainwellError, TypeError, KeyError):
        raise CheckpointError(f"checkpoint {str(run_dir / rundir.LAST_PT)!r} holds no valid run state") from None
    check_same_run(cfg, run_dir)
    cfg = apply_resume_overrides(cfg, overrides or {})
    if quiet is not None:
        cfg.train.quiet = quiet
    if loop.stop_reason == MAX_EPOCHS and loop.epoch < cfg.train.max_epochs:
        loop.stop_reason = None  # max_epochs grew: keep training
    if loop.stop_reason in (INTERRUPTED, NOT_FINITE):
        loop.stop_reason, loop.stop_detail = None, ""
    emit = emit or Progress(cfg.train.quiet)
    trainer, lines = build_trainer(cfg, run_dir, emit, **given)
    try:
        load_model_state(trainer.model, ckpt["model"], run_dir / rundir.LAST_PT)
        trainer.optimizer.load_state_dict(ckpt["optimizer"])
        trainer.schedule.load_state_dict(ckpt["schedule"])
        if trainer.average is not None:
            trainer.average.load_state_dict(ckpt["average"])
        rng_restore(ckpt["rng"], trainer.generators)
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError):
        raise CheckpointError(f"checkpoint {str(run_dir / rundir.LAST_PT)!r} does not match its run's model, optimizer or schedule") from None
    trainer.schedule.apply(trainer.optimizer)
    if loop.perm is not None:
        loop.perm = loop.perm.to(trainer.device)
        loop.step_loss, loop.step_norm = loop.step_loss.to(trainer.device), loop.step_norm.to(trainer.device)
    rundir.write_text_atomic(run_dir / rundir.CONFIG, dump_yaml(cfg))
    emit("start", lines=[f"resuming at epoch {loop.epoch + 1}, step {loop.step}", *lines], max_epochs=cfg.train.max_epochs)
    return _run(trainer, loop, time.perf_counter())


RESUMABLE_FIELDS = ("train.max_epochs", "train.quiet", "train.checkpoint_every_steps")


def _first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    for section, fields in a.items():
        if not isinstance(fields, dict):
            if b.get(section) != fields:
                return section
            continue
        for name, value in fields.items():
            if b.get(section, {}).get(name) != value:
                return f"{section}.{name}"
    return "config"


def check_same_run(ckpt_cfg: RunConfig, run_dir: Path) -> None:
    """last.pt must belong to this run: its config equals config.yaml but for resumable fields."""
    path = run_dir / rundir.CONFIG
    if not path.exists():
        return
    try:
        on_disk = load_config(path).to_dict()
    except TrainwellError:
        raise CheckpointError(f"{str(path)!r} is not a valid config, so last.pt cannot be checked against it") from None
    mine = ckpt_cfg.to_dict()
    for key in RESUMABLE_FIELDS:
        section, name = key.split(".")
        on_disk[section].pop(name), mine[section].pop(name)
    if on_disk != mine:
        diff = _first_difference(mine, on_disk)
        raise CheckpointError(f"last.pt in {str(run_dir)!r} belongs to another run: its {diff} differs from config.yaml")


def apply_resume_overrides(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Only fields that keep the run's meaning may change on resume; max_epochs may only grow."""
    raw = cfg.to_dict()
    for key, value in overrides.items():
        if key not in RESUMABLE_FIELDS:
            raise ConfigError(f"--set {key} cannot change on resume; fields that may change: {', '.join(RESUMABLE_FIELDS)}")
        section, name = key.split(".")
        raw[section][name] = value
    new = RunConfig.from_dict(raw)
    if new.train.max_epochs < cfg.train.max_epochs:
        raise ConfigError(f"train.max_epochs = {new.train.max_epochs} is not allowed on resume: it may only grow (it is {cfg.train.max_epochs})")
    if new.schedule.name == "onecycle" and new.train.max_epochs != cfg.train.max_epochs:
        raise ConfigError("train.max_epochs cannot change on resume with a onecycle schedule: its whole cycle is fixed at the start")
    return new


def _run(t: Trainer, loop: LoopState, started: float) -> RunResult:
    # seconds spent before this process took over (earlier segments of a resumed run)
    earlier = sum(r["seconds"] for r in loop.history) + loop.epoch_seconds
    with stop_on_signals() as stop_requested:
        t.stop_requested = stop_requested
        loop = fit(t, loop)
    return finish(t, loop, earlier + time.perf_counter() - started)


def finish(t: Trainer, loop: LoopState, wall_seconds: float) -> RunResult:
    """Restore the best weights, score the test split and write history, metrics and curves."""
    run_dir, cfg = t.run_dir, t.cfg
    rundir.write_history(run_dir, loop.history)
    if loop.stop_reason == INTERRUPTED:
        msg = f"stopped at epoch {loop.epoch + 1}, step {loop.step}; continue with: trainwell resume {run_dir}"
        t.emit("message", text=msg)
        return RunResult(run_dir, loop.history, {}, INTERRUPTED, msg, cfg)
    best_path = run_dir / rundir.BEST_PT
    restored = cfg.train.restore_best and best_path.exists()
    if restored:
        load_model_state(t.eval_model, load_checkpoint(best_path, BEST)["model"], best_path)
    test = score(predict_outputs(t.eval_model, t.data, t.data.x_test, cfg.train.eval_batch_size, t.autocast), t.data.y_test, t.data, t.loss_fn)
    metrics: dict[str, Any] = {f"test_{k}": v for k, v in test.items() if k != "loss"}
    metrics.update(
        test_loss=test["loss"],
        epochs_run=loop.epoch,
        best_epoch=loop.best_epoch,
        best_value=loop.best_value,
        monitor=cfg.train.monitor,
        restored_best=restored,
        stop_reason=loop.stop_reason,
        wall_seconds=round(wall_seconds, 3),
    )
    message = ""
    if loop.stop_reason == NOT_FINITE:
        kept = f"best weights (epoch {loop.best_epoch}) kept in {best_path}" if loop.best_epoch else "no best weights were saved"
        message = f"training stopped: {loop.stop_detail}; {kept}"
        metrics["error"] = loop.stop_detail
        t.emit("message", text=message)
    rundir.write_json(run_dir / rundir.METRICS, metrics)
    if loop.history and cfg.train.curves:
        from .plots import plot_curves

        plot_curves(loop.history, run_dir / rundir.CURVES, title=f"{cfg.name} (seed {cfg.train.seed})", best_epoch=loop.best_epoch)
    return RunResult(run_dir, loop.history, metrics, loop.stop_reason or MAX_EPOCHS, message, cfg)


# ---- using a finished run ---------------------------------------------------------------------


def load_run(run_dir: str | Path) -> tuple[RunConfig, nn.Module, dict[str, Any]]:
    """The run's config, its model with the best weights (eval mode), and the preprocessing spec."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TrainwellError(f"run directory {str(run_dir)!r} does not exist")
    cfg_path = run_dir / rundir.CONFIG
    if not cfg_path.exists():
        raise TrainwellError(f"{str(run_dir)!r} is not a run directory: it has no config.yaml")
    cfg = load_config(cfg_path)
    ckpt = load_checkpoint(run_dir / rundir.BEST_PT, BEST)
    spec = ckpt.get("spec")
    if not isinstance(spec, dict) or not {"input_shape", "n_outputs", "model_kind", "task"} <= set(spec):
        raise CheckpointError(f"checkpoint {str(run_dir / rundir.BEST_PT)!r} lacks the preprocessing it was trained with")
    model = build_model(cfg.model, tuple(spec["input_shape"]), spec["n_outputs"], spec["model_kind"])
    load_model_state(model, ckpt["model"], run_dir / rundir.BEST_PT)
    model.eval()
    return cfg, model, spec


__all__ = ["RunResult", "train", "resume", "load_run", "build_trainer", "finish"]
