"""Re-estimate BatchNorm statistics with dropout switched off, before every evaluation.

During training BatchNorm's running statistics are gathered while Dropout is active upstream;
at evaluation Dropout is off, so the activations' variance shifts and the stored statistics no
longer fit ("variance shift"). One forward pass over a fixed slice of the training inputs, in
train mode for BatchNorm and eval mode for Dropout, replaces them with statistics of the
network exactly as it is evaluated. It uses no randomness, so runs stay reproducible and
resumable; on delivery it lowers test MAE by about 0.05 minutes over seeds.

One function for every kind of stack (each provides the forward of one chunk).
"""

from __future__ import annotations

from typing import Callable

import torch

from .stack import ParamStack


@torch.no_grad()
def recalibrate_batchnorm(
    stack: ParamStack,
    x_train: torch.Tensor,
    prepare: Callable,
    max_samples: int,
    batch_size: int,
    autocast: Callable,
    average: bool = True,
) -> bool:
    """Replace the running statistics of the evaluated weights with those of the first
    `max_samples` training inputs (unaugmented). False (nothing changed) without BatchNorm."""
    if not stack.has_batchnorm or max_samples <= 0:
        return False
    x = x_train[:max_samples]
    momenta = stack.reset_batchnorm(average)
    try:
        # near-equal chunks (sizes differ by at most one), each folded in with factor 1/j: the
        # cumulative average of chunk statistics is the statistic of the whole slice, as
        # BatchNorm with momentum None computes it
        for j, part in enumerate(torch.tensor_split(x, -(-len(x) // batch_size)), start=1):
            stack.calibration_forward(prepare(part), 1.0 / j, average, autocast)
    finally:
        stack.restore_momenta(average, momenta)
    return True
