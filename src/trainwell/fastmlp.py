"""The fast path for trainwell's MLP: MLPStack.

It recognises trainwell's MLP (Linear → [BatchNorm1d] → activation → [Dropout] blocks and a Linear head; a
Linear before BatchNorm has no bias, whose role BatchNorm's shift takes) and runs all K members with a
hand-written backward (fastblocks.py): no autograd, elementwise work on all members' tensors at once,
gradients written straight into the stack's gradient buffer. Dropout masks come from each member's own
generator. Anything else falls back to stack.ModuleStack (see CAPABILITIES in planning.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

import torch
from torch import nn

from .fastblocks import (
    ACT_FORWARD,
    Block,
    Dropout,
    Members,
    Slots,
    Workspace,
    autocast_dtype,
    block_backward,
    block_forward,
    matmul,
    members_of,
    norm_forward,
    take,
    whole,
)
from .fastembed import embed, embed_backward, parse_front, split_front
from .losses import LossFn
from .stack import ModuleStack, ParamStack, flat_layout


def parse_mlp(model: nn.Module) -> tuple[list[Block], tuple[int, int]] | None:
    """Blocks of a Sequential [Linear, (BatchNorm1d), activation, (Dropout)]* + Linear whose every
    parameter trains, with or without a InputEmbedding in front (fastembed.py); None for any
    other model (it then trains on the module path)."""
    _, body, prefix = split_front(model)
    if not isinstance(body, nn.Sequential) or any(not p.requires_grad for p in model.parameters()):
        return None
    layers = list(body)
    slots, _ = flat_layout(model)
    where = {s.name.removeprefix(prefix): i for i, s in enumerate(slots) if s.name.startswith(prefix)}
    blocks, i = [], 0
    while i < len(layers) - 1:
        lin = layers[i]
        if not isinstance(lin, nn.Linear):
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
                where[f"{lin_i}.bias"] if lin.bias is not None else None,
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
    layers = list(split_front(model)[1])
    rates = []
    for b in blocks:
        after = b.module_index + (2 if b.norm is None else 3)
        rates.append(layers[after].p if after < len(layers) and isinstance(layers[after], nn.Dropout) else 0.0)
    return rates


class MLPStack(ParamStack):
    engine = "vectorised"
    BN_MOMENTUM = 0.1  # nn.BatchNorm1d's default, which the module path uses

    def __init__(self, models: list[nn.Module], average: bool = False) -> None:
        parsed = parse_mlp(models[0])
        assert parsed is not None, "MLPStack needs trainwell's MLP; check parse_mlp first"
        self.blocks, self.head = parsed
        self._init_flat(models, average)
        front = split_front(models[0])[0]
        self.front = parse_front(front, {s.name: i for i, s in enumerate(self.slots)}) if front is not None else None
        self.has_batchnorm = any(b.norm is not None for b in self.blocks)
        layers = [list(split_front(m)[1]) for m in models]
        self.running = [self._stats(layers, b) for b in self.blocks if b.norm is not None]
        self.avg_running = [(rm.clone(), rv.clone()) for rm, rv in self.running] if average else None
        rates = torch.tensor([dropout_rates(m, self.blocks) for m in models], dtype=torch.float32)  # (K, blocks)
        self.dropout = Dropout(rates, [b.width for b in self.blocks], self.flat.device)
        self._written: list[torch.Tensor] | None = None  # the tables' codes of the last backward (fastembed)

    def _stats(self, layers: list[list[nn.Module]], b: Block) -> tuple[torch.Tensor, torch.Tensor]:
        rm = torch.stack([ls[b.norm_index].running_mean for ls in layers]).contiguous()
        rv = torch.stack([ls[b.norm_index].running_var for ls in layers]).contiguous()
        return rm, rv

    def _views(self, flat: torch.Tensor) -> Slots:
        """Per-slot views (K, *shape) of a flat buffer and their member views; made once per buffer (they
        follow in-place updates)."""
        cache = self.__dict__.setdefault("_view_cache", {})
        key = (flat.data_ptr(), tuple(flat.shape))
        if key not in cache:
            cache.clear() if len(cache) > 4 else None
            cache[key] = Slots([flat[:, s.offset : s.offset + s.numel].view(self.K, *s.shape) for s in self.slots])
        return cache[key]

    def _running_members(self) -> list[tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]]:
        """The BatchNorm running statistics' member views, made again only when the stack's change."""
        made = self.__dict__.get("_running_views")
        if made is None or made[0] is not self.running:
            made = self._running_views = (self.running, [(rm.unbind(0), rv.unbind(0)) for rm, rv in self.running])
        return made[1]

    # -- training ------------------------------------------------------------------------------

    def train_step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: LossFn,
        dropout: list[torch.Generator],
        scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        v, work = self._views(self.flat), self._workspace()
        masks = self.dropout.draw(x.shape[1], dropout, self.flat.device, work)
        lookups: list[torch.Tensor] = []
        if self.front is not None:
            x, lookups = embed(self.front, x, v, self.K)
        h, saved, norms = x, [], iter(self._running_members())
        for j, b in enumerate(self.blocks):
            running = next(norms) if b.norm is not None else None
            h, kept = block_forward(b, h, v, masks.get(j), self.dropout.scale.get(j), running, self.BN_MOMENTUM, work)
            saved.append(kept)
        out = matmul(h, v.t(self.head[0]), v.each[self.head[1]])  # fresh: a loss function of one's own may keep it
        losses, g = loss_fn.value_and_grad(out, y)  # closed form: no autograd anywhere on this path
        if scale is not None:  # fp16 loss scaling: the output gradient carries each member's scale
            g = g * scale.view(-1, 1, 1).to(g.dtype)
        self._backward(g, h, saved, masks, v, lookups, work)
        return losses.detach()

    def _workspace(self) -> Workspace:
        """The training step's buffers (fastblocks.Workspace), one set per stack (a subset makes its own)."""
        work = self.__dict__.get("_work")
        if work is None:
            work = self._work = Workspace()
        return work

    def _backward(
        self,
        g: torch.Tensor,
        last: torch.Tensor,
        saved: list,
        masks: dict[int, torch.Tensor],
        v: Slots,
        lookups: list[torch.Tensor],
        work: Workspace,
    ) -> None:
        """Every slot's gradient, written into its view of self.grad."""
        grads, each = self._views(self.grad), g.unbind(0)
        rows = each[0].shape[0]
        matmul([part.t() for part in each], last, out=grads.each[self.head[0]])
        _sum_rows(each, grads.each[self.head[1]])
        g = _head_input_grad(g, each, v, self.head[0], work)
        for j in range(len(self.blocks) - 1, -1, -1):
            b, inp = self.blocks[j], saved[j][0]
            g = block_backward(b, g, saved[j], masks.get(j), self.dropout.scale.get(j), grads)
            matmul([part.t() for part in g], inp, out=grads.each[b.weight])
            if b.bias is not None:
                _sum_rows(g, grads.each[b.bias])
            if j > 0 or self.front is not None:  # the front needs only the embedded columns' share
                mats = v.each[b.weight] if j > 0 else v.cols(b.weight, len(self.front.plain_index))
                into = take(work, ("input", b.weight), (self.K, rows, mats[0].shape[1]), v[b.weight])
                g = matmul(g, mats, out=into)
        if self.front is not None:
            embed_backward(self.front, whole(g), lookups, grads, self._written)
            self._written = None if self.shared_gradient else lookups[: len(self.front.tables)]

    # -- evaluation ------------------------------------------------------------------------------

    def _set(self, average: bool) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        if average and self.avg_flat is not None:
            return self.avg_flat, self.avg_running
        return self.flat, self.running

    def _eval_forward(self, x: torch.Tensor, average: bool, calibrate: float | None = None) -> torch.Tensor:
        """The (K, N, outputs) outputs in eval mode; with `calibrate`, BatchNorm in training mode folding
        this chunk's statistics in with that factor, and nothing computed after the last BatchNorm."""
        flat, running = self._set(average)
        v, work = self._views(flat), self._workspace()
        h, norms = (embed(self.front, x, v, self.K)[0] if self.front is not None else x), iter(running)
        # re-estimating BatchNorm reads nothing after the last BatchNorm: its activation and the head are skipped
        last = (
            max((j for j, b in enumerate(self.blocks) if b.norm is not None), default=-1)
            if calibrate is not None
            else None
        )
        rows = h.shape[-2]
        for j, b in enumerate(self.blocks):
            # the hidden layers' outputs in the workspace too: a chunk's are read before the next chunk's are
            # written, and freed after every evaluation they were faulted in again by the next (~4,400 page
            # faults, +8 ms an evaluation on hpc_data at 5 members)
            into = take(work, ("eval", b.weight), (self.K, rows, b.width), v[b.weight])
            z = matmul(h, v.t(b.weight), v.each[b.bias] if b.bias is not None else None, out=into)
            if b.norm is not None:
                z = _eval_norm(b, z, v, next(norms), calibrate, work)
            if j == last:
                return whole(z)
            h = whole(z).clamp_min_(0.0) if b.act is nn.ReLU else ACT_FORWARD[b.act](whole(z))
        return matmul(h, v.t(self.head[0]), v.each[self.head[1]])  # fresh: the caller keeps every chunk's

    @torch.no_grad()
    def outputs(
        self, x: torch.Tensor, batch: int, autocast: Callable, average: bool = True, prepare: Callable = lambda v: v
    ) -> torch.Tensor:
        with autocast():  # as on the module path: the matmuls in the autocast dtype (fastblocks.matmul)
            parts = [self._eval_forward(prepare(x[i : i + batch]), average) for i in range(0, len(x), batch)]
        return torch.cat(parts, dim=1)

    def reset_batchnorm(self, average: bool) -> list[float | None]:
        for rm, rv in self._set(average)[1]:
            rm.zero_(), rv.fill_(1.0)
        return []

    def restore_momenta(self, average: bool, momenta: list[float | None]) -> None:
        pass

    @torch.no_grad()
    def calibration_forward(self, x: torch.Tensor, factor: float, average: bool, autocast: Callable) -> None:
        with autocast():
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

    def copy(self) -> MLPStack:
        new = self.subset(list(range(self.K)))  # index_select copies every buffer
        new.avg_flat, new.avg_running = None, None
        return new

    def subset(self, rows: list[int]) -> MLPStack:
        new = MLPStack.__new__(MLPStack)
        new.__dict__.update(self.__dict__)
        new._view_cache = {}
        new.__dict__.pop("_work", None)  # its own step buffers
        idx = torch.tensor(rows, device=self.flat.device)
        pick = lambda t: t.index_select(0, idx).contiguous()  # noqa: E731
        new.K = len(rows)
        new.flat, new.grad = pick(self.flat), pick(self.grad)
        new.avg_flat = pick(self.avg_flat) if self.avg_flat is not None else None
        new.running = [(pick(rm), pick(rv)) for rm, rv in self.running]
        new.avg_running = (
            [(pick(rm), pick(rv)) for rm, rv in self.avg_running] if self.avg_running is not None else None
        )
        new.dropout = self.dropout.subset(idx)
        new._written = None  # the gradient rows moved: the next backward clears whole tables
        return new

    def rng_state(self, k: int) -> torch.Tensor | None:
        return None

    def load_rng_state(self, k: int, state: torch.Tensor | None) -> None:
        pass


