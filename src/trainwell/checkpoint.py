"""Checkpoints: one versioned dict of plain data, written atomically, read with weights_only.

A file is written to a temporary name in the same folder, flushed and fsynced, then renamed
over the old one, so a crash at any instant leaves the old file or the new one, never a torn
one. Loading uses torch.load(weights_only=True): tensors, numbers, strings, lists and dicts
only, so a crafted pickle cannot run code.
"""

from __future__ import annotations

import math
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write
from .calibration import problem as calibration_problem
from .data.target_scale import STORED as STORED_TRANSFORMS
from .errors import CheckpointError, shown, shown_path
from .models import MODELS

FORMAT = "trainwell"
FORMAT_VERSION = 2  # 2: last.pt holds a list of members (flat optimizer state); best.pt unchanged
BEST, LAST = "best", "last"  # the two kinds: best weights only, and the full resumable state


def atomic_save(payload: dict[str, Any], path: str | Path, durable: bool = True) -> None:
    atomic_write(path, lambda fh: torch.save(payload, fh), durable=durable)


def save_checkpoint(kind: str, body: dict[str, Any], path: str | Path, durable: bool = True) -> None:
    atomic_save({"format": FORMAT, "version": FORMAT_VERSION, "kind": kind, **body}, path, durable)


def load_checkpoint(path: str | Path, kind: str) -> dict[str, Any]:
    """The checkpoint's dict, or a one-line CheckpointError for a missing, torn, unsafe or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if not zipfile.is_zipfile(path):  # torch.save writes zip archives; a torn one loses its directory
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or corrupt (not a complete archive); it cannot be read"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = (str(exc).splitlines() or ["unsafe content"])[0][:160]
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds something other than plain data and was not loaded ({first})"
        ) from None
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        ValueError,
        OSError,
        AttributeError,
        TypeError,
        KeyError,
    ) as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or corrupt ({type(exc).__name__}); it cannot be read"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {str(path)!r} was not written by trainwell")
    if not isinstance(payload.get("version"), int) or payload["version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {payload.get('version')!r}; this trainwell reads "
            f"versions up to {FORMAT_VERSION}"
        )
    if payload.get("kind") != kind:
        raise CheckpointError(f"checkpoint {str(path)!r} is a {payload.get('kind')!r} checkpoint; expected {kind!r}")
    return payload


def fold_cancelled_biases(model: torch.nn.Module, state: dict[str, Any]) -> dict[str, Any]:
    """Weights saved before trainwell's MLP dropped the Linear biases that BatchNorm cancels
    (Linear(bias=False) → BatchNorm1d), made to fit the model as it is now: each such bias is
    folded into the next BatchNorm's running mean, which gives the same outputs in eval mode
    (BatchNorm(Wx + b) with running mean m equals BatchNorm(Wx) with running mean m − b)."""
    mine = model.state_dict()
    folded = dict(state)
    for key in [k for k in state if k.endswith(".bias") and k not in mine]:
        prefix, _, index = key[: -len(".bias")].rpartition(".")
        if not index.isdigit():
            continue
        mean = f"{prefix + '.' if prefix else ''}{int(index) + 1}.running_mean"
        if mean in mine and isinstance(folded.get(mean), torch.Tensor) and isinstance(state[key], torch.Tensor):
            folded[mean] = folded[mean] - folded.pop(key)
    return folded


def load_model_state(model: torch.nn.Module, state: Any, path: str | Path) -> None:
    """load_state_dict(strict), turning a shape or key mismatch into a one-line CheckpointError."""
    try:
        model.load_state_dict(fold_cancelled_biases(model, state) if isinstance(state, dict) else state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        detail = str(exc).replace("\n", " ").replace("\t", "")
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not match the model its config describes: {detail[:200]}"
        ) from None


# ---- the preprocessing stored in best.pt -------------------------------------------------------

SPEC_KEYS = ("task", "input_shape", "n_outputs", "model_kind")
MAX_DIM = 2**20  # one input dimension or the number of outputs: far beyond any real table or image
MAX_INPUTS = 2**26  # inputs of one example (a 4096×4096 RGB image is 2**25.6)


def _is_int(v: Any, low: int = 1, high: int = MAX_DIM) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _numbers(v: Any, n: int, positive: bool = False) -> bool:
    """A list of n finite numbers (each > 0 when `positive`)."""
    return (
        isinstance(v, list)
        and len(v) == n
        and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and (x > 0 or not positive)
            for x in v
        )
    )


def _strings(v: Any, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(isinstance(x, str) for x in v)


def _tabular_problem(spec: dict[str, Any], shape: list[int], task: str) -> str | None:
    """What is wrong with a table's stored features and target scaling (a phrase), or None."""
    n = shape[0]
    if len(shape) != 1 or not _strings(spec.get("feature_names"), n) or not isinstance(spec.get("target_name"), str):
        return f"has feature_names {shown(spec.get('feature_names'))}; expected {n} column names and a target_name"
    if "preprocess" in spec:  # a table read from a file: its fitted transform (data/preprocess.py)
        prep = spec["preprocess"]
        if not (
            isinstance(prep, dict) and isinstance(prep.get("columns"), list) and isinstance(spec.get("embedded"), list)
        ):
            return "has a preprocessing transform that is not a mapping of columns; it was not written by trainwell"
    else:  # standardised features (delivery, data given in memory)
        for key, positive in (("x_mean", False), ("x_std", True)):
            if not _numbers(spec.get(key), n, positive):
                return f"has {key} {shown(spec.get(key))}; expected {n} finite numbers" + (" > 0" if positive else "")
    if task == "regression" and not (
        _numbers([spec.get("y_mean")], 1) and _numbers([spec.get("y_std")], 1, positive=True)
    ):
        mean, std = shown(spec.get("y_mean")), shown(spec.get("y_std"))
        return f"has y_mean {mean}, y_std {std}; expected finite numbers, y_std > 0"
    if spec.get("target_transform", "none") not in STORED_TRANSFORMS:  # absent: saved before the field existed
        allowed = ", ".join(STORED_TRANSFORMS)
        return f"has target_transform {shown(spec['target_transform'])}; expected one of {allowed}"
    return None


