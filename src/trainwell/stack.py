"""The stack: the K networks one training process advances together (K = 1 for a single run).

Every trainable parameter of every member lives in one flat buffer `flat` of shape (K, P),
a row per member, matrices first (see optim.py: a row is [decayed | not decayed]); the
gradients live in `grad` of the same shape. So the gradient norm, clipping, the optimizer
update and the weight average are a few operations on whole rows, written once for a single
run, a stack of compare runs and an ensemble alike.

`ParamStack` is the one interface the loop, recalibration, torchrun and the run book use of a
stack; two implementations:
- ModuleStack (here): any nn.Module. Each member's parameters are views into its row, autograd
  fills the gradient rows. Dropout inside the modules draws from torch's global generator,
  which is swapped per member when K > 1, so each member keeps its own stream.
- MLPStack (fastmlp.py): trainwell's MLP as batched matmuls with a hand-written backward.

A "weight set" is either the live weights or their moving average (train.ema_decay):
evaluation, BatchNorm re-estimation and best checkpoints use the set the run evaluates.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .losses import LossFn
from .optim import decays


@dataclass(frozen=True)
class ParamSlot:
    """Where one parameter tensor of a member lives in the member's flat row."""

    name: str
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int
    numel: int


def flat_layout(model: nn.Module) -> tuple[list[ParamSlot], int]:
    """Slots of the trainable parameters, decayed ones first; returns (slots, decay_size)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    ordered = [x for x in named if decays(x[1])] + [x for x in named if not decays(x[1])]
    slots, offset = [], 0
    for name, p in ordered:
        if not _dense(p):
            raise ValueError(f"parameter {name} is not a dense tensor; trainwell trains dense parameters only")
        slots.append(ParamSlot(name, tuple(p.shape), tuple(p.stride()), offset, p.numel()))
        offset += p.numel()
    decay_size = sum(s.numel for s, (_, p) in zip(slots, ordered) if decays(p))
    return slots, decay_size


def _dense(p: torch.Tensor) -> bool:
    """Non-overlapping and dense: its elements fill exactly `numel` consecutive storage slots."""
    return p.layout == torch.strided and (
        p.numel() == 0 or (p.is_contiguous() or p.is_contiguous(memory_format=torch.channels_last))
    )


def _cat(tensors: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    return (
        torch.cat([t.detach().reshape(-1).to("cpu", dtype) for t in tensors])
        if tensors
        else torch.zeros(0, dtype=dtype)
    )


@torch.no_grad()
def _scatter(tensors: list[torch.Tensor], values: torch.Tensor) -> None:
    start = 0
    for t in tensors:
        t.copy_(values[start : start + t.numel()].view(t.shape))
        start += t.numel()


def _view(row: torch.Tensor, slot: ParamSlot) -> torch.Tensor:
    """The slot's part of one member's row, with the parameter's own shape and strides."""
    return row[slot.offset : slot.offset + slot.numel].as_strided(slot.shape, slot.stride)


