"""Data sets by name. Each loader takes a DataConfig and returns a DataBundle."""

from __future__ import annotations

from typing import Callable

from ..config import DataConfig
from ..registry import Registry
from .bundle import DataBundle

DATASETS: Registry[Callable[[DataConfig], DataBundle]] = Registry("data set")


def load_data(cfg: DataConfig) -> DataBundle:
    return DATASETS.get(cfg.name)(cfg)


# the modules below register their data sets on import
from . import cifar, delivery, folder, images, memory, tabular  # noqa: E402,F401

__all__ = ["DATASETS", "DataBundle", "load_data"]