def _spec_problem(spec: Any) -> str | None:
    """What is wrong with a stored preprocessing spec (a phrase), or None."""
    if not isinstance(spec, dict):
        return "holds no preprocessing spec"
    missing = [k for k in SPEC_KEYS if k not in spec]
    if missing:
        return f"lacks {missing[0]} in the preprocessing it was trained with"
    task, shape, n_out, kind = spec["task"], spec["input_shape"], spec["n_outputs"], spec.get("kind")
    if task not in ("regression", "classification"):
        return f"has task {shown(task)}; expected regression or classification"
    if not (
        isinstance(shape, list)
        and len(shape) in (1, 3)
        and all(_is_int(d) for d in shape)
        and math.prod(shape) <= MAX_INPUTS
    ):
        return f"has input_shape {shown(shape)}; expected [features] or [channels, height, width] of integers >= 1"
    if not _is_int(n_out) or (task == "regression" and n_out != 1):
        return f"has n_outputs {shown(n_out)}; expected 1 for regression or the number of classes (>= 1)"
    if spec["model_kind"] not in MODELS.names() and not str(spec["model_kind"]).startswith("custom:"):
        return f"has model_kind {shown(spec['model_kind'])}; expected one of {', '.join(MODELS.names())}"
    if task == "classification" and not _strings(spec.get("classes"), n_out):
        return f"has classes {shown(spec.get('classes'))}; expected a list of {n_out} class names"
    if kind == "tabular":
        problem = _tabular_problem(spec, shape, task)
        if problem:
            return problem
    elif kind == "image":
        c = shape[0]
        if len(shape) != 3 or not _numbers(spec.get("mean"), c) or not _numbers(spec.get("std"), c, positive=True):
            mean, std = shown(spec.get("mean")), shown(spec.get("std"))
            return f"has image mean/std {mean}/{std}; expected {c} finite numbers each, std > 0"
    else:
        return f"has kind {shown(kind)}; expected tabular or image"
    return None


def _calibration_problem(spec: dict[str, Any]) -> str | None:
    """What is wrong with a classification's stored probability corrections (calibration.py), or None."""
    if spec["task"] != "classification" or "calibration" not in spec:
        return None
    return calibration_problem(spec["calibration"], spec["n_outputs"])


def validate_spec(spec: Any, path: str | Path) -> dict[str, Any]:
    """The preprocessing stored in a best.pt, checked like a config before a model is built from it:
    a tampered or foreign value is a one-line CheckpointError, not a crash inside torch."""
    problem = _spec_problem(spec) or _calibration_problem(spec)
    if problem:
        raise CheckpointError(f"checkpoint {shown_path(path)} {problem}")
    return spec