class ParamStack(ABC):
    """The flat buffers, the layout and the weight average, and everything the loop,
    recalibration, torchrun and the run book use of a stack (the abstract methods below)."""

    K: int
    flat: torch.Tensor
    grad: torch.Tensor
    avg_flat: torch.Tensor | None
    slots: list[ParamSlot]
    decay_size: int
    template: nn.Module  # one member's architecture, for state dicts and test-time models
    engine: str  # "module" or "vectorised": reported in metrics.json
    has_batchnorm: bool  # whether evaluation re-estimates BatchNorm statistics first
    # set under torchrun: another process's gradient is added into grad, so no row of it is known to be zero
    shared_gradient: bool = False

    def _init_flat(self, models: list[nn.Module], average: bool) -> None:
        self.template = copy.deepcopy(models[0]).cpu()
        self.slots, self.decay_size = flat_layout(models[0])
        self.K = len(models)
        params = [dict(m.named_parameters()) for m in models]
        rows = [
            torch.cat([params[k][s.name].detach().reshape(-1) for s in self.slots]) if self.slots else torch.zeros(0)
            for k in range(self.K)
        ]
        self.flat = torch.stack(rows).contiguous()
        self.grad = torch.zeros_like(self.flat)
        self.avg_flat = self.flat.clone() if average else None

    @property
    def has_average(self) -> bool:
        return self.avg_flat is not None

    # A member's weights travel "packed": its parameter row, its floating-point buffers in one
    # tensor and its integer buffers in another (buffer order: the template's). Three tensors
    # pickle in a fraction of the time of a state dict's dozens.

    def pack(self, k: int, average: bool = True) -> dict[str, torch.Tensor]:
        flat = self.avg_flat if (average and self.avg_flat is not None) else self.flat
        floats, ints = self._buffers(k, average)
        return {
            "params": flat[k].detach().cpu().clone(),
            "floats": _cat(floats, torch.float32),
            "ints": _cat(ints, torch.int64),
        }

    def unpack(self, k: int, packed: dict[str, torch.Tensor], average: bool = False) -> None:
        flat = self.avg_flat if (average and self.avg_flat is not None) else self.flat
        with torch.no_grad():
            flat[k].copy_(packed["params"])
            floats, ints = self._buffers(k, average)
            _scatter(floats, packed["floats"]), _scatter(ints, packed["ints"])

    @property
    def layout(self) -> dict[str, list[int]]:
        """Every parameter's and buffer's shape by name (saved in last.pt), made once."""
        if "_layout" not in self.__dict__:
            self._layout = {name: list(v.shape) for name, v in self.template.state_dict().items()}
        return self._layout

    def packed_state_dict(self, packed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The packed weights in the module's own state_dict layout (what best.pt holds)."""
        state = {s.name: _view(packed["params"], s).clone() for s in self.slots}
        offsets = {"floats": 0, "ints": 0}
        for name, buf in self.template.named_buffers():
            kind = "floats" if buf.is_floating_point() else "ints"
            n = buf.numel()
            if offsets[kind] + n > packed[kind].numel():  # not tracked by this path (the fast path's batch counters)
                state[name] = buf.detach().cpu().clone()
                continue
            state[name] = packed[kind][offsets[kind] : offsets[kind] + n].view(buf.shape).to(buf.dtype).clone()
            offsets[kind] += n
        return {name: state[name] for name in self.template.state_dict()}

    # ---- what each path provides ----------------------------------------------------------------

    @abstractmethod
    def train_step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: LossFn,
        dropout: list[torch.Generator],
        scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Forward and backward of every member on its own batch x[k]; gradients land in
        self.grad (× scale[k], fp16 loss scaling, when given); returns the (K,) losses."""

    @abstractmethod
    def outputs(
        self, x: torch.Tensor, batch: int, autocast: Callable, average: bool = True, prepare: Callable = lambda v: v
    ) -> torch.Tensor:
        """(K, N, O) outputs in eval mode for shared stored inputs x, prepared and run in chunks."""

    @abstractmethod
    def calibration_forward(self, x: torch.Tensor, factor: float, average: bool, autocast: Callable) -> None:
        """One chunk of BatchNorm re-estimation with update factor `factor`."""

    @abstractmethod
    def reset_batchnorm(self, average: bool) -> list[float | None]:
        """Reset the running statistics; returns what restore_momenta puts back."""

    @abstractmethod
    def restore_momenta(self, average: bool, momenta: list[float | None]) -> None: ...

    @abstractmethod
    def update_average(self, weight: torch.Tensor) -> None:
        """avg ← avg + weight·(live − avg) per member (weight (K, 1)); buffers follow."""

    @abstractmethod
    def _buffers(self, k: int, average: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Member k's packed buffers: floating-point ones and integer ones, in the template's order."""

    @abstractmethod
    def copy(self) -> ParamStack:
        """Independent members with the same live weights and buffers (no average): the LR finder's copy."""

    @abstractmethod
    def subset(self, rows: list[int]) -> ParamStack:
        """The given rows as a smaller stack (the members still training)."""

    @abstractmethod
    def rng_state(self, k: int) -> torch.Tensor | None:
        """Member k's stream of torch's global generator (None where dropout has its own generators)."""

    @abstractmethod
    def load_rng_state(self, k: int, state: torch.Tensor | None) -> None: ...


# ---- any nn.Module ---------------------------------------------------------------------------


class ModuleStack(ParamStack):
    engine = "module"

    def __init__(
        self, models: list[nn.Module], average: bool = False, rng_states: list[torch.Tensor] | None = None
    ) -> None:
        """`rng_states`: each member's torch generator state right after it was built (used when K > 1)."""
        self._init_flat(models, average)
        self.modules = models
        self._point(self.modules, self.flat, self.grad)
        self.avg_modules = None
        if average:
            self.avg_modules = [copy.deepcopy(m) for m in models]
            for m in self.avg_modules:
                m.requires_grad_(False)
            self._point(self.avg_modules, self.avg_flat, None)
        self.has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in models[0].modules())
        # each member's stream of torch's global generator (dropout inside its modules); with one
        # member the global generator itself is that stream
        self.rng_states: list[torch.Tensor | None] = (
            list(rng_states) if rng_states is not None and self.K > 1 else [None] * self.K
        )

    def _point(self, modules: list[nn.Module], flat: torch.Tensor, grad: torch.Tensor | None) -> None:
        """Make each module's parameters views of its row (and its gradients views of the gradient row)."""
        for k, m in enumerate(modules):
            named = dict(m.named_parameters())
            for s in self.slots:
                p = named[s.name]
                p.data = _view(flat[k], s)
                if grad is not None:
                    p.grad = _view(grad[k], s)

    def _swap_rng(self, k: int) -> None:
        if self.K > 1:
            state = self.rng_states[k]
            if state is not None:
                torch.set_rng_state(state)

    def _keep_rng(self, k: int) -> None:
        if self.K > 1:
            self.rng_states[k] = torch.get_rng_state()

    def train_step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: LossFn,
        dropout: list[torch.Generator],
        scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Forward and backward of every member on its own batch x[k]; gradients land in self.grad."""
        self.grad.zero_()
        outs = []
        for k, m in enumerate(self.modules):
            m.train()
            self._swap_rng(k)
            outs.append(m(x[k]))
            self._keep_rng(k)
        losses = loss_fn(torch.stack(outs), y)
        scaled = losses if scale is None else losses * scale
        scaled.sum().backward()  # members are independent: each row's gradient is its own loss's
        return losses.detach()

    @torch.no_grad()
    def outputs(
        self, x: torch.Tensor, batch: int, autocast: Callable, average: bool = True, prepare: Callable = lambda v: v
    ) -> torch.Tensor:
        """(K, N, O) outputs in eval mode for shared stored inputs x, prepared and run in chunks."""
        modules = self.avg_modules if (average and self.avg_modules is not None) else self.modules
        out = []
        for m in modules:
            was = m.training
            m.eval()
            parts = []
            for i in range(0, len(x), batch):
                with autocast():
                    parts.append(m(prepare(x[i : i + batch])).float())
            m.train(was)
            out.append(torch.cat(parts))
        return torch.stack(out)

    def batchnorm_layers(self, average: bool) -> list[list[nn.modules.batchnorm._BatchNorm]]:
        modules = self.avg_modules if (average and self.avg_modules is not None) else self.modules
        return [
            [b for b in m.modules() if isinstance(b, nn.modules.batchnorm._BatchNorm) and b.track_running_stats]
            for m in modules
        ]

    @torch.no_grad()
    def calibration_forward(self, x: torch.Tensor, factor: float, average: bool, autocast: Callable) -> None:
        """One chunk of BatchNorm re-estimation: BatchNorm in train mode with update factor `factor`, all else eval."""
        modules = self.avg_modules if (average and self.avg_modules is not None) else self.modules
        for m, layers in zip(modules, self.batchnorm_layers(average)):
            was = m.training
            m.eval()
            for b in layers:
                b.train()
                b.momentum = factor
            with autocast():
                m(x)
            m.train(was)

    def reset_batchnorm(self, average: bool) -> list[float | None]:
        momenta = []
        for layers in self.batchnorm_layers(average):
            for b in layers:
                momenta.append(b.momentum)
                b.reset_running_stats()
        return momenta

    def restore_momenta(self, average: bool, momenta: list[float | None]) -> None:
        it = iter(momenta)
        for layers in self.batchnorm_layers(average):
            for b in layers:
                b.momentum = next(it)

    @torch.no_grad()
    def update_average(self, weight: torch.Tensor) -> None:
        """avg ← avg + weight·(live − avg) per member (weight (K, 1)); buffers follow."""
        self.avg_flat.lerp_(self.flat, weight)
        for k, (m, a) in enumerate(zip(self.modules, self.avg_modules)):
            live, avg = list(m.buffers()), list(a.buffers())
            floats = [(x, y) for x, y in zip(avg, live) if x.is_floating_point()]
            if floats:
                torch._foreach_lerp_([x for x, _ in floats], [y for _, y in floats], float(weight[k]))
            for x, y in zip(avg, live):
                if not x.is_floating_point():
                    x.copy_(y)

    def _buffers(self, k: int, average: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        modules = self.avg_modules if (average and self.avg_modules is not None) else self.modules
        buffers = list(modules[k].buffers())
        return [b for b in buffers if b.is_floating_point()], [b for b in buffers if not b.is_floating_point()]

    def copy(self) -> ModuleStack:
        """Independent members with the same live weights and buffers (no average): the LR finder's copy."""
        return ModuleStack([copy.deepcopy(m) for m in self.modules])

    def subset(self, rows: list[int]) -> ModuleStack:
        models = [self.modules[r] for r in rows]
        new = ModuleStack.__new__(ModuleStack)
        new.template, new.slots, new.decay_size, new.K = self.template, self.slots, self.decay_size, len(rows)
        idx = torch.tensor(rows, device=self.flat.device)
        new.flat, new.grad = self.flat.index_select(0, idx), self.grad.index_select(0, idx)
        new.modules, new.has_batchnorm = models, self.has_batchnorm
        new._point(new.modules, new.flat, new.grad)
        new.avg_flat, new.avg_modules = None, None
        if self.avg_flat is not None:
            new.avg_flat = self.avg_flat.index_select(0, idx)
            new.avg_modules = [self.avg_modules[r] for r in rows]
            new._point(new.avg_modules, new.avg_flat, None)
        new.rng_states = [self.rng_states[r] for r in rows] if len(rows) > 1 else [None]
        if len(rows) == 1 and self.K > 1 and self.rng_states[rows[0]] is not None:
            torch.set_rng_state(self.rng_states[rows[0]])  # a lone member's stream becomes the global one
        return new

    def rng_state(self, k: int) -> torch.Tensor:
        return torch.get_rng_state() if self.K == 1 or self.rng_states[k] is None else self.rng_states[k]

    def load_rng_state(self, k: int, state: torch.Tensor) -> None:
        if self.K == 1:
            torch.set_rng_state(state)
        else:
            self.rng_states[k] = state
