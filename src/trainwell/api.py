"""Your own network and your own data: `trainwell.fit`, `resume`, `load_weights`, `register_model`.

`fit(model, train, val, test)` trains any nn.Module with the whole recipe (AdamW without decay on
1-D parameters, schedules, clipping, early stopping with best-weight restore, BatchNorm
re-estimation, EMA, the run directory, exact resume). The module is trained in place and holds
the best weights afterwards. The run directory keeps weights and state as plain data; the
architecture stays the user's, so resume and load_weights take the model again (as Lightning does).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from . import rundir
from .check_io import check_emit, fit_check
from .checkpoint import BEST, LAST, load_checkpoint
from .compose import compose
from .data.memory import NAME as MEMORY
from .data.memory import memory_bundle
from .errors import CheckpointError, ConfigError, DataError
from .layers import merge
from .models import MODELS
from .optim import decays
from .outputs import predict_outputs
from .progress import Progress
from .run_config import RunConfig
from .runner import RunResult
from .runner import resume as resume_run
from .runner import train as train_run

Metric = Callable[[torch.Tensor, torch.Tensor], float]
SHOWN_NAMES = 8  # parameter names quoted in the weight-decay audit


def fit_config(config: RunConfig | dict[str, Any] | None, task: str, quiet: bool | None = None) -> RunConfig:
    """The config of a fit: the one given (named "fit" unless it has a name) on data in memory."""
    raw = config.to_dict() if isinstance(config, RunConfig) else copy.deepcopy(config or {})
    return compose(base=merge({"name": "fit"}, raw), sections={"data": {"name": MEMORY, "task": task}}, quiet=quiet)


def check_inputs(model: nn.Module, data: Any) -> None:
    """Refuse, in one line, a model that cannot read the prepared inputs (a table's text and date
    columns become several numeric ones), naming how many it must take; nothing is written yet."""
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(data.x_train[:2])
    except (RuntimeError, ValueError, TypeError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:150]
        shape = "×".join(map(str, data.input_shape))
        names = data.feature_names or []
        shown = f" ({', '.join(names[:6])}{', ...' if len(names) > 6 else ''})" if names else ""
        raise DataError(
            f"the model cannot take the prepared inputs: each sample is {shape} numbers{shown}; "
            f"build its first layer for that ({first})"
        ) from None
    finally:
        model.train(was_training)


def metric_emit(
    emit: Callable[..., None], model: nn.Module, data: Any, metric: Metric | None, batch: int
) -> Callable[..., None]:
    """Adds val_<name> of a custom metric to each history row before the row is shown or logged."""
    if metric is None:
        return emit
    name = f"val_{getattr(metric, '__name__', 'metric')}"

    def emitting(event: str, **payload: Any) -> None:
        if event == "epoch_end":
            payload["row"][name] = custom_metric(model, data, data.x_val, data.y_val, metric, batch)
        emit(event, **payload)

    return emitting


def audit_emit(emit: Callable[..., None], model: nn.Module, cfg: RunConfig) -> Callable[..., None]:
    """Adds to the start lines which of the user's own parameters get no weight decay."""
    if cfg.optim.decay_norm_and_bias:
        return emit
    names = [n for n, p in model.named_parameters() if p.requires_grad and not decays(p)]
    shown = ", ".join(names[:SHOWN_NAMES]) + (f", ... ({len(names)} in all)" if len(names) > SHOWN_NAMES else "")

    def emitting(event: str, **payload: Any) -> None:
        if event == "start" and names:
            payload["lines"] = [*payload["lines"], f"no weight decay on (fewer than 2 dimensions): {shown}"]
        emit(event, **payload)

    return emitting


def custom_metric(model: nn.Module, data: Any, x: torch.Tensor, y: torch.Tensor, metric: Metric, batch: int) -> float:
    """metric(outputs, targets): regression in the target's own units; classification logits and label indices."""
    out = predict_outputs(model, data, x, batch, lambda: torch.autocast("cpu", enabled=False))
    if data.task == "regression":
        out, y = data.target_scale.to_original(out), data.target_scale.to_original(y)
    return float(metric(out, y))