def _head_input_grad(g: torch.Tensor, each: Sequence[torch.Tensor], v: Slots, slot: int, work: Workspace) -> Members:
    """g @ weight for the head's (K, B, outputs) gradient. With one output it is an outer
    product: one broadcast multiply for all members gives the same bits as K matmuls with an
    inner dimension of 1 (each a single product) in a third of the time; under autocast the
    matmul runs in the autocast dtype, as the module path's."""
    if g.shape[-1] == 1 and autocast_dtype(g) is None:
        return g * v[slot]  # (K, B, 1) x (K, 1, width)
    mats = v.each[slot]
    return matmul(each, mats, out=take(work, ("input", slot), (len(each), g.shape[1], mats[0].shape[1]), v[slot]))


def _sum_rows(g: Members, out: Sequence[torch.Tensor]) -> None:
    """Each member's gradient summed over its rows (a bias gradient), into out[k]."""
    for part, into in zip(members_of(g), out):
        torch.sum(part, 0, out=into)


def _eval_norm(
    b: Block, z: Members, v: Slots, running: tuple, calibrate: float | None, work: Workspace | None = None
) -> Members:
    """BatchNorm in eval mode (one affine pass, in place), or with `calibrate`: in training mode,
    this chunk's statistics folded into the running ones with that factor, per member."""
    if calibrate is not None:
        return norm_forward(b, z, v, running, calibrate, None, work)[0]
    rm, rv = running
    scale = v[b.norm[0]] * torch.rsqrt(rv + b.eps)  # (K, width)
    shift = v[b.norm[1]] - rm * scale
    return torch.addcmul(shift.unsqueeze(1), whole(z), scale.unsqueeze(1), out=whole(z))


def build_stack(
    models: list[nn.Module], average: bool, fast: bool, rng_states: list[torch.Tensor] | None = None
) -> ParamStack:
    """MLPStack when allowed and the models are trainwell's MLP, else ModuleStack (which keeps
    each member's torch generator state, `rng_states`, when K > 1)."""
    layout = [(n, tuple(t.shape)) for n, t in models[0].state_dict().items()]
    if any([(n, tuple(t.shape)) for n, t in m.state_dict().items()] != layout for m in models[1:]):
        raise ValueError("members of one stack must share one architecture (planning.STACK_KEY keeps them apart)")
    if fast and parse_mlp(models[0]) is not None:
        return MLPStack(models, average)
    return ModuleStack(models, average, rng_states)
