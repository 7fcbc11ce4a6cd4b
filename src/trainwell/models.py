"""Models by name. A builder takes (ModelConfig, input_shape, n_outputs) and returns a Module."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .config import ModelConfig
from .registry import Registry

ModelBuilder = Callable[[ModelConfig, tuple[int, ...], int], nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


def mlp_block(d_in: int, d_out: int, norm: str, activation: str, dropout: float) -> list[nn.Module]:
    """Linear → norm → activation → Dropout: BatchNorm normalises pre-activations, and Dropout
    sits after the activation so BatchNorm never sees dropout-mangled statistics."""
    layers: list[nn.Module] = [nn.Linear(d_in, d_out)]
    if norm == "batch":
        layers.append(nn.BatchNorm1d(d_out))
    elif norm == "layer":
        layers.append(nn.LayerNorm(d_out))
    layers.append(ACTIVATIONS[activation]())
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return layers


class MLP(nn.Sequential):
    """trainwell's MLP: [Linear → norm → activation → Dropout]* + Linear. Training recognises
    this definition and runs it on the vectorised fast path (members.MLPMembers); the
    state_dict keys are those of the plain Sequential."""


@MODELS.register("mlp")
def build_mlp(cfg: ModelConfig, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
    d_in = 1
    for s in input_shape:
        d_in *= s
    layers: list[nn.Module] = [nn.Flatten()] if len(input_shape) > 1 else []
    for d_out in cfg.hidden:
        layers += mlp_block(d_in, d_out, cfg.norm, cfg.activation, cfg.dropout)
        d_in = d_out
    layers.append(nn.Linear(d_in, n_outputs))
    return MLP(*layers)


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], n_outputs: int, default_kind: str) -> nn.Module:
    kind = default_kind if cfg.kind == "auto" else cfg.kind
    return MODELS.get(kind)(cfg, input_shape, n_outputs)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["MODELS", "build_model", "has_batchnorm", "count_parameters", "mlp_block"]


from . import cnn  # noqa: E402,F401  (registers cnn and cnn-plain)