def fit(
    model: nn.Module,
    train: Any,
    val: Any = None,
    test: Any = None,
    *,
    task: str = "auto",
    target: str | None = None,
    config: RunConfig | dict[str, Any] | None = None,
    out: str | Path | None = None,
    loss: nn.Module | Callable | None = None,
    metric: Metric | None = None,
    quiet: bool | None = None,
) -> RunResult:
    """Train `model` on in-memory data with the recipe; returns the RunResult trainwell.train returns.

    train/val/test: (x, y) tensors or arrays, a DataFrame with `target=` (or a (DataFrame, target)
    pair), or a torch Dataset of (x, y). A missing val or test split is split off train
    (data.val_fraction, data.test_fraction). `loss(outputs, targets)` replaces MSE/cross-entropy
    (regression targets arrive standardised); `metric(outputs, targets)` is added to the history
    as val_<name> and to the metrics as test_<name>.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    cfg = fit_config(config, task, quiet)
    data = memory_bundle(train, val, test, cfg.data.task, target, cfg.data, cfg.train.seed)
    cfg = compose(base=cfg, sets={"data.task": data.task})  # config.yaml records what "auto" decided
    check_inputs(model, data)
    run_dir = rundir.new_run_dir(out, cfg.name)
    report = fit_check(model, data, cfg)  # before training touches the model: its modes as the user left them
    shown = audit_emit(check_emit(Progress(cfg.train.quiet), report), model, cfg)  # the findings come last
    emit = metric_emit(
        shown, model, data, metric, cfg.train.eval_batch_size
    )  # trainers' loggers are added by runner.train
    result = train_run(cfg, out=run_dir, emit=emit, model=model, data=data, loss_fn=loss)
    return finish_fit(result, emit, model, data, metric, cfg, report)


def finish_fit(
    result: RunResult,
    emit: Any,
    model: nn.Module,
    data: Any,
    metric: Metric | None,
    cfg: RunConfig,
    report: Any = None,
) -> RunResult:
    if report is not None and result.metrics:  # a finished run: metrics.json keeps the model check's findings
        result.metrics["check"] = report.to_dicts()
        rundir.write_json(result.run_dir / rundir.METRICS, result.metrics)
    if metric is not None and result.metrics:
        name = f"test_{getattr(metric, '__name__', 'metric')}"
        result.metrics[name] = custom_metric(model, data, data.x_test, data.y_test, metric, cfg.train.eval_batch_size)
        rundir.write_json(result.run_dir / rundir.METRICS, result.metrics)
    return result


def first_difference(model: nn.Module, state: dict[str, Any]) -> str | None:
    """Names the first parameter or buffer where `model` and saved weights (tensors, or their
    shapes as lists: last.pt's layout) disagree, or None."""
    mine = model.state_dict()
    shape = lambda v: tuple(v.shape) if isinstance(v, torch.Tensor) else tuple(v)  # noqa: E731
    for key, value in mine.items():
        if key not in state:
            return f"{key!r} is in the model but not in the checkpoint"
        if shape(state[key]) != tuple(value.shape):
            return f"{key!r} has shape {tuple(value.shape)} in the model but {shape(state[key])} in the checkpoint"
    extra = next((k for k in state if k not in mine), None)
    return f"{extra!r} is in the checkpoint but not in the model" if extra else None


def _state(run_dir: Path, kind: str) -> dict[str, Any]:
    name = rundir.BEST_PT if kind == BEST else rundir.LAST_PT
    return load_checkpoint(Path(run_dir) / name, kind)


def check_model(model: nn.Module, ckpt: dict[str, Any], where: Path) -> None:
    diff = first_difference(model, ckpt["model"] if "model" in ckpt else ckpt.get("layout", {}))
    if diff:
        raise CheckpointError(f"the model does not match the weights in {str(where)!r}: {diff}")


def load_weights(run_dir: str | Path, model: nn.Module) -> nn.Module:
    """Load a run's best weights into `model` (the same architecture); returns the model in eval mode."""
    ckpt = _state(Path(run_dir), BEST)
    check_model(model, ckpt, Path(run_dir) / rundir.BEST_PT)
    model.load_state_dict(ckpt["model"])
    return model.eval()


def resume(
    run_dir: str | Path,
    overrides: dict[str, Any] | None = None,
    quiet: bool | None = None,
    *,
    model: nn.Module | None = None,
    train: Any = None,
    val: Any = None,
    test: Any = None,
    target: str | None = None,
    loss: nn.Module | Callable | None = None,
    metric: Metric | None = None,
) -> RunResult:
    """Continue an interrupted run. A run of trainwell.fit takes its model again, and its data when
    they were given in memory (checked against a fingerprint of the training data)."""
    if model is None:
        return resume_run(run_dir, overrides, quiet)
    run_dir = Path(run_dir)
    ckpt = _state(run_dir, LAST)
    check_model(model, ckpt, run_dir / rundir.LAST_PT)
    cfg = RunConfig.from_dict(ckpt["config"])
    given: dict[str, Any] = {"model": model, "loss_fn": loss}
    data = None
    if cfg.data.name == MEMORY:
        if train is None:
            raise ConfigError(
                "this run was trained on data given in memory: pass them again, trainwell.resume(run_dir, "
                "model=..., train=..., val=..., test=...)"
            )
        data = memory_bundle(train, val, test, cfg.data.task, target, cfg.data, cfg.train.seed)
        if data.spec["data_fingerprint"] != ckpt["spec"].get("data_fingerprint"):
            raise CheckpointError(
                f"the training data given differ from those the run in {str(run_dir)!r} was trained on"
            )
        given["data"] = data
    emit = (
        metric_emit(Progress(cfg.train.quiet), model, data, metric, cfg.train.eval_batch_size)
        if data
        else Progress(cfg.train.quiet)
    )
    result = resume_run(run_dir, overrides, quiet, emit=emit, **given)
    return finish_fit(result, emit, model, data, metric if data else None, cfg)


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: configs and trainwell.train can then say `model.kind: name`. The decorated class
    or function is called as builder(input_shape, n_outputs) and returns an nn.Module."""

    def add(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.register(name)(lambda _cfg, input_shape, n_outputs: builder(tuple(input_shape), n_outputs))
        return builder

    return add


__all__ = ["fit", "resume", "load_weights", "register_model"]
