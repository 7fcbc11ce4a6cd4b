"""The CIFAR-10 lesson's CNN: conv blocks of (3×3 conv without bias → BatchNorm2d → ReLU) twice,
then max-pool 2 and Dropout2d; a head Flatten → Linear(head_width) → ReLU → Dropout → Linear.

Dropout2d zeroes whole channels (neighbouring pixels would make up for single dropped ones)
and comes after BatchNorm, so BatchNorm never sees dropout-mangled statistics. `cnn-plain`
is the baseline: convs with bias, no BatchNorm, no dropout.

Pooling halves the image only while it is at least 2 pixels wide, so 8×8 digits go through
three stages (8 → 4 → 2 → 1) and 32×32 CIFAR images end at 4×4 as in the lesson.
"""

from __future__ import annotations

from torch import nn

from .mlp import ACTIVATIONS
from .sections import ModelConfig


def conv_block(c_in: int, c_out: int, norm: bool, activation: str, p_drop: float, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c in (c_in, c_out):
        layers.append(nn.Conv2d(c, c_out, kernel_size=3, padding=1, bias=not norm))  # BN's shift makes a bias redundant
        if norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(ACTIVATIONS[activation]())
    if pool:
        layers.append(nn.MaxPool2d(2))
    if p_drop > 0:
        layers.append(nn.Dropout2d(p_drop))
    return nn.Sequential(*layers)


def conv_net(cfg: ModelConfig, input_shape: tuple[int, ...], n_outputs: int, plain: bool) -> nn.Module:
    if len(input_shape) != 3:
        raise ValueError(f"a CNN needs images (C, H, W), got input shape {input_shape}")
    c, h, w = input_shape
    stages, c_in = [], c
    for c_out in cfg.channels:
        pool = min(h, w) >= 2
        stages.append(
            conv_block(
                c_in,
                c_out,
                norm=not plain,
                activation=cfg.activation,
                p_drop=0.0 if plain else cfg.conv_dropout,
                pool=pool,
            )
        )
        if pool:
            h, w = h // 2, w // 2
        c_in = c_out
    head: list[nn.Module] = [nn.Flatten(), nn.Linear(c_in * h * w, cfg.head_width), ACTIVATIONS[cfg.activation]()]
    if not plain and cfg.dropout > 0:
        head.append(nn.Dropout(cfg.dropout))  # plain Dropout is right after a Linear layer
    head.append(nn.Linear(cfg.head_width, n_outputs))
    return nn.Sequential(nn.Sequential(*stages), nn.Sequential(*head))


def build_cnn(cfg: ModelConfig, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """The upgraded CNN, registered as "cnn" (models.py)."""
    return conv_net(cfg, input_shape, n_outputs, plain=False)


def build_plain_cnn(cfg: ModelConfig, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    """The CIFAR-10 lesson's plain CNN, registered as "cnn-plain" (models.py)."""
    return conv_net(cfg, input_shape, n_outputs, plain=True)
