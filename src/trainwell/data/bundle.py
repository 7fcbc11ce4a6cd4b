"""DataBundle: a data set held as whole tensors, split three ways, plus how to prepare inputs.

Batches are gathered by indexing these tensors; there is no per-sample Dataset/DataLoader.
`spec` is plain data (lists, numbers, strings) saved into checkpoints so that evaluate and
predict apply exactly the preprocessing the model was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .target_scale import TargetScale

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class DataBundle:
    task: str  # "regression" or "classification"
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    input_shape: tuple[int, ...]  # one sample's shape, e.g. (4,) or (3, 32, 32)
    n_outputs: int  # 1 for regression, number of classes for classification
    default_model: str = "mlp"  # what model.kind "auto" means for this data
    classes: list[str] | None = None  # class names, index = label
    feature_names: list[str] | None = None
    target_name: str | None = None
    target_std: float = 1.0  # regression: targets are standardised; × this gives original units
    target_mean: float = 0.0
    target_transform: str = "none"  # regression: "log1p" when the network learns log(1 + target) (target_scale.py)
    spec: dict[str, Any] = field(default_factory=dict)  # plain data describing the preprocessing
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None  # stored tensor → float model input
    augment: Augment | None = None  # training batches only, whole batch at once
    notes: list[str] = field(
        default_factory=list
    )  # what loading inferred (task, column roles, warnings), shown before training

    @property
    def target_scale(self) -> TargetScale:
        """How standardised regression outputs map to the target's units (metrics, predictions)."""
        return TargetScale(self.target_mean, self.target_std, self.target_transform)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return self.prepare(x) if self.prepare is not None else x

    def to(self, device: torch.device) -> "DataBundle":
        for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
            setattr(self, name, getattr(self, name).to(device))
        return self
