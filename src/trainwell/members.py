"""Members: the K networks one training process advances together (K = 1 for a single run).

Every trainable parameter of every member lives in one flat buffer `flat` of shape (K, P),
a row per member, matrices first (see optim.py: a row is [decayed | not decayed]); the
gradients live in `grad` of the same shape. So the gradient norm, clipping, the optimizer
update and the weight average are a few operations on whole rows, written once for a single
run, a stack of compare runs and an ensemble alike.

Two implementations of the same interface:
- ModuleMembers: any nn.Module. Each member's parameters are views into its row, autograd
  fills the gradient rows. Dropout inside the modules draws from torch's global generator,
  which is swapped per member when K > 1, so each member keeps its own stream.
- MLPMembers: the fast path. It recognises trainwell's MLP (Linear → [BatchNorm1d] →
  activation → [Dropout] blocks and a Linear head) and runs all K members as batched matmuls
  with a hand-written backward: on a small model the CPU time goes to per-operator dispatch,
  which batching and skipping autograd remove. Dropout masks come from each member's own
  generator. Anything else falls back to ModuleMembers (see CAPABILITIES in planning.py).

A "weight set" is either the live weights or their moving average (train.ema_decay):
evaluation, BatchNorm re-estimation and best checkpoints use the set the run evaluates.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from .optim import decays

aten = torch.ops.aten
LossFn = Any  # MemberLoss: (K, B, O) outputs, (K, B, ...) targets → (K,) losses, and value_and_grad


@dataclass(frozen=True)
class Slot:
    """Where one parameter tensor of a member lives in the member's flat row."""

    name: str
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int
    numel: int


def flat_layout(model: nn.Module) -> tuple[list[Slot], int]:
    """Slots of the trainable parameters, decayed ones first; returns (slots, decay_size)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    ordered = [x for x in named if decays(x[1])] + [x for x in named if not decays(x[1])]
    slots, offset = [], 0
    for name, p in ordered:
        if not _dense(p):
            raise ValueError(f"parameter {name} is not a dense tensor; trainwell trains dense parameters only")
        slots.append(Slot(name, tuple(p.shape), tuple(p.stride()), offset, p.numel()))
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


def _view(row: torch.Tensor, slot: Slot) -> torch.Tensor:
    """The slot's part of one member's row, with the parameter's own shape and strides."""
    return row[slot.offset : slot.offset + slot.numel].as_strided(slot.shape, slot.stride)


class Members:
    """The common part: flat buffers, the layout, and the weight average."""

    K: int
    flat: torch.Tensor
    grad: torch.Tensor
    avg_flat: torch.Tensor | None
    slots: list[Slot]
    decay_size: int
    template: nn.Module  # one member's architecture, for state dicts and test-time models

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


# ---- any nn.Module ---------------------------------------------------------------------------


class ModuleMembers(Members):
    engine = "module"

    def __init__(self, models: list[nn.Module], average: bool = False) -> None:
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
        self.rng_states: list[torch.Tensor | None] = [None] * self.K

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
        self, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn, dropout: list[torch.Generator]
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
        losses.sum().backward()  # members are independent: each row's gradient is its own loss's
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

    def copy(self) -> "ModuleMembers":
        """Independent members with the same live weights and buffers (no average): the LR finder's copy."""
        return ModuleMembers([copy.deepcopy(m) for m in self.modules])

    def subset(self, rows: list[int]) -> "ModuleMembers":
        models = [self.modules[r] for r in rows]
        new = ModuleMembers.__new__(ModuleMembers)
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


# ---- the fast path for trainwell's MLP ------------------------------------------------------------

ACT_FORWARD = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh, nn.SiLU: F.silu, nn.GELU: F.gelu}


@dataclass
class Block:
    weight: int  # slot index of the Linear weight
    bias: int
    norm: tuple[int, int] | None  # slot indices of BatchNorm weight and bias
    eps: float
    act: type
    width: int
    module_index: int  # index of the Linear in the Sequential (for buffer names)
    norm_index: int | None


