"""Data sets by name. Each loader takes a DataConfig and returns a DataBundle.

Importing this package imports every data module, so that each has registered its data sets in
data/registry.py before a name is looked up."""

from __future__ import annotations

from . import cifar, delivery, folder, images, memory, tabular  # noqa: F401  (register their data sets)
from .bundle import DataBundle
from .preprocess import embeddable_count
from .registry import DATASETS, load_data

ScalingInputs = tuple[int, "int | None"]  # (training rows, columns a numeric embedding would read)


def scaling_inputs(data: DataBundle) -> ScalingInputs:
    """What scaling.scale_configs reads from the data to resolve "auto": its training rows and the
    columns a numeric embedding would read (None for images)."""
    return len(data.x_train), embeddable_count(data.spec, data.input_shape)


__all__ = ["DATASETS", "DataBundle", "ScalingInputs", "load_data", "scaling_inputs"]
