"""Exponential moving average of the weights (Polyak averaging), evaluated instead of the raw
weights: it smooths out the step-to-step noise of the last epochs, which on small noisy data
is worth more than any schedule tweak.

The decay ramps up as min(decay, (1 + n) / (10 + n)) after n updates, so early averages are
not dominated by the random initial weights. BatchNorm running statistics are averaged too.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay  # per optimizer step; 0.99 averages over roughly the last 100 steps
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.updates = 0
        self._pairs: tuple[list[torch.Tensor], ...] | None = None  # (avg floats, live floats, avg ints, live ints)

    def _tensor_pairs(self, model: nn.Module) -> tuple[list[torch.Tensor], ...]:
        # state_dict() walks every module: build the tensor lists once, they are updated in place
        if self._pairs is None:
            avg, live = self.module.state_dict(), model.state_dict()
            floats = [k for k, v in avg.items() if v.is_floating_point()]
            ints = [k for k, v in avg.items() if not v.is_floating_point()]
            self._pairs = ([avg[k] for k in floats], [live[k] for k in floats], [avg[k] for k in ints], [live[k] for k in ints])
        return self._pairs

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        avg_f, live_f, avg_i, live_i = self._tensor_pairs(model)
        torch._foreach_lerp_(avg_f, live_f, 1.0 - d)
        if avg_i:
            torch._foreach_copy_(avg_i, live_i)  # counters such as num_batches_tracked

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])  # copies into the same tensors: the cache stays valid
        self.updates = int(state["updates"])
