"""Data sets by name. Each loader takes a DataConfig and returns a DataBundle.

Importing this package imports every data module, so that each has registered its data sets in
data/registry.py before a name is looked up."""

from __future__ import annotations

from . import cifar, delivery, folder, images, memory, tabular  # noqa: F401  (register their data sets)
from .bundle import DataBundle
from .registry import DATASETS, load_data

__all__ = ["DATASETS", "DataBundle", "load_data"]
