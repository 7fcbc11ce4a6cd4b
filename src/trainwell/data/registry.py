"""The registry of data sets by name. Each loader takes a DataConfig and returns a DataBundle;
the data modules register theirs here, and importing the `trainwell.data` package imports them all."""

from __future__ import annotations

from typing import Callable

from ..registry import Registry
from ..sections import DataConfig
from .bundle import DataBundle

DATASETS: Registry[Callable[[DataConfig], DataBundle]] = Registry("data set")


def load_data(cfg: DataConfig) -> DataBundle:
    return DATASETS.get(cfg.name)(cfg)