def parse_mlp(model: nn.Module) -> tuple[list[Block], tuple[int, int]] | None:
    """Blocks of a Sequential [Linear, (BatchNorm1d), activation, (Dropout)]* + Linear whose every
    parameter trains; None for any other model (it then trains on the module path)."""
    if not isinstance(model, nn.Sequential) or any(not p.requires_grad for p in model.parameters()):
        return None
    layers = list(model)
    slots, _ = flat_layout(model)
    where = {s.name: i for i, s in enumerate(slots)}
    blocks, i = [], 0
    while i < len(layers) - 1:
        lin = layers[i]
        if not isinstance(lin, nn.Linear) or lin.bias is None:
            return None
        lin_i, i = i, i + 1
        norm, norm_i = None, None
        if isinstance(layers[i], nn.BatchNorm1d):
            n = layers[i]
            if not (n.affine and n.track_running_stats and n.momentum is not None):
                return None
            norm, norm_i, i = n, i, i + 1
        if type(layers[i]) not in ACT_FORWARD or (isinstance(layers[i], nn.GELU) and layers[i].approximate != "none"):
            return None
        act, i = type(layers[i]), i + 1
        if i < len(layers) - 1 and isinstance(layers[i], nn.Dropout):
            i += 1
        blocks.append(
            Block(
                where[f"{lin_i}.weight"],
                where[f"{lin_i}.bias"],
                (where[f"{norm_i}.weight"], where[f"{norm_i}.bias"]) if norm else None,
                norm.eps if norm else 0.0,
                act,
                lin.out_features,
                lin_i,
                norm_i,
            )
        )
    head = layers[-1]
    if i != len(layers) - 1 or not isinstance(head, nn.Linear) or head.bias is None or not blocks:
        return None
    return blocks, (where[f"{len(layers) - 1}.weight"], where[f"{len(layers) - 1}.bias"])


def dropout_rates(model: nn.Module, blocks: list[Block]) -> list[float]:
    """Each block's dropout rate (0 when it has none)."""
    layers = list(model)
    rates = []
    for b in blocks:
        after = b.module_index + (2 if b.norm is None else 3)
        rates.append(layers[after].p if after < len(layers) and isinstance(layers[after], nn.Dropout) else 0.0)
    return rates


