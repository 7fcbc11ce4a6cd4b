"""Shared fixtures: tiny, fast configs (CPU, one thread, a few hundred rows)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

torch.set_num_threads(1)

TINY: dict[str, Any] = {
    "name": "tiny",
    "data": {"name": "delivery", "n": 400},
    "model": {"hidden": [16, 8], "dropout": 0.1},
    "optim": {"name": "adamw", "lr": 3e-3},
    "schedule": {"name": "none"},
    "train": {"max_epochs": 4, "batch_size": 32, "patience": 3, "quiet": True},
}


def tiny_config(**sections: dict[str, Any]) -> dict[str, Any]:
    """TINY with some fields replaced: tiny_config(train={"max_epochs": 2})."""
    cfg = copy.deepcopy(TINY)
    for section, fields in sections.items():
        if isinstance(fields, dict):
            cfg.setdefault(section, {}).update(fields)
        else:
            cfg[section] = fields
    return cfg


@pytest.fixture
def tiny() -> Any:
    return tiny_config


@pytest.fixture(autouse=True)
def _work_in_tmp_path(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own temporary folder, so a default output (runs/NAME-TIMESTAMP,
    reports/NAME) never lands in the checkout."""
    monkeypatch.chdir(tmp_path)
