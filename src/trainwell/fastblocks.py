"""One hidden block of trainwell's MLP on the fast path (fastmlp.MLPStack) — Linear → [BatchNorm]
→ activation → [dropout] — for K members at once: its forward, its hand-written backward and
its dropout masks.

A member's numbers never depend on its partners: every matmul and every BatchNorm runs once per
member (a batched kernel rounds differently with K for some shapes), while the elementwise work
runs on the (K, batch, width) tensors of all members at once, where rounding cannot depend on K.

Dropout reads one random byte per unit: each member fills 64-bit words from its own generator
(8 units a word, an eighth of a float draw each) and a unit drops when its byte is below
round(rate · 256). The rate so becomes a multiple of 1/256 (0.2 → 51/256 = 0.1992) and kept
units are scaled by 256 / (256 − that threshold), so the expected activation is unchanged.
The mask is made in one pass: byte >= threshold written straight into a float tensor (0.24 ms for
5 x 512 x 256 bytes, against 0.49 ms for float(byte) − threshold + 1 clamped to [0, 1] and 0.97 ms for
a bool mask), and applied with float arithmetic.

At the batches of small tables (128-256 rows) a step's cost is as much the dispatch of its ~250
small torch calls as their arithmetic, so nothing is made twice: each member's view of a parameter,
gradient or running statistic (and a weight's transpose) is made once per buffer (Slots), and a
step's outputs, statistics, masks and input gradients go to buffers made on the first step and
overwritten by every later one, with their member views (Workspace, Split). Every call computes
what it computed before, into other memory: the numbers do not change (hpc_data and signal at full
size: the same predictions bit for bit). Dispatched torch ops per 5-member hpc_data step: 1,577 -> ~950;
step time (train_step and update, one thread, measured in one process alternating with the code
before): 0.91x at 5 members and batch 128, 0.97x at batch 256, 0.92x at one member.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

aten = torch.ops.aten

ACT_FORWARD = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh, nn.SiLU: F.silu, nn.GELU: F.gelu}
DROP_LEVELS = 256  # a unit's drop decision reads one random byte: rates are multiples of 1/256
_CPU_WORDS = torch.empty((), dtype=torch.int64)  # dropout's words are drawn on the CPU, as the generators are


@dataclass
class Block:
    weight: int  # slot index of the Linear weight
    bias: int | None  # None: a Linear without bias (before BatchNorm, which would cancel one)
    norm: tuple[int, int] | None  # slot indices of BatchNorm weight and bias
    eps: float
    act: type
    width: int
    module_index: int  # index of the Linear in the Sequential (for buffer names)
    norm_index: int | None


def drop_threshold(rate: float) -> int:
    """Bytes below this drop their unit: round(rate · 256), at least 1 when rate > 0 and at most
    255, so dropout 0.2 drops with probability 51/256 = 0.1992 (kept units scale by 256/205)."""
    return 0 if rate <= 0 else min(DROP_LEVELS - 1, max(1, round(rate * DROP_LEVELS)))


class Dropout:
    """The dropout of a stack's blocks: per member and block with dropout, the byte threshold
    and the keep scale; `draw` makes one step's masks."""

    def __init__(self, rates: torch.Tensor, widths: list[int], device: torch.device) -> None:
        """rates: (K, blocks) drop probabilities as the modules have them."""
        self.rates, self.widths = rates, widths
        self.blocks = [j for j in range(len(widths)) if bool((rates[:, j] > 0).any())]
        self.units_per_row = sum(widths[j] for j in self.blocks)
        below = {j: torch.tensor([drop_threshold(float(p)) for p in rates[:, j]]) for j in self.blocks}
        self.below = {j: b.to(torch.uint8).view(-1, 1, 1).to(device) for j, b in below.items()}  # keep: byte >= it
        self.scale = {
            j: (DROP_LEVELS / (DROP_LEVELS - b).double()).float().view(-1, 1).to(device) for j, b in below.items()
        }

    def subset(self, rows: torch.Tensor) -> Dropout:
        return Dropout(self.rates.index_select(0, rows.cpu()), self.widths, rows.device)

    def draw(
        self, batch: int, generators: list[torch.Generator], device: torch.device, work: Workspace | None = None
    ) -> dict[int, torch.Tensor]:
        """Keep masks (K, batch, width) of 0.0 and 1.0 per block with dropout, the same for a
        member alone or in any stack: each member draws the same words from its own generator.
        work: where the words and masks go (None: fresh tensors)."""
        if not self.blocks:
            return {}
        K, units = len(generators), batch * self.units_per_row
        words = take(work, ("words",), (K, -(-units // 8)), _CPU_WORDS)
        for row, g in zip(words, generators):
            row.random_(-(2**63), None, generator=g)  # the full 64-bit range: every byte uniform
        units_bytes = words.whole.view(torch.uint8)[:, :units].to(device)
        masks, start = {}, 0
        for j in self.blocks:
            w = self.widths[j]
            part = units_bytes[:, start * batch : (start + w) * batch].view(-1, batch, w)
            masks[j] = torch.ge(part, self.below[j], out=take(work, ("mask", j), part.shape, part, torch.float32).whole)
            start += w
        return masks


Members = torch.Tensor | Sequence[torch.Tensor]  # (K, ...) or its K member views (made once where reused)


class Split(tuple):
    """A (K, ...) tensor's K member views, made once, with the tensor itself as `.whole`."""

    whole: torch.Tensor

    def __new__(cls, whole: torch.Tensor) -> Split:
        made = super().__new__(cls, whole.unbind(0))
        made.whole = whole
        return made


def whole(t: Members) -> torch.Tensor:
    return t.whole if isinstance(t, Split) else t


class Workspace:
    """A training step's buffers (each block's outputs, BatchNorm statistics, masks, input
    gradients), made on the first step of their shape and overwritten by every later one, with
    their member views: a fresh tensor and its unbind per use were ~40 dispatches a step. Nothing
    in it outlives its step: the outputs handed to the loss, the losses and the embedding's codes
    are fresh tensors."""

    LIMIT = 256 * 2**20  # bytes kept at most; beyond it a buffer is made fresh each time (a huge eval_batch_size)

    def __init__(self) -> None:
        self.made: dict[tuple, Split] = {}
        self.kept = 0  # bytes

    def take(self, name: tuple, shape: tuple[int, ...], like: torch.Tensor, dtype: torch.dtype | None = None) -> Split:
        key = (name, shape, dtype or like.dtype, like.device)
        found = self.made.get(key)
        if found is None:
            if len(self.made) > 64:  # shapes seen before (a pass's last batch, fewer members) are dropped
                self.made.clear()
                self.kept = 0
            found = Split(like.new_empty(shape, dtype=dtype))
            size = found.whole.numel() * found.whole.element_size()
            if self.kept + size <= self.LIMIT:
                self.made[key], self.kept = found, self.kept + size
        return found


def take(
    work: Workspace | None, name: tuple, shape: tuple[int, ...], like: torch.Tensor, dtype: torch.dtype | None = None
) -> Split:
    """The workspace's buffer, or outside training (work None) a fresh tensor."""
    return work.take(name, shape, like, dtype) if work is not None else Split(like.new_empty(shape, dtype=dtype))


class Slots:
    """A flat buffer's per-slot views: whole (K, *shape), `v[slot]`, and per member, made once per
    buffer and reused every step. Each unbind or transpose is a dispatch of its own: at batch 128 the
    ~100 a step made them again cost about as much as a member's matmuls (hpc_data, 5 members)."""

    def __init__(self, whole: list[torch.Tensor]) -> None:
        self.whole = whole
        self.each = [t.unbind(0) for t in whole]
        self._t: dict[int, tuple[torch.Tensor, ...]] = {}
        self._cols: dict[tuple[int, int], tuple[torch.Tensor, ...]] = {}

    def __getitem__(self, slot: int) -> torch.Tensor:
        return self.whole[slot]

    def t(self, slot: int) -> tuple[torch.Tensor, ...]:
        """Each member's matrix of that slot, transposed."""
        if slot not in self._t:
            self._t[slot] = tuple(m.t() for m in self.each[slot])
        return self._t[slot]

    def cols(self, slot: int, start: int) -> tuple[torch.Tensor, ...]:
        """Each member's matrix of that slot from column `start` on."""
        if (slot, start) not in self._cols:
            self._cols[slot, start] = tuple(m[:, start:] for m in self.each[slot])
        return self._cols[slot, start]


def matmul(a: Members, b: Members, bias: Members | None = None, out: Members | None = None) -> Members:
    """a @ b (+ bias) for every member, one mm per member: a is (K, n, m), K (n, m), or (n, m)
    shared by all members; b is (K, m, p) or K (m, p), bias (K, p) or K (p,); the result (K, n, p)
    goes to `out` when given (a tensor whose [k] is a contiguous (n, p), or K such matrices: a
    gradient buffer's views), which is returned."""
    K = len(b)
    shared = isinstance(a, torch.Tensor) and a.dim() == 2
    one = b if isinstance(b, torch.Tensor) else b[0]
    out = one.new_empty(K, (a if shared else a[0]).shape[0], one.shape[-1]) if out is None else out
    low = autocast_dtype(one)
    if low is not None:
        return _matmul_cast(a, b, bias, out, low, shared)
    # unbind: one call for K views where indexing costs K (the dispatch is the cost at small batches)
    rows, mats, outs = [a] * K if shared else members_of(a), members_of(b), members_of(out)
    if bias is None:
        for k in range(K):
            torch.mm(rows[k], mats[k], out=outs[k])
    else:
        for k, shift in enumerate(members_of(bias)):
            torch.addmm(shift, rows[k], mats[k], out=outs[k])
    return out


def autocast_dtype(t: torch.Tensor) -> torch.dtype | None:
    """The dtype autocast gives matmuls on t's device (bfloat16, float16), or None where it is off."""
    kind = t.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None


def _matmul_cast(
    a: Members, b: Members, bias: Members | None, out: Members, dtype: torch.dtype, shared: bool
) -> Members:
    """matmul under autocast: the products in `dtype`, written into the float32 `out`. mm's out=
    form is not autocast-eligible (it would run in float32), so the operands are cast here, once
    for all members. Only the matmuls change precision: the bias is added in float32, and the
    elementwise work, BatchNorm, the loss, the weights and their gradients stay float32."""
    K = len(b)
    low = a.to(dtype) if isinstance(a, torch.Tensor) else [part.to(dtype) for part in a]
    mats = b.to(dtype).unbind(0) if isinstance(b, torch.Tensor) else [m.to(dtype) for m in b]
    rows, outs = [low] * K if shared else members_of(low), members_of(out)
    shifts = members_of(bias) if bias is not None else [None] * K
    for k in range(K):
        product = torch.mm(rows[k], mats[k])
        if shifts[k] is None:
            outs[k].copy_(product)
        else:
            torch.add(product, shifts[k], out=outs[k])
    return out


def members_of(t: Members) -> Sequence[torch.Tensor]:
    return t.unbind(0) if isinstance(t, torch.Tensor) else t


def block_forward(
    b: Block,
    h: Members,
    v: Slots,
    mask: torch.Tensor | None,
    scale: torch.Tensor | None,
    running: tuple[Members, Members] | None,
    momentum: float,
    work: Workspace | None = None,
) -> tuple[Members, tuple]:
    """Block b's output for input h (K, B, in) and what its backward keeps. mask: (K, B, width)
    keep mask or None; scale: (K, 1) keep scale; running: the BatchNorm running statistics
    (or their member views), updated in place; work: where the outputs go (None: fresh tensors)."""
    K, B = len(v.each[b.weight]), whole(h).shape[-2]
    bias = v.each[b.bias] if b.bias is not None else None
    pre = matmul(h, v.t(b.weight), bias, out=take(work, ("pre", b.weight), (K, B, b.width), v[b.weight]))
    folded = _folds(b, mask)
    stats = None
    if running is not None:
        pre, stats = norm_forward(b, pre, v, running, momentum, scale if folded else None, work)
    z = whole(pre)
    if b.act is nn.ReLU:  # in place: the backward needs only the output (> 0 where the gradient passes)
        z.clamp_min_(0.0)
        if mask is not None:
            z.mul_(mask) if folded else z.mul_(mask).mul_(scale.unsqueeze(-1))
        a = pre  # the same tensor, with its member views
    else:
        a = ACT_FORWARD[b.act](z)
        a = a if mask is None else a.mul_(mask).mul_(scale.unsqueeze(-1))
    return a, (h, z, whole(a), stats)


def _folds(b: Block, mask: torch.Tensor | None) -> bool:
    """Whether the keep scale rides on the BatchNorm's weight and bias: relu(s·y) = s·relu(y), s > 0."""
    return mask is not None and b.norm is not None and b.act is nn.ReLU


def norm_forward(
    b: Block,
    z: Members,
    v: Slots,
    running: tuple,
    momentum: float,
    scale: torch.Tensor | None,
    work: Workspace | None = None,
) -> tuple[Split, tuple]:
    """BatchNorm in training mode, per member into one output; `scale` (K, 1): a keep scale folded in;
    running: the running mean and variance, (K, width) each or their member views."""
    zs = members_of(z)
    K, first = len(zs), zs[0]
    if scale is not None:
        gammas, betas = (take(work, ("scaled", slot), (K, b.width), first) for slot in b.norm)
        for slot, into in zip(b.norm, (gammas, betas)):
            torch.mul(v[slot], scale, out=into.whole)
    else:
        gammas, betas = (v.each[slot] for slot in b.norm)
    out = take(work, ("norm", b.norm[0]), (K, *first.shape), first)
    means, invstds = (take(work, (kind, b.norm[0]), (K, b.width), first) for kind in ("mean", "invstd"))
    rm, rv = (members_of(t) for t in running)
    for z_k, out_k, mean_k, invstd_k, gamma_k, beta_k, rm_k, rv_k in zip(
        zs, out, means, invstds, gammas, betas, rm, rv
    ):
        aten.native_batch_norm.out(
            z_k, gamma_k, beta_k, rm_k, rv_k, True, momentum, b.eps, out=out_k, save_mean=mean_k, save_invstd=invstd_k
        )
    return out, (zs, means, invstds, gammas)  # member by member, for the backward


def block_backward(
    b: Block,
    g: Members,
    kept: tuple,
    mask: torch.Tensor | None,
    scale: torch.Tensor | None,
    grads: Slots,
) -> Members:
    """From the gradient of block b's output (K, B, width) to that of its Linear's output
    (batched, or per member after a BatchNorm); BatchNorm's weight and bias gradients are
    written into `grads` (per-slot views of the gradient buffer). g is overwritten."""
    _, pre, a, stats = kept
    folded = _folds(b, mask)
    if b.act is nn.ReLU:  # a > 0 exactly where the unit was kept and its input was positive
        flat = whole(g)
        aten.threshold_backward.grad_input(flat, a, 0.0, grad_input=flat)  # in place: g is this block's alone
        if mask is not None and not folded:
            flat.mul_(scale.unsqueeze(-1))
    else:
        g = whole(g) if mask is None else whole(g).mul(mask).mul_(scale.unsqueeze(-1))
        g = act_backward(b.act, g, pre)
    if stats is None:
        return g
    parts, d_gammas, d_betas = [], [], []
    for g_k, z_k, mean_k, invstd_k, gamma_k in zip(members_of(g), *stats):
        dz, d_gamma, d_beta = aten.native_batch_norm_backward(
            g_k, z_k, gamma_k, None, None, mean_k, invstd_k, True, b.eps, [True, True, True]
        )
        parts.append(dz), d_gammas.append(d_gamma), d_betas.append(d_beta)
    for slot, found in zip(b.norm, (d_gammas, d_betas)):
        if folded:  # the forward used gamma·s and beta·s
            torch.mul(torch.stack(found), scale, out=grads[slot])
        else:
            torch.stack(found, out=grads[slot])
    return parts


def act_backward(act: type, g: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Gradient through the activation at its input z."""
    if act is nn.ReLU:
        return aten.threshold_backward(g, z, 0.0)
    if act is nn.Tanh:
        return aten.tanh_backward(g, torch.tanh(z))
    if act is nn.SiLU:
        return aten.silu_backward(g, z)
    return aten.gelu_backward(g, z)
