"""Tiny experiments: a few hundred delivery rows, a few epochs, one thread."""

from __future__ import annotations

from typing import Any

import pytest
import torch

torch.set_num_threads(1)

TINY_BASE: dict[str, Any] = {
    "data": {"name": "delivery", "n": 300},
    "model": {"kind": "mlp", "hidden": [16, 8], "norm": "none", "dropout": 0.0},
    "optim": {"name": "adam", "lr": 3e-3, "weight_decay": 0.0},
    "schedule": {"name": "none"},
    "train": {"max_epochs": 3, "batch_size": 32, "early_stopping": False, "restore_best": False},
}


def tiny_experiment(**top: Any) -> dict[str, Any]:
    """A raw experiment mapping on TINY_BASE; keyword arguments replace top-level keys."""
    raw: dict[str, Any] = {"name": "tiny", "base": {k: dict(v) for k, v in TINY_BASE.items()}, "seeds": 2}
    raw.update(top)
    return raw


@pytest.fixture
def tiny() -> Any:
    return tiny_experiment