class MLPMembers(Members):
    engine = "vectorised"
    BN_MOMENTUM = 0.1  # nn.BatchNorm1d's default, which the module path uses

    def __init__(self, models: list[nn.Module], average: bool = False) -> None:
        parsed = parse_mlp(models[0])
        assert parsed is not None, "MLPMembers needs trainwell's MLP; check parse_mlp first"
        self.blocks, self.head = parsed
        self._init_flat(models, average)
        self.has_batchnorm = any(b.norm is not None for b in self.blocks)
        layers = [list(m) for m in models]
        self.running = [self._stats(layers, b) for b in self.blocks if b.norm is not None]
        self.avg_running = [(rm.clone(), rv.clone()) for rm, rv in self.running] if average else None
        rates = torch.tensor([dropout_rates(m, self.blocks) for m in models], dtype=torch.float32)  # (K, blocks)
        widths = [b.width for b in self.blocks]
        self._set_dropout(rates, widths)

    def _stats(self, layers: list[list[nn.Module]], b: Block) -> tuple[torch.Tensor, torch.Tensor]:
        rm = torch.stack([ls[b.norm_index].running_mean for ls in layers]).contiguous()
        rv = torch.stack([ls[b.norm_index].running_var for ls in layers]).contiguous()
        return rm, rv

    def _set_dropout(self, rates: torch.Tensor, widths: list[int]) -> None:
        """Per-column drop probability and keep scale (K, 1, Σ widths of blocks with dropout)."""
        self.rates = rates
        self.drop_blocks = [j for j in range(len(widths)) if bool((rates[:, j] > 0).any())]
        if not self.drop_blocks:
            self.drop_p = None
            return
        cols = [rates[:, j : j + 1].expand(-1, widths[j]) for j in self.drop_blocks]
        self.drop_p = torch.cat(cols, dim=1).unsqueeze(1).to(self.flat.device)
        self.keep_scale = torch.where(self.drop_p < 1, 1.0 / (1.0 - self.drop_p), torch.zeros_like(self.drop_p))
        self.mask_width = sum(widths[j] for j in self.drop_blocks)

    def _masks(self, batch: int, generators: list[torch.Generator]) -> dict[int, torch.Tensor]:
        """Inverted-dropout masks per block, (K, batch, width): one draw per member from its own generator."""
        if self.drop_p is None:
            return {}
        u = _stack([torch.rand(batch, self.mask_width, generator=g) for g in generators]).to(self.flat.device)
        keep = (u >= self.drop_p) * self.keep_scale
        out, start = {}, 0
        for j in self.drop_blocks:
            w = self.blocks[j].width
            out[j] = keep[:, :, start : start + w]
            start += w
        return out

    def _views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Per-slot views (K, *shape) of a flat buffer; made once per buffer (they follow in-place updates)."""
        cache = self.__dict__.setdefault("_view_cache", {})
        key = (flat.data_ptr(), tuple(flat.shape))
        if key not in cache:
            cache.clear() if len(cache) > 4 else None
            cache[key] = [flat[:, s.offset : s.offset + s.numel].view(self.K, *s.shape) for s in self.slots]
        return cache[key]

    # -- training ------------------------------------------------------------------------------

    def train_step(
        self, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn, dropout: list[torch.Generator]
    ) -> torch.Tensor:
        v = self._views(self.flat)
        masks = self._masks(x.shape[1], dropout)
        h, saved, bn = x, [], 0
        for j, b in enumerate(self.blocks):
            z = torch.baddbmm(v[b.bias].unsqueeze(1), h, v[b.weight].transpose(1, 2))
            stats = None
            if b.norm is not None:
                rm, rv = self.running[bn]
                # one BatchNorm call per member: a call over all members' channels at once
                # rounds differently with K, and a member's numbers must not depend on its partners
                parts = [
                    aten.native_batch_norm(
                        z[k], v[b.norm[0]][k], v[b.norm[1]][k], rm[k], rv[k], True, self.BN_MOMENTUM, b.eps
                    )
                    for k in range(self.K)
                ]
                stats = (z, [p[1] for p in parts], [p[2] for p in parts], rm, rv)
                z, bn = _stack([p[0] for p in parts]), bn + 1
            a = ACT_FORWARD[b.act](z)
            if j in masks:
                a = a * masks[j]
            saved.append((h, z, a, stats))
            h = a
        out = torch.baddbmm(v[self.head[1]].unsqueeze(1), h, v[self.head[0]].transpose(1, 2))
        losses, g = loss_fn.value_and_grad(out, y)  # closed form: no autograd anywhere on this path
        self._backward(g, h, saved, masks, v)
        return losses.detach()

    def _backward(
        self, g: torch.Tensor, last: torch.Tensor, saved: list, masks: dict[int, torch.Tensor], v: list[torch.Tensor]
    ) -> None:
        grads: list[torch.Tensor | None] = [None] * len(self.slots)
        grads[self.head[0]], grads[self.head[1]] = torch.bmm(g.transpose(1, 2), last), g.sum(1)
        g = torch.bmm(g, v[self.head[0]])
        for j in range(len(self.blocks) - 1, -1, -1):
            b, (inp, z, a, stats) = self.blocks[j], saved[j]
            if j in masks:
                g = g * masks[j]
            g = _act_backward(b.act, g, z, a)
            if stats is not None:
                pre, mean, invstd, rm, rv = stats
                parts = [
                    aten.native_batch_norm_backward(
                        g[k], pre[k], v[b.norm[0]][k], rm[k], rv[k], mean[k], invstd[k], True, b.eps, [True, True, True]
                    )
                    for k in range(self.K)
                ]
                g = _stack([p[0] for p in parts])
                grads[b.norm[0]], grads[b.norm[1]] = _stack([p[1] for p in parts]), _stack([p[2] for p in parts])
            grads[b.weight], grads[b.bias] = torch.bmm(g.transpose(1, 2), inp), g.sum(1)
            if j > 0:
                g = torch.bmm(g, v[b.weight])
        torch.cat([t.reshape(self.K, -1) for t in grads], dim=1, out=self.grad)

    # -- evaluation ------------------------------------------------------------------------------

    def _set(self, average: bool) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        if average and self.avg_flat is not None:
            return self.avg_flat, self.avg_running
        return self.flat, self.running

    def _eval_forward(self, x: torch.Tensor, average: bool, calibrate: float | None = None) -> torch.Tensor:
        flat, running = self._set(average)
        v = self._views(flat)
        h, bn = x, 0
        for b in self.blocks:
            w, bias = v[b.weight].transpose(1, 2), v[b.bias].unsqueeze(1)
            z = torch.matmul(h, w) + bias if h.dim() == 2 else torch.baddbmm(bias, h, w)
            if b.norm is not None:
                rm, rv = running[bn]
                gamma, beta = v[b.norm[0]], v[b.norm[1]]
                if calibrate is not None:  # BatchNorm statistics of this chunk folded into the running ones, per member
                    z = _stack(
                        [
                            F.batch_norm(z[k], rm[k], rv[k], gamma[k], beta[k], True, calibrate, b.eps)
                            for k in range(self.K)
                        ]
                    )
                else:
                    z = (z - rm.unsqueeze(1)) * torch.rsqrt(rv.unsqueeze(1) + b.eps) * gamma.unsqueeze(
                        1
                    ) + beta.unsqueeze(1)
                bn += 1
            h = ACT_FORWARD[b.act](z)
        return torch.baddbmm(v[self.head[1]].unsqueeze(1), h, v[self.head[0]].transpose(1, 2))

    @torch.no_grad()
    def outputs(
        self, x: torch.Tensor, batch: int, autocast: Callable, average: bool = True, prepare: Callable = lambda v: v
    ) -> torch.Tensor:
        return torch.cat(
            [self._eval_forward(prepare(x[i : i + batch]), average) for i in range(0, len(x), batch)], dim=1
        )

    def reset_batchnorm(self, average: bool) -> list[float | None]:
        for rm, rv in self._set(average)[1]:
            rm.zero_(), rv.fill_(1.0)
        return []

    def restore_momenta(self, average: bool, momenta: list[float | None]) -> None:
        pass

    @torch.no_grad()
    def calibration_forward(self, x: torch.Tensor, factor: float, average: bool, autocast: Callable) -> None:
        self._eval_forward(x, average, calibrate=factor)

    @torch.no_grad()
    def update_average(self, weight: torch.Tensor) -> None:
        self.avg_flat.lerp_(self.flat, weight)
        for (am, av), (rm, rv) in zip(self.avg_running, self.running):
            am.lerp_(rm, weight), av.lerp_(rv, weight)

    # -- state in the module's own layout -------------------------------------------------------------

    def _buffers(self, k: int, average: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Running mean and variance per BatchNorm layer, in the template's buffer order; the
        batch counters are not tracked here (momentum is fixed), so none are packed."""
        running = self._set(average)[1]
        return [t for rm, rv in running for t in (rm[k], rv[k])], []

    def copy(self) -> "MLPMembers":
        new = self.subset(list(range(self.K)))  # index_select copies every buffer
        new.avg_flat, new.avg_running = None, None
        return new

    def subset(self, rows: list[int]) -> "MLPMembers":
        new = MLPMembers.__new__(MLPMembers)
        new.__dict__.update(self.__dict__)
        new._view_cache = {}
        idx = torch.tensor(rows, device=self.flat.device)
        pick = lambda t: t.index_select(0, idx).contiguous()  # noqa: E731
        new.K = len(rows)
        new.flat, new.grad = pick(self.flat), pick(self.grad)
        new.avg_flat = pick(self.avg_flat) if self.avg_flat is not None else None
        new.running = [(pick(rm), pick(rv)) for rm, rv in self.running]
        new.avg_running = (
            [(pick(rm), pick(rv)) for rm, rv in self.avg_running] if self.avg_running is not None else None
        )
        new._set_dropout(self.rates.index_select(0, idx.cpu()), [b.width for b in self.blocks])
        return new

    def rng_state(self, k: int) -> torch.Tensor | None:
        return None

    def load_rng_state(self, k: int, state: torch.Tensor | None) -> None:
        pass


