"""Placeholder: vectorised training of same-shape runs (not yet implemented)."""

from __future__ import annotations

from typing import Any


def eligible(cfg: Any) -> bool:
    return False


def group_jobs(pairs: list, workers: int) -> list:
    raise NotImplementedError


def train_stacked(runs: list, dirs: list, threads: int) -> list:
    raise NotImplementedError
