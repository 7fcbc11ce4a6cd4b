"""Optimizers by name, with weight decay only where it belongs.

Weight decay goes to parameters with two or more dimensions (Linear and conv weights); biases
and norm scales/shifts are 1-D and excluded: shrinking them fights what normalisation does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .config import OptimConfig
from .registry import Registry

OptimizerFactory = Callable[[list[dict], OptimConfig, bool], torch.optim.Optimizer]
OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")


@dataclass(frozen=True)
class DecaySplit:
    decay_tensors: int
    decay_params: int
    no_decay_tensors: int
    no_decay_params: int

    def describe(self, weight_decay: float) -> str:
        return (
            f"weight decay {weight_decay:g} on {self.decay_tensors} tensors ({self.decay_params:,} parameters); "
            f"none on {self.no_decay_tensors} tensors ({self.no_decay_params:,} parameters: biases and norm layers)"
        )


def param_groups(model: nn.Module, weight_decay: float, decay_everything: bool = False) -> tuple[list[dict], DecaySplit]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if decay_everything or p.ndim >= 2 else no_decay).append(p)
    split = DecaySplit(len(decay), sum(p.numel() for p in decay), len(no_decay), sum(p.numel() for p in no_decay))
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]], split


def _fused_ok(groups: list[dict]) -> bool:
    """Fused kernels need every parameter floating point and on one device type (CPU or CUDA)."""
    params = [p for g in groups for p in g["params"]]
    return bool(params) and all(p.is_floating_point() for p in params) and len({p.device.type for p in params}) == 1


@OPTIMIZERS.register("sgd")
def _sgd(groups: list[dict], cfg: OptimConfig, fused: bool) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, fused=fused)


@OPTIMIZERS.register("adam")
def _adam(groups: list[dict], cfg: OptimConfig, fused: bool) -> torch.optim.Optimizer:
    # Adam's weight_decay is L2: it is added to the gradient and then rescaled per weight
    return torch.optim.Adam(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, fused=fused)


@OPTIMIZERS.register("adamw")
def _adamw(groups: list[dict], cfg: OptimConfig, fused: bool) -> torch.optim.Optimizer:
    # decoupled decay: lr·λ·θ is subtracted outside the adaptive rescaling
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, fused=fused)


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> tuple[torch.optim.Optimizer, DecaySplit]:
    groups, split = param_groups(model, cfg.weight_decay, cfg.decay_norm_and_bias)
    return OPTIMIZERS.get(cfg.name)(groups, cfg, _fused_ok(groups)), split