def _stack(parts: list[torch.Tensor]) -> torch.Tensor:
    """torch.stack, without a copy for a single member."""
    return parts[0].unsqueeze(0) if len(parts) == 1 else torch.stack(parts)


def _act_backward(act: type, g: torch.Tensor, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Gradient through the activation; a is its output before dropout (a = act(z))."""
    if act is nn.ReLU:
        return aten.threshold_backward(g, z, 0.0)
    if act is nn.Tanh:
        return aten.tanh_backward(g, torch.tanh(z))
    if act is nn.SiLU:
        return aten.silu_backward(g, z)
    return aten.gelu_backward(g, z)


def build_members(models: list[nn.Module], average: bool, fast: bool) -> Members:
    """MLPMembers when allowed and the models are trainwell's MLP, else ModuleMembers."""
    layout = [(n, tuple(t.shape)) for n, t in models[0].state_dict().items()]
    if any([(n, tuple(t.shape)) for n, t in m.state_dict().items()] != layout for m in models[1:]):
        raise ValueError("members of one stack must share one architecture (planning.STACK_KEY keeps them apart)")
    if fast and parse_mlp(models[0]) is not None:
        return MLPMembers(models, average)
    return ModuleMembers(models, average)


class MemberLoss:
    """The training and validation loss, per member (K,): mean squared error for regression;
    cross-entropy with per-member label smoothing (K, 1) and optional class weights otherwise
    (a weighted mean over rows, each row weighted by its class's weight). `value_and_grad`
    gives the gradient with respect to the outputs in closed form (no autograd call per step)."""

    def __init__(self, task: str, smoothing: torch.Tensor, class_weight: torch.Tensor | None) -> None:
        self.task, self.smoothing, self.class_weight = task, smoothing, class_weight

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.value_and_grad(out, y, need_grad=False)[0]

    def value_and_grad(
        self, out: torch.Tensor, y: torch.Tensor, need_grad: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.task == "regression":
            err = out - y
            return err.pow(2).mean(dim=(1, 2)), (err * (2.0 / (err.shape[1] * err.shape[2])) if need_grad else None)
        logp = torch.log_softmax(out.float(), dim=-1)
        s = self.smoothing.to(out.device)  # (K, 1)
        nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        per_row = (1 - s) * nll + s * (-logp.mean(-1))
        w = self.class_weight.to(out.device)[y] if self.class_weight is not None else torch.ones_like(per_row)
        total = w.sum(1, keepdim=True)
        losses = (per_row * w).sum(1) / total.squeeze(1)
        if not need_grad:
            return losses, None
        # d per_row / d out = softmax − (1 − s)·onehot − s / classes
        target = torch.zeros_like(logp).scatter_(-1, y.unsqueeze(-1), 1.0) * (1 - s).unsqueeze(-1) + (
            s / logp.shape[-1]
        ).unsqueeze(-1)
        return losses, (logp.exp() - target) * (w / total).unsqueeze(-1)


class CustomLoss:
    """A loss function of one's own, `loss(outputs, targets) -> scalar` for one member's batch,
    applied member by member; its gradient by autograd."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self.fn = fn

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.fn(out[k], y[k]).reshape(()) for k in range(out.shape[0])])

    def value_and_grad(
        self, out: torch.Tensor, y: torch.Tensor, need_grad: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        leaf = out.detach().requires_grad_()
        with torch.enable_grad():
            losses = self(leaf, y)
            (g,) = torch.autograd.grad(losses.sum(), leaf)
        return losses.detach(), g


def member_losses(
    task: str, smoothing: torch.Tensor, class_weight: torch.Tensor | None, custom: Callable | None = None
) -> MemberLoss | CustomLoss:
    return CustomLoss(custom) if custom is not None else MemberLoss(task, smoothing, class_weight)
