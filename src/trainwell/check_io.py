"""How a model check meets the user: `trainwell check`'s inputs, and trainwell.fit's start lines.

The CLI names a model as MODULE:CALLABLE and a sample by its shape. MODULE is an importable
module (`mypkg.nets`, found from the current directory too) or a Python file (`nets.py`,
`path/to/nets.py`); CALLABLE is a name in it: a class or function called with no arguments, or
an nn.Module instance. Every problem is a one-line ConfigError (exit status 2).
trainwell.fit checks the model on the first rows of its training split, with the run's batch size
and weight-decay settings, shows the findings among the start lines (warnings in quiet mode too)
and records them in metrics.json under "check".
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch
from torch import nn

from .checks import CheckReport, check
from .errors import ConfigError, shown

SAMPLE_ROWS = 4  # BatchNorm in train mode needs 2+ rows; a few more make a batch's shapes plain
DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64}


def _module(name: str) -> ModuleType:
    path = Path(name)
    if name.endswith(".py"):
        if not path.is_file():
            raise ConfigError(f"no Python file {name!r}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules.setdefault(path.stem, module)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return module
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as `python -m` does: modules beside the user are found
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"cannot import module {name!r}: {exc}") from None


def load_model(spec: str) -> nn.Module:
    """The nn.Module that MODULE:CALLABLE names (the callable is called with no arguments)."""
    module_name, colon, attr = spec.rpartition(":")
    if not colon or not module_name or not attr:
        raise ConfigError(
            f"the model must be given as MODULE:CALLABLE (e.g. nets:Net or nets.py:Net), not {shown(spec)}"
        )
    try:
        module = _module(module_name)
    except ConfigError:
        raise
    except Exception as exc:  # the user's module failed while importing: name it, not a traceback
        raise ConfigError(f"importing {module_name!r} failed: {type(exc).__name__}: {_first_line(exc)}") from None
    target = getattr(module, attr, None)
    if target is None:
        raise ConfigError(f"module {module_name!r} has no attribute {attr!r}")
    if isinstance(target, nn.Module):
        return target
    if not callable(target):
        raise ConfigError(f"{spec} is a {type(target).__name__}, not an nn.Module or a callable that returns one")
    try:
        model = target()
    except Exception as exc:
        raise ConfigError(f"calling {spec}() failed: {type(exc).__name__}: {_first_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{spec}() returned a {type(model).__name__}, not an nn.Module")
    return model


def parse_shape(text: str) -> tuple[int, ...]:
    """'3,32,32' or '3x32x32' (one sample's shape, without the batch dimension)."""
    parts = text.replace("x", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or any(s < 1 for s in shape):
        raise ConfigError(f"--input-shape must be positive integers such as 3,32,32 or 8, not {shown(text)}")
    return shape


def sample_batch(shape: tuple[int, ...], dtype: str, rows: int = SAMPLE_ROWS) -> torch.Tensor:
    """Seeded standard-normal values (int64: zeros, valid indices for an embedding)."""
    if dtype not in DTYPES:
        raise ConfigError(f"--input-dtype must be one of {', '.join(DTYPES)}, not {shown(dtype)}")
    if DTYPES[dtype] == torch.int64:
        return torch.zeros((rows, *shape), dtype=torch.int64)
    generator = torch.Generator().manual_seed(0)
    return torch.randn((rows, *shape), generator=generator, dtype=DTYPES[dtype])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:200]


def checked(model: nn.Module, sample: Any, **settings: Any) -> CheckReport:
    """trainwell.check, with a forward pass that fails on the sample turned into one line."""
    try:
        return check(model, sample, **settings)
    except ConfigError:
        raise
    except Exception as exc:
        shape = tuple(sample.shape) if isinstance(sample, torch.Tensor) else "the sample"
        raise ConfigError(
            f"the model's forward pass failed on a batch of shape {shape}: {type(exc).__name__}: {_first_line(exc)}"
        ) from None


def check_command(
    spec: str, input_shape: str, input_dtype: str, batch_size: int | None, train_size: int | None
) -> CheckReport:
    """`trainwell check`: the arguments are checked before the user's code runs."""
    sample = sample_batch(parse_shape(input_shape), input_dtype)
    sizes = {k: v for k, v in (("batch_size", batch_size), ("train_size", train_size)) if v is not None}
    return checked(load_model(spec), sample, **sizes)


def fit_check(model: nn.Module, data: Any, cfg: Any) -> CheckReport | None:
    """The CheckReport of a model about to be trained on `data` (a DataBundle) with `cfg` (a
    RunConfig), or None when its forward pass fails on the sample: training then reports that itself."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    sample = data.inputs(data.x_train[: 2 * SAMPLE_ROWS]).to(device)
    try:
        return check(
            model,
            sample,
            batch_size=cfg.train.batch_size,
            train_size=len(data.x_train),
            weight_decay=cfg.optim.weight_decay,
            decay_norm_and_bias=cfg.optim.decay_norm_and_bias,
        )
    except Exception:
        return None


def check_emit(emit: Callable[..., None], report: CheckReport | None) -> Callable[..., None]:
    """Adds the findings to the start lines; warnings also to the notes, which quiet mode still shows."""
    if report is None or not report.findings:
        return emit

    def emitting(event: str, **payload: Any) -> None:
        if event == "start":
            payload["lines"] = [*payload["lines"], *(f"check: {f.line()}" for f in report.findings)]
            payload["notes"] = [*payload.get("notes", []), *(f"check: {f.line()}" for f in report.warnings)]
        emit(event, **payload)

    return emitting
