"""Checkpoints: one versioned dict of plain data, written atomically, read with weights_only.

A file is written to a temporary name in the same folder, flushed and fsynced, then renamed
over the old one, so a crash at any instant leaves the old file or the new one, never a torn
one. Loading uses torch.load(weights_only=True): tensors, numbers, strings, lists and dicts
only, so a crafted pickle cannot run code.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write
from .errors import CheckpointError

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
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupt (not a complete archive); it cannot be read")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = (str(exc).splitlines() or ["unsafe content"])[0][:160]
        raise CheckpointError(f"checkpoint {str(path)!r} holds something other than plain data and was not loaded ({first})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, TypeError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupt ({type(exc).__name__}); it cannot be read") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {str(path)!r} was not written by trainwell")
    if not isinstance(payload.get("version"), int) or payload["version"] > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has format version {payload.get('version')!r}; this trainwell reads versions up to {FORMAT_VERSION}")
    if payload.get("kind") != kind:
        raise CheckpointError(f"checkpoint {str(path)!r} is a {payload.get('kind')!r} checkpoint; expected {kind!r}")
    return payload


def load_model_state(model: torch.nn.Module, state: Any, path: str | Path) -> None:
    """load_state_dict(strict), turning a shape or key mismatch into a one-line CheckpointError."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        detail = str(exc).replace("\n", " ").replace("\t", "")
        raise CheckpointError(f"checkpoint {str(path)!r} does not match the model its config describes: {detail[:200]}") from None
