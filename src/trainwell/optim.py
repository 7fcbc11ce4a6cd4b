"""Optimizers described by data, with weight decay only where it belongs.

Weight decay goes to parameters with two or more dimensions (Linear and conv weights); biases
and norm scales/shifts are 1-D and excluded: shrinking them fights what normalisation does.
`decay_split` is the one place that rule lives.

Every trainable parameter of a run lives in one flat buffer with a row per member (see
stack.py), matrices first: a member's row is [decayed segment | no-decay segment]. An
update is torch's own fused kernel (the one torch.optim.AdamW(fused=True) calls) on those
row segments, so single runs, stacks and ensembles share one implementation of each
optimizer's arithmetic, and members whose hyperparameters agree are updated in one call.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .registry import Registry
from .sections import OptimConfig


@dataclass(frozen=True)
class OptimInfo:
    """What an optimizer is: its update kernel and its per-parameter state."""

    name: str
    state: tuple[str, ...]  # per-parameter buffers, each a (K, P) tensor
    kernel: Callable[..., None]  # (params, grads, state lists, steps, cfg, lr, weight_decay, first_step)


OPTIMIZERS: Registry[OptimInfo] = Registry("optimizer")


def _adam_kernel(fused: Callable[..., None]) -> Callable[..., None]:
    def run(
        params: list,
        grads: list,
        state: dict[str, list],
        steps: list,
        cfg: OptimConfig,
        lr: float,
        weight_decay: float,
        first_step: bool,
        grad_scale: torch.Tensor | None = None,
    ) -> None:
        fused(
            params,
            grads,
            state["exp_avg"],
            state["exp_avg_sq"],
            [],
            steps,
            lr=lr,
            beta1=cfg.beta1,
            beta2=cfg.beta2,
            weight_decay=weight_decay,
            eps=cfg.eps,
            amsgrad=False,
            maximize=False,
            grad_scale=grad_scale,
        )

    return run


def _sgd_kernel(
    params: list,
    grads: list,
    state: dict[str, list],
    steps: list,
    cfg: OptimConfig,
    lr: float,
    weight_decay: float,
    first_step: bool,
    grad_scale: torch.Tensor | None = None,
) -> None:
    buffers = state["momentum_buffer"] if cfg.momentum > 0 else []
    torch._fused_sgd_(
        params,
        grads,
        buffers,
        weight_decay=weight_decay,
        momentum=cfg.momentum,
        lr=lr,
        dampening=0.0,
        nesterov=cfg.nesterov,
        maximize=False,
        is_first_step=first_step,
        grad_scale=grad_scale,
    )


for _info in (
    OptimInfo("sgd", ("momentum_buffer",), _sgd_kernel),  # optional (Nesterov) momentum; weight decay as L2
    OptimInfo("adam", ("exp_avg", "exp_avg_sq"), _adam_kernel(torch._fused_adam_)),  # decay as L2, rescaled per weight
    OptimInfo("adamw", ("exp_avg", "exp_avg_sq"), _adam_kernel(torch._fused_adamw_)),  # θ ← θ·(1 − lr·λ), decoupled
):
    OPTIMIZERS.register(_info.name)(_info)


# ---- the decay rule --------------------------------------------------------------------------


def decays(param: torch.Tensor) -> bool:
    """Weight decay applies to matrices and conv kernels (2+ dimensions), never to biases or norms."""
    return param.ndim >= 2


@dataclass(frozen=True)
class DecaySplit:
    decay_tensors: int
    decay_params: int
    no_decay_tensors: int
    no_decay_params: int
    no_decay_names: tuple[str, ...] = ()

    def describe(self, weight_decay: float, everything: bool = False) -> str:
        if everything:
            tensors = self.decay_tensors + self.no_decay_tensors
            return f"weight decay {weight_decay:g} on all {tensors} tensors (decay_norm_and_bias: biases and norms too)"
        names = ", ".join(self.no_decay_names[:4]) + (", ..." if len(self.no_decay_names) > 4 else "")
        return (
            f"weight decay {weight_decay:g} on {self.decay_tensors} tensors ({self.decay_params:,} parameters); "
            f"none on {self.no_decay_tensors} tensors ({self.no_decay_params:,} parameters: {names or 'none'})"
        )


def decay_split(named: list[tuple[str, torch.Tensor]]) -> DecaySplit:
    decay = [(n, p) for n, p in named if decays(p)]
    rest = [(n, p) for n, p in named if not decays(p)]
    return DecaySplit(
        len(decay),
        sum(p.numel() for _, p in decay),
        len(rest),
        sum(p.numel() for _, p in rest),
        tuple(n for n, _ in rest),
    )


# ---- the update on flat rows ------------------------------------------------------------------


class LossScale:
    """Dynamic loss scaling for fp16 (torch.amp.GradScaler's rule), per member: the loss is
    multiplied by the member's scale before backward; a step whose gradient is not finite is
    skipped and the scale halves; after GROWTH_INTERVAL finite steps in a row it doubles. The
    fused update divides the gradient by `divisor` (the scale over the clipping coefficient) as
    it reads it, so unscaling and clipping cost no pass of their own."""

    GROWTH_INTERVAL = 2000

    def __init__(self, members: int, init: float, device: torch.device) -> None:
        self.scale = torch.full((members,), float(init), dtype=torch.float32, device=device)
        self.divisor = torch.ones(members, dtype=torch.float32, device=device)  # read by the fused kernels
        self.clean = [0] * members  # finite steps since the last overflow or growth
        self.skipped = [0] * members  # steps skipped for overflow, in all

    def update(self, rows: list[int], overflow: list[bool]) -> None:
        for r in rows:
            if overflow[r]:
                self.scale[r] *= 0.5
                self.clean[r], self.skipped[r] = 0, self.skipped[r] + 1
            else:
                self.clean[r] += 1
                if self.clean[r] == self.GROWTH_INTERVAL:
                    self.scale[r] *= 2.0
                    self.clean[r] = 0

    def state_row(self, row: int) -> dict[str, Any]:
        return {"scale": float(self.scale[row]), "clean": self.clean[row], "skipped": self.skipped[row]}

    def load_row(self, row: int, saved: dict[str, Any]) -> None:
        self.scale[row] = saved["scale"]
        self.clean[row], self.skipped[row] = int(saved["clean"]), int(saved["skipped"])

    def subset(self, rows: list[int]) -> "LossScale":
        new = LossScale(len(rows), 1.0, self.scale.device)
        for i, r in enumerate(rows):
            new.load_row(i, self.state_row(r))
        return new


class FlatOptimizer:
    """One optimizer state for K members over a flat (K, P) parameter buffer.

    `decay_size` is where each row's no-decay segment starts. Per member: its OptimConfig and
    a step count; the learning rate comes from the member's schedule at each step."""

    def __init__(
        self,
        flat: torch.Tensor,
        grad: torch.Tensor,
        decay_size: int,
        cfgs: list[OptimConfig],
        loss_scale: LossScale | None = None,
    ) -> None:
        self.flat, self.grad, self.decay_size, self.cfgs = flat, grad, decay_size, cfgs
        self.loss_scale = loss_scale  # fp16: the fused kernels unscale (and clip) by its divisor
        infos = {OPTIMIZERS.get(c.name) for c in cfgs}
        state_names = sorted({s for i in infos for s in i.state})
        self.state = {s: torch.zeros_like(flat) for s in state_names}
        # per member, a 0-dim float step count as torch's fused kernels expect, and the same count in Python
        self.steps = [torch.zeros((), dtype=torch.float32, device=flat.device) for _ in cfgs]
        self.counts = [0 for _ in cfgs]
        self._plans: dict[tuple, list[Callable[[], None]]] = {}  # cached kernel calls (views of the buffers)

    def _segments(self, cfg: OptimConfig) -> list[tuple[slice, float]]:
        """(columns, weight decay) of a member's row: matrices decay, the rest only with decay_norm_and_bias."""
        d, p = self.decay_size, self.flat.shape[1]
        if cfg.decay_norm_and_bias:
            return [(slice(0, p), cfg.weight_decay)]
        return [s for s in ((slice(0, d), cfg.weight_decay), (slice(d, p), 0.0)) if s[0].stop > s[0].start]

    @torch.no_grad()
    def step(self, rows: list[int], lrs: list[float]) -> None:
        """Update the given rows (members still training), each with its own learning rate."""
        if not rows:  # every member skipped this step (fp16 overflow)
            return
        key = (tuple(rows), tuple(lrs), tuple(self.counts[r] == 0 for r in rows))
        plan = self._plans.get(key)
        if plan is None:  # the calls change only when a learning rate, the rows or a first step do
            plan = self._plans[key] = self._plan(rows, lrs)
            if len(self._plans) > 64:
                self._plans.pop(next(iter(self._plans)))
        for row in rows:
            self.counts[row] += 1
        torch._foreach_add_([self.steps[r] for r in rows], 1.0)
        for run in plan:
            run()

    def _plan(self, rows: list[int], lrs: list[float]) -> list[Callable[[], None]]:
        """One kernel call per group of row segments whose hyperparameters agree."""
        calls: dict[tuple, list[tuple[int, slice]]] = {}
        for row, lr in zip(rows, lrs):
            cfg = self.cfgs[row]
            first = self.counts[row] == 0
            own = row if self.loss_scale is not None else None  # one divisor per call: a call per member
            for cols, wd in self._segments(cfg):
                key = (cfg.name, lr, wd, cfg.beta1, cfg.beta2, cfg.eps, cfg.momentum, cfg.nesterov, own, first)
                calls.setdefault(key, []).append((row, cols))
        plan = []
        for key, parts in calls.items():
            cfg = self.cfgs[parts[0][0]]
            info = OPTIMIZERS.get(cfg.name)
            params = [self.flat[r, c] for r, c in parts]
            grads = [self.grad[r, c] for r, c in parts]
            state = {s: [self.state[s][r, c] for r, c in parts] for s in info.state}
            steps = [self.steps[r] for r, _ in parts]
            divisor = self.loss_scale.divisor[key[-2]] if self.loss_scale is not None else None
            plan.append(
                functools.partial(info.kernel, params, grads, state, steps, cfg, key[1], key[2], key[-1], divisor)
            )
        return plan

    def state_rows(self, row: int) -> dict[str, Any]:
        return {
            "step": int(self.steps[row].item()),
            **{s: t[row].detach().cpu().clone() for s, t in self.state.items()},
            **({"loss_scale": self.loss_scale.state_row(row)} if self.loss_scale is not None else {}),
        }

    def load_rows(self, row: int, saved: dict[str, Any]) -> None:
        self.steps[row].fill_(float(saved["step"]))
        self.counts[row] = int(saved["step"])
        for s, t in self.state.items():
            if s in saved:
                t[row].copy_(saved[s])
        if self.loss_scale is not None and "loss_scale" in saved:
            self.loss_scale.load_row(row, saved["loss_scale"])

    def subset(self, rows: list[int], flat: torch.Tensor, grad: torch.Tensor) -> "FlatOptimizer":
        new = FlatOptimizer.__new__(FlatOptimizer)
        new.flat, new.grad, new.decay_size = flat, grad, self.decay_size
        new.cfgs = [self.cfgs[r] for r in rows]
        idx = torch.tensor(rows, device=flat.device)
        new.state = {s: t.index_select(0, idx) for s, t in self.state.items()}
        new.steps = [self.steps[r] for r in rows]
        new.counts = [self.counts[r] for r in rows]
        new.loss_scale = self.loss_scale.subset(rows) if self.loss_scale is not None else None
        new._plans = {}
        return new
