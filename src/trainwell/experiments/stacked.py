"""Training several runs of one MLP shape together, as one vectorised model.

A small MLP on the CPU spends its time dispatching operators, not computing: a step of the
64-32 delivery network is ~30 operators of a few microseconds of arithmetic each. K runs
that share the layer widths, norm, activation, batch size and data can be trained as one
model whose weights carry a leading member axis: each layer is one batched matmul (bmm)
for all K, and the optimizer, gradient norm and clipping work on one flat (K, P) buffer
whatever the number of layers. Per member, everything that differs between variants is a
(K, 1) tensor: learning rate (each member keeps its own Schedule object), weight decay and
whether it is L2 (Adam, SGD) or decoupled (AdamW), betas, momentum, Nesterov, dropout rate,
clip threshold, label smoothing; and each member has its own seed, shuffle order, early
stopping counter, best weights and stopping epoch. A member that stops gets learning rate 0
and is written out at once; nothing of it is read after that.

What a member shares with `trainwell train` at the same seed: the initial weights (built by
the same code after the same seeding), the data and its split, the batch order (the run's
own shuffle generator), the loss, the optimizer's arithmetic (torch's Adam/AdamW/SGD
formulas), the schedules (the same Schedule classes), clipping, early stopping and the
metrics. What differs: dropout masks come from one generator for the whole stack (same law,
different draws), and batched matmuls round differently in the last bits, so a member's
numbers equal a single run's in distribution, not bit for bit. Stacked runs write config,
history, metrics and best.pt like any run, but no last.pt and no curves.png: an interrupted
stack is run again, and the report draws the curves.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .. import rundir
from ..config import RunConfig, TrainConfig, dump_yaml
from .spec import Run

# train fields the stacked engine honours; any other train field must keep its default,
# so a field added later (that this engine knows nothing of) sends the run to the single path
HONOURED = {
    "seed", "max_epochs", "batch_size", "eval_batch_size", "clip_norm", "early_stopping", "patience", "min_delta", "monitor",
    "mode", "restore_best", "label_smoothing", "quiet", "threads", "bn_recalibration_samples", "ema_decay",
    "checkpoint_every_steps", "deterministic", "amp", "channels_last",  # no effect here: no mid-run checkpoints; CPU, float32 only
}
TABULAR = ("delivery", "csv")
BN_EPS, BN_MOMENTUM = 1e-5, 0.1  # nn.BatchNorm1d's defaults, which the single path uses
MAX_MEMBERS = 16  # more members per stack gain little and delay the first finished runs
LAYOUT_WARNING = "grad and param do not obey the gradient layout contract"  # views of one (K, P) buffer: expected here
ACTIVATIONS = {"relu": torch.relu, "gelu": F.gelu, "silu": F.silu, "tanh": torch.tanh}


def eligible(cfg: RunConfig) -> bool:
    """Whether a run can be trained in a stack: a tabular MLP on the CPU with no feature this engine lacks."""
    if cfg.data.name not in TABULAR or cfg.model.kind not in ("auto", "mlp") or cfg.model.norm not in ("batch", "none"):
        return False
    if cfg.train.device not in ("auto", "cpu") or torch.cuda.is_available() or cfg.train.compile:
        return False
    defaults = TrainConfig()
    return all(getattr(cfg.train, f.name) == getattr(defaults, f.name) for f in dataclasses.fields(TrainConfig) if f.name not in HONOURED)


def group_key(cfg: RunConfig) -> tuple:
    family = "sgd" if cfg.optim.name == "sgd" else "adam"
    m, t = cfg.model, cfg.train
    recal = t.bn_recalibration_samples if m.norm == "batch" else 0
    return (repr(cfg.data), tuple(m.hidden), m.norm, m.activation, t.batch_size, t.eval_batch_size, family, t.monitor, t.mode, recal)


def expected_epochs(cfg: RunConfig) -> int:
    """Epochs a run will likely train: all of them, or with early stopping about three patiences."""
    return min(cfg.train.max_epochs, 3 * cfg.train.patience) if cfg.train.early_stopping else cfg.train.max_epochs


def estimate_cost(cfgs: list[RunConfig]) -> float:
    """Rough seconds of a stack on one thread: epochs × steps × (dispatch + arithmetic of K members),
    with constants measured on the delivery MLPs (about 30 GFLOP/s in batched matmuls)."""
    c = cfgs[0]
    rows = c.data.n * (1 - c.data.test_fraction) * (1 - c.data.val_fraction) if c.data.name == "delivery" else 10_000
    steps = math.ceil(rows / c.train.batch_size)
    dims = [4, *c.model.hidden, 1]
    params = sum(a * b for a, b in zip(dims, dims[1:]))
    dispatch = 4e-4 + (4e-4 if c.model.norm == "batch" else 0.0) + (2e-4 if any(x.model.dropout > 0 for x in cfgs) else 0.0)
    epochs = max(expected_epochs(x) for x in cfgs)
    return epochs * steps * (dispatch + 6 * c.train.batch_size * params * len(cfgs) / 3e10)


def group_jobs(pairs: list[tuple[Run, Path]], workers: int) -> list[Any]:
    """Jobs of stacked runs: one per group of same-shape runs, split so that every worker has
    work and no job is much longer than an even share."""
    from .runner import Job

    groups: dict[tuple, list[tuple[Run, Path]]] = defaultdict(list)
    for run, d in pairs:
        groups[group_key(run.config)].append((run, d))
    chunks = []
    for members in groups.values():
        for i in range(0, len(members), MAX_MEMBERS):
            chunks.append(members[i : i + MAX_MEMBERS])

    def cost(chunk: list[tuple[Run, Path]]) -> float:
        return estimate_cost([r.config for r, _ in chunk])

    def split_largest() -> bool:
        chunks.sort(key=cost, reverse=True)
        for i, chunk in enumerate(chunks):
            if len(chunk) > 1:
                half = (len(chunk) + 1) // 2
                chunks[i : i + 1] = [chunk[:half], chunk[half:]]
                return True
        return False

    def makespan(cs: list[list[tuple[Run, Path]]]) -> float:
        """Estimated seconds until the last worker is done, longest jobs first to the least loaded."""
        loads = [0.0] * max(1, workers)
        for c in sorted((cost(c) for c in cs), reverse=True):
            loads[loads.index(min(loads))] += c
        return max(loads)

    # every worker gets a job where there are enough runs; then the costliest job is halved while
    # that shortens the estimated makespan (a stack of small models costs mostly dispatch, which
    # halving does not remove, so those stay whole)
    while len(chunks) < workers and split_largest():
        pass
    for _ in range(len(pairs)):
        before, saved = makespan(chunks), list(chunks)
        if not split_largest() or makespan(chunks) > 0.95 * before:
            chunks[:] = saved
            break
    return [Job([r for r, _ in c], [d for _, d in c], stacked=True, cost=cost(c)) for c in chunks]


# ---- the stack -----------------------------------------------------------------------------------


class _LR:
    """Stands in for an optimizer so a member's Schedule can set its learning rate."""

    def __init__(self) -> None:
        self.param_groups = [{"lr": 0.0}]

    @property
    def lr(self) -> float:
        return self.param_groups[0]["lr"]


def _col(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).unsqueeze(1)  # (K, 1): broadcasts over a member's row


class Stack:
    """K MLPs as one flat parameter buffer (K, P) with per-layer views that are autograd leaves."""

    def __init__(self, models: list[nn.Module], norm: str, activation: str) -> None:
        self.norm, self.activation = norm, activation
        linears = [m for m in models[0].modules() if isinstance(m, nn.Linear)]
        self.shapes: list[tuple[str, tuple[int, ...]]] = []  # (kind, per-member shape) in buffer order
        for i, lin in enumerate(linears):
            self.shapes += [("weight", tuple(lin.weight.shape)), ("bias", tuple(lin.bias.shape))]
            if norm == "batch" and i < len(linears) - 1:
                self.shapes += [("bn_weight", (lin.out_features,)), ("bn_bias", (lin.out_features,))]
        flat = torch.stack([torch.cat([p.detach().reshape(-1) for p in self._params_of(m)]) for m in models])
        bns = [[m for m in model.modules() if isinstance(m, nn.BatchNorm1d)] for model in models]
        running = [(torch.stack([b[i].running_mean for b in bns]), torch.stack([b[i].running_var for b in bns])) for i in range(len(bns[0]))]
        self._setup(flat, running)

    def _setup(self, flat: torch.Tensor, running: list[tuple[torch.Tensor, torch.Tensor]], trainable: bool = True) -> None:
        self.act = ACTIVATIONS[self.activation]
        self.K, self.P = flat.shape
        self.flat = flat.contiguous()
        self.views = self._views(self.flat, leaves=trainable)
        self._layers = self._group_layers()
        if trainable:
            self.grad = torch.zeros(self.K, self.P)
            for v, g in zip(self.views, self._views(self.grad, leaves=False)):
                v.grad = g  # backward accumulates into the flat gradient buffer
        self.running = [(rm.contiguous(), rv.contiguous()) for rm, rv in running]
        # matrices (weights) are decayed; 1-D tensors (biases, norm scales) only for decay_norm_and_bias
        self.is_matrix = torch.cat([torch.full((math.prod(s),), float(len(s) >= 2)) for _, s in self.shapes]).unsqueeze(0)

    def alias(self, flat: torch.Tensor, running: list[tuple[torch.Tensor, torch.Tensor]]) -> "Stack":
        """A stack of the same shape over other buffers (no copy, no gradients): the averaged weights."""
        new = Stack.__new__(Stack)
        new.norm, new.activation, new.shapes = self.norm, self.activation, self.shapes
        new._setup(flat, running, trainable=False)
        return new

    @torch.no_grad()
    def recalibrate(self, x: torch.Tensor, batch: int) -> None:
        """BatchNorm statistics of the network as it is evaluated (dropout off), from inputs x in
        near-equal chunks, cumulatively averaged: what trainwell.recalibration does per model."""
        if not self.running:
            return
        for rm, rv in self.running:
            rm.zero_(), rv.fill_(1.0)
        for j, part in enumerate(torch.tensor_split(x, -(-len(x) // batch)), start=1):
            h = part
            for i, layer in enumerate(self._layers[:-1]):
                W, b, gamma, beta = layer
                h = torch.matmul(h, W.transpose(1, 2)) + b.unsqueeze(1) if h.dim() == 2 else torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2))
                var, mean = torch.var_mean(h, dim=1, unbiased=False, keepdim=True)
                n = h.shape[1]
                rm, rv = self.running[i]
                rm.add_((mean.squeeze(1) - rm) / j)  # BatchNorm with momentum None: the running mean of chunk statistics
                rv.add_((var.squeeze(1) * (n / max(1, n - 1)) - rv) / j)
                h = self.act((h - mean) * torch.rsqrt(var + BN_EPS) * gamma.unsqueeze(1) + beta.unsqueeze(1))

    def subset(self, rows: list[int]) -> "Stack":
        """A new stack of the given members only (when most have stopped, the rest train faster)."""
        new = Stack.__new__(Stack)
        new.norm, new.activation, new.shapes = self.norm, self.activation, self.shapes
        idx = torch.tensor(rows)
        with torch.no_grad():
            new._setup(self.flat.index_select(0, idx), [(rm.index_select(0, idx), rv.index_select(0, idx)) for rm, rv in self.running])
        return new

    def _params_of(self, model: nn.Module) -> list[torch.Tensor]:
        out = []
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.BatchNorm1d)):
                out += [m.weight, m.bias]
        return out

    def _views(self, buf: torch.Tensor, leaves: bool) -> list[torch.Tensor]:
        out, start = [], 0
        for _, shape in self.shapes:
            n = math.prod(shape)
            v = buf[:, start : start + n].view(self.K, *shape)
            out.append(v.requires_grad_() if leaves else v)
            start += n
        return out

    def _group_layers(self) -> list[tuple[torch.Tensor, ...]]:
        """Per layer: (W, b) or (W, b, gamma, beta)."""
        out, i = [], 0
        while i < len(self.views):
            group = [self.views[i], self.views[i + 1]]
            i += 2
            if i < len(self.views) and self.shapes[i][0] == "bn_weight":
                group += [self.views[i], self.views[i + 1]]
                i += 2
            out.append(tuple(group))
        return out

    def forward(self, x: torch.Tensor, train: bool, masks: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        """x: (K, B, F) in training, (B, F) shared in evaluation → (K, B, outputs)."""
        layers = self._layers
        h = x
        for i, layer in enumerate(layers):
            W, b = layer[0], layer[1]
            h = torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2)) if h.dim() == 3 else torch.matmul(h, W.transpose(1, 2)) + b.unsqueeze(1)
            if i == len(layers) - 1:
                return h
            if len(layer) == 4:
                h = self._batchnorm(h, i, layer[2], layer[3], train)
            h = self.act(h)
            if masks is not None and masks[i] is not None:
                h = h * masks[i]
        return h

    def _batchnorm(self, h: torch.Tensor, i: int, gamma: torch.Tensor, beta: torch.Tensor, train: bool) -> torch.Tensor:
        """BatchNorm1d for all members at once: the K members' W features are K·W channels of one
        native batch_norm call (forward, running statistics and backward each one kernel)."""
        rm, rv = self.running[i]  # (K, W) views of contiguous (K·W,) buffers
        K, W = rm.shape
        if not train:
            return (h - rm.unsqueeze(1)) * torch.rsqrt(rv.unsqueeze(1) + BN_EPS) * gamma.unsqueeze(1) + beta.unsqueeze(1)
        B = h.shape[1]
        flat = h.transpose(0, 1).reshape(B, K * W)
        out = F.batch_norm(flat, rm.view(-1), rv.view(-1), gamma.reshape(-1), beta.reshape(-1), True, BN_MOMENTUM, BN_EPS)
        return out.view(B, K, W).transpose(0, 1)

    def member_state(self, flat_row: torch.Tensor, running: list[tuple[torch.Tensor, torch.Tensor]], model: nn.Module, steps: int) -> dict[str, torch.Tensor]:
        """Member weights in the state_dict layout of the single path's model."""
        with torch.no_grad():
            start = 0
            for p in self._params_of(model):
                n = p.numel()
                p.copy_(flat_row[start : start + n].view_as(p))
                start += n
            for bn, (rm, rv) in zip([m for m in model.modules() if isinstance(m, nn.BatchNorm1d)], running):
                bn.running_mean.copy_(rm)
                bn.running_var.copy_(rv)
                bn.num_batches_tracked.fill_(steps)
        return {k: v.detach().clone() for k, v in model.state_dict().items()}


class StackedOptimizer:
    """torch's SGD, Adam and AdamW arithmetic on the flat (K, P) buffer, hyperparameters per member.

    Weight decay goes to weight matrices, and to biases and norm parameters only for members
    with decay_norm_and_bias; AdamW applies it decoupled (θ ← θ·(1 − lr·λ)), Adam and SGD as
    L2 (g ← g + λ·θ), as trainwell.optim does. Each update is a few in-place passes over the
    buffer; a per-member factor is a (K, 1) column that broadcasts over the member's row.
    """

    def __init__(self, stack: Stack, cfgs: list[Any]) -> None:
        self.stack, K = stack, len(cfgs)
        self.sgd = cfgs[0].name == "sgd"  # one family per stack (group_key)
        wd = [c.weight_decay for c in cfgs]
        dec_all = [c.decay_norm_and_bias for c in cfgs]
        adamw = [c.name == "adamw" for c in cfgs]
        # (views, per-member factor) pairs: matrices always decay, 1-D tensors only where asked
        self.l2: list[tuple[int, torch.Tensor]] = []
        self.decoupled: list[tuple[int, torch.Tensor]] = []
        for i, (_, shape) in enumerate(stack.shapes):
            lam = [w if (len(shape) >= 2 or a) else 0.0 for w, a in zip(wd, dec_all)]
            view_shape = (K,) + (1,) * len(shape)
            l2 = [x if not w else 0.0 for x, w in zip(lam, adamw)]
            dc = [x if w else 0.0 for x, w in zip(lam, adamw)]
            if any(l2):
                self.l2.append((i, torch.tensor(l2).view(view_shape)))
            if any(dc):
                self.decoupled.append((i, torch.tensor(dc).view(view_shape)))
        self.beta1, self.beta2, self.eps = ([getattr(c, k) for c in cfgs] for k in ("beta1", "beta2", "eps"))
        self.momentum = _col([c.momentum for c in cfgs])
        self.nesterov = _col([float(c.nesterov) for c in cfgs]) if any(c.nesterov for c in cfgs) else None
        self.m1 = torch.zeros(K, stack.P)  # Adam's first moment, or SGD's momentum buffer
        self.m2 = torch.zeros(K, stack.P) if not self.sgd else None
        self.denom = torch.empty(K, stack.P) if not self.sgd else None  # reused: a fresh (K, P) tensor each step costs page faults
        self.t = 0
        self.grad_views = stack._views(stack.grad, leaves=False)
        self.param_views = [v.detach() for v in stack.views]

    def subset(self, stack: Stack, rows: list[int]) -> "StackedOptimizer":
        """This optimizer's state for the given members, on their new stack."""
        idx = torch.tensor(rows)
        new = StackedOptimizer.__new__(StackedOptimizer)
        new.stack, new.sgd, new.t = stack, self.sgd, self.t
        new.l2 = [(i, lam.index_select(0, idx)) for i, lam in self.l2]
        new.decoupled = [(i, lam.index_select(0, idx)) for i, lam in self.decoupled]
        new.beta1, new.beta2, new.eps = ([v[r] for r in rows] for v in (self.beta1, self.beta2, self.eps))
        new.momentum = self.momentum.index_select(0, idx)
        new.nesterov = None if self.nesterov is None else self.nesterov.index_select(0, idx)
        new.m1 = self.m1.index_select(0, idx)
        new.m2 = None if self.m2 is None else self.m2.index_select(0, idx)
        new.denom = None if self.denom is None else torch.empty_like(new.m2)
        new.grad_views = stack._views(stack.grad, leaves=False)
        new.param_views = [v.detach() for v in stack.views]
        return new

    @staticmethod
    def _scalar_or_col(values: list[float]) -> float | torch.Tensor:
        return values[0] if len(set(values)) == 1 else _col(values)

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        """One update with per-member learning rates lr (K, 1); the gradient is in stack.grad."""
        p, g = self.stack.flat, self.stack.grad
        for i, lam in self.l2:  # L2: added to the gradient (in place: the buffer is zeroed before each backward)
            self.grad_views[i].addcmul_(self.param_views[i], lam)
        if self.sgd:
            self.m1.mul_(self.momentum).add_(g)  # buf = μ·buf + g (the first step gives buf = g, as torch)
            step = self.m1 if self.nesterov is None else self.m1 + self.nesterov * (g + self.momentum * self.m1 - self.m1)
            p.addcmul_(step, lr, value=-1.0)
            return
        self.t += 1
        for i, lam in self.decoupled:  # AdamW: θ ← θ·(1 − lr·λ), before the Adam step as torch does
            self.param_views[i].mul_(1 - lr.view(-1, *([1] * (lam.dim() - 1))) * lam)
        b1, b2, eps = (self._scalar_or_col(v) for v in (self.beta1, self.beta2, self.eps))
        if isinstance(b1, float):
            self.m1.lerp_(g, 1 - b1)
        else:
            self.m1.mul_(b1).add_((1 - b1) * g)
        if isinstance(b2, float):
            self.m2.mul_(b2).addcmul_(g, g, value=1 - b2)
        else:
            self.m2.mul_(b2).add_((1 - b2) * g * g)
        bc1 = 1 - b1**self.t
        bc2 = 1 - b2**self.t
        denom = torch.sqrt(self.m2, out=self.denom)
        denom.div_(bc2**0.5 if isinstance(bc2, float) else bc2.sqrt()).add_(eps)
        # θ ← θ − (lr / bc1)·m / denom, with the per-member step folded into the denominator
        # (a stopped member's lr 0 makes it infinite: m / ∞ = 0, no move)
        denom.div_(lr / bc1)
        p.addcdiv_(self.m1, denom, value=-1.0)


def _loss(out: torch.Tensor, y: torch.Tensor, task: str, smoothing: torch.Tensor) -> torch.Tensor:
    """Per-member mean loss (K,): MSE, or cross-entropy with per-member label smoothing."""
    if task == "regression":
        return (out - y).pow(2).mean(dim=(1, 2))
    logp = torch.log_softmax(out, dim=-1)
    nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    return ((1 - smoothing) * nll + smoothing * (-logp.mean(-1))).mean(1)


def train_stacked(runs: list[Run], dirs: list[Path], threads: int) -> list[dict[str, Any]]:
    """Train the runs as one stack; write each member's run directory when it stops; return result rows."""
    from ..runner import stop_on_signals

    with stop_on_signals() as stop_requested, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=LAYOUT_WARNING)
        return _train(runs, dirs, threads, stop_requested)


def _train(runs: list[Run], dirs: list[Path], threads: int, stop_requested: Any) -> list[dict[str, Any]]:
    from ..checkpoint import BEST, save_checkpoint
    from ..data import load_data
    from ..fit import EARLY_STOP, MAX_EPOCHS, NOT_FINITE, improved
    from ..models import build_model, has_batchnorm
    from ..runner import check_against_data, resolve_mode
    from ..schedules import build_schedule
    from ..seeding import make_generator, seed_everything
    from .runner import FAILED, INTERRUPTED, OK, one_line, record

    torch.set_num_threads(threads)
    cfgs = [r.config for r in runs]
    c0 = cfgs[0]
    K = len(runs)
    try:
        data = load_data(c0.data)
        check_against_data(c0, data)
    except Exception as exc:
        return [record(r, d, None, FAILED, one_line(exc), "stacked") for r, d in zip(runs, dirs)]
    models = []
    for c in cfgs:  # the same seeding and construction as the single path, so initial weights match
        seed_everything(c.train.seed)
        models.append(build_model(c.model, data.input_shape, data.n_outputs, data.default_model))
    stack = Stack(models, c0.model.norm, c0.model.activation)
    bn = has_batchnorm(models[0])
    n_train, B = len(data.x_train), c0.train.batch_size
    drop_last = bn and n_train % B == 1  # BatchNorm cannot normalise a batch of one
    steps = n_train // B if drop_last else math.ceil(n_train / B)
    n_seen = steps * B if drop_last else n_train
    mode = resolve_mode(c0)
    metric_key = c0.train.monitor.removeprefix("val_")
    shims = [_LR() for _ in cfgs]
    schedules = [build_schedule(c.schedule, c.optim.lr, steps, c.train.max_epochs, mode) for c in cfgs]
    for s, shim in zip(schedules, shims):
        s.apply(shim)
    per_batch = any(s.cadence == "batch" for s in schedules)
    shufflers = [make_generator(c.train.seed, 0) for c in cfgs]
    dropout_gen = make_generator(min(c.train.seed for c in cfgs), 2)
    spec = {**data.spec, "task": data.task, "input_shape": list(data.input_shape), "n_outputs": data.n_outputs, "model_kind": "mlp"}

    # per-member hyperparameters as (K, 1) columns
    optimizer = StackedOptimizer(stack, [c.optim for c in cfgs])
    # the weights that are evaluated, saved as best and tested: a moving average where asked
    # (train.ema_decay, as trainwell.averaging: decay min(d, (1+n)/(10+n)), BatchNorm statistics
    # averaged too), else the live weights; members without one get decay 0, a plain copy
    ema_col = _col([c.train.ema_decay or 0.0 for c in cfgs])
    use_ema = any(c.train.ema_decay for c in cfgs)
    ema_updates = 0
    ev = stack.alias(stack.flat.detach().clone(), [(rm.clone(), rv.clone()) for rm, rv in stack.running]) if use_ema else stack
    recal = c0.train.bn_recalibration_samples if bn else 0  # the same for the whole stack (group_key)
    clip = [c.train.clip_norm for c in cfgs]
    clip_col = _col([x or 0.0 for x in clip]).squeeze(1)
    any_clip = any(x is not None for x in clip)
    drops = _col([c.model.dropout for c in cfgs]).unsqueeze(1)  # (K, 1, 1)
    any_dropout = bool((drops > 0).any())
    smoothing = _col([c.train.label_smoothing for c in cfgs])

    # per-member loop state
    members = list(range(K))  # row of the stack → index of the run (rows shrink as members stop)
    active = torch.ones(K, dtype=torch.bool)  # per row
    alive = [True] * K  # per run
    history: list[list[dict[str, Any]]] = [[] for _ in range(K)]
    best_value: list[float | None] = [None] * K
    best_epoch: list[int | None] = [None] * K
    bad_epochs = [0] * K
    best_flat = stack.flat.detach().clone()
    best_running = [(rm.clone(), rv.clone()) for rm, rv in stack.running]
    member_seconds = [0.0] * K
    steps_trained = [0] * K
    rows: dict[int, dict[str, Any]] = {}
    widths = [h for h in c0.model.hidden]
    lr_col = _col(([sh.lr for sh in shims]))
    epoch = 0
    regression = data.task == "regression"
    y_train = data.y_train

    def finish(k: int, row: int, reason: str, detail: str = "") -> None:
        """Run k (stack row `row`) stops: restore its best weights if asked, score the test split, write its run directory."""
        alive[k] = False
        active[row] = False
        c, d = cfgs[k], dirs[k]
        d.mkdir(parents=True, exist_ok=True)
        rundir.write_text_atomic(d / rundir.CONFIG, dump_yaml(c))
        rundir.write_history(d, history[k])
        restored = c.train.restore_best and best_epoch[k] is not None
        flat_row = best_flat[k] if restored else ev.flat[row]
        running = [(brm[k], brv[k]) for brm, brv in best_running] if restored else [(rm[row], rv[row]) for rm, rv in ev.running]
        if best_epoch[k] is not None:
            state = stack.member_state(best_flat[k], [(rm[k], rv[k]) for rm, rv in best_running], models[k], steps_trained[k])
            save_checkpoint(BEST, {"model": state, "epoch": best_epoch[k], "monitor": c.train.monitor, "value": best_value[k], "spec": spec}, d / rundir.BEST_PT)
        test = _score_member(ev, flat_row, running, row, data, regression, c.train.label_smoothing, c.train.eval_batch_size)
        metrics: dict[str, Any] = {f"test_{key}": v for key, v in test.items() if key != "loss"}
        metrics.update(
            test_loss=test["loss"], epochs_run=len(history[k]), best_epoch=best_epoch[k], best_value=best_value[k], monitor=c.train.monitor,
            restored_best=restored, stop_reason=reason, wall_seconds=round(member_seconds[k], 3), engine="stacked", stacked_with=K,
        )
        if reason == NOT_FINITE:
            metrics["error"] = detail
        rundir.write_json(d / rundir.METRICS, metrics)
        rows[k] = record(runs[k], d, metrics, FAILED if reason == NOT_FINITE else OK, detail, "stacked")

    while any(alive):
        if stop_requested():
            break
        started = time.perf_counter()
        Kc = len(members)
        perm = torch.stack([torch.randperm(n_train, generator=shufflers[k]) for k in members])  # (Kc, n): each member's own order
        step_loss = torch.zeros(steps, Kc)
        step_norm = torch.zeros(steps, Kc)
        u = torch.rand(steps, Kc, B, sum(widths), generator=dropout_gen) if any_dropout else None
        for s in range(steps):
            idx = perm[:, s * B : (s + 1) * B]
            x = data.x_train[idx]  # (K, b, F)
            y = y_train[idx]
            masks = None
            if u is not None:
                b = idx.shape[1]
                keep = (u[s, :, :b] >= drops).float() / (1 - drops)
                masks, start = [], 0
                for w in widths:
                    masks.append(keep[:, :, start : start + w])
                    start += w
            stack.grad.zero_()
            out = stack.forward(x, True, masks)
            losses = _loss(out, y, data.task, smoothing)
            losses.sum().backward()  # members are independent: each one's gradient is its own loss's
            with torch.no_grad():
                g = stack.grad
                norm = g.norm(dim=1)  # pre-clip global norm per member
                if any_clip:
                    coef = torch.where(clip_col > 0, (clip_col / (norm + 1e-6)).clamp(max=1.0), torch.ones_like(norm))
                    g.mul_(coef.unsqueeze(1))
                if per_batch and s > 0:
                    lr_col = _col([shims[k].lr for k in members])
                optimizer.step(lr_col * active.unsqueeze(1))  # stopped members do not move
                if use_ema:
                    ema_updates += 1
                    w = 1 - ema_col.clamp(max=(1 + ema_updates) / (10 + ema_updates))
                    ev.flat.lerp_(stack.flat, w)
                    for (am, av), (rm, rv) in zip(ev.running, stack.running):
                        am.lerp_(rm, w), av.lerp_(rv, w)
            for k in members:
                schedules[k].after_batch(shims[k])
            step_loss[s] = losses.detach() * idx.shape[1]
            step_norm[s] = norm
        # -- validate all members at once, then each member's bookkeeping
        lr_epoch = [shims[k].lr for k in members]
        if recal:  # BatchNorm statistics as the network is evaluated, as trainwell.recalibration
            ev.recalibrate(data.x_train[:recal], c0.train.eval_batch_size)
        val = _evaluate(ev, data.x_val, data.y_val, regression, smoothing, c0.train.eval_batch_size, data.target_std)
        seconds = (time.perf_counter() - started) / max(1, sum(alive))
        epoch += 1
        bad_loss = ~torch.isfinite(step_loss)
        for row, k in enumerate(members):
            if not alive[k]:
                continue
            member_seconds[k] += seconds
            steps_trained[k] += steps
            if bad_loss[:, row].any():
                first = int(bad_loss[:, row].nonzero()[0])
                with torch.no_grad():  # keep the stack finite: the member is zeroed and frozen
                    stack.flat[row].zero_(), optimizer.m1[row].zero_()
                    if optimizer.m2 is not None:
                        optimizer.m2[row].zero_()
                    for rm, rv in stack.running:
                        rm[row].zero_(), rv[row].fill_(1.0)
                finish(k, row, NOT_FINITE, f"loss became non-finite at epoch {epoch}, step {first + 1}")
                continue
            c = cfgs[k].train
            monitored = val[metric_key][row]
            schedules[k].after_epoch(shims[k], monitored)
            norms = step_norm[:, row]
            entry = {
                "epoch": epoch,
                "train_loss": step_loss[:, row].sum().item() / n_seen,
                "val_loss": val["loss"][row],
                **{f"val_{key}": v[row] for key, v in val.items() if key != "loss"},
                "lr": lr_epoch[row],
                "grad_norm_mean": norms.mean().item(),
                "grad_norm_max": norms.max().item(),
                "clipped_fraction": (norms > c.clip_norm).float().mean().item() if c.clip_norm else 0.0,
                "seconds": seconds,
            }
            history[k].append(entry)
            if improved(monitored, best_value[k], mode, c.min_delta):
                best_value[k], best_epoch[k], bad_epochs[k] = monitored, epoch, 0
                best_flat[k].copy_(ev.flat[row].detach())
                for (brm, brv), (rm, rv) in zip(best_running, ev.running):
                    brm[k].copy_(rm[row]), brv[k].copy_(rv[row])
            else:
                bad_epochs[k] += 1
            if c.early_stopping and bad_epochs[k] >= c.patience:
                finish(k, row, EARLY_STOP)
            elif epoch >= c.max_epochs:
                finish(k, row, MAX_EPOCHS)
        keep = [row for row, k in enumerate(members) if alive[k]]
        if keep and len(keep) <= len(members) // 2:  # most have stopped: train the rest as a smaller stack
            idx = torch.tensor(keep)
            if use_ema:
                ev = stack.alias(ev.flat.index_select(0, idx), [(am.index_select(0, idx), av.index_select(0, idx)) for am, av in ev.running])
                ema_col = ema_col.index_select(0, idx)
            stack = stack.subset(keep)
            optimizer = optimizer.subset(stack, keep)
            if not use_ema:
                ev = stack
            drops, smoothing, clip_col = drops.index_select(0, idx), smoothing.index_select(0, idx), clip_col.index_select(0, idx)
            members = [members[row] for row in keep]
            active = torch.ones(len(members), dtype=torch.bool)
        lr_col = _col([shims[k].lr for k in members])
    out = []
    for k in range(K):
        if k in rows:
            out.append(rows[k])
        else:
            out.append(record(runs[k], dirs[k], None, INTERRUPTED, "interrupted; run the same command again to continue", "stacked"))
    return out


@torch.no_grad()
def _outputs(stack: Stack, x: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([stack.forward(x[i : i + batch], False) for i in range(0, len(x), batch)], dim=1)


def _evaluate(stack: Stack, x: torch.Tensor, y: torch.Tensor, regression: bool, smoothing: torch.Tensor, batch: int, target_std: float) -> dict[str, list[float]]:
    out = _outputs(stack, x, batch)  # (K, N, outputs)
    with torch.no_grad():
        yy = y.unsqueeze(0).expand(stack.K, *y.shape)
        loss = _loss(out, yy, "regression" if regression else "classification", smoothing)
        if regression:
            metric = (out - yy).abs().mean(dim=(1, 2)) * target_std
            return {"loss": loss.tolist(), "mae": metric.tolist()}
        acc = (out.argmax(-1) == yy).float().mean(1)
        return {"loss": loss.tolist(), "accuracy": acc.tolist()}


def _score_member(stack: Stack, flat_row: torch.Tensor, running: list[tuple[torch.Tensor, torch.Tensor]], k: int, data: Any, regression: bool, smoothing: float, batch: int) -> dict[str, float]:
    """Test metrics of member k with the given weights (its best or its last)."""
    with torch.no_grad():
        saved = stack.flat[k].clone(), [(rm[k].clone(), rv[k].clone()) for rm, rv in stack.running]
        stack.flat[k].copy_(flat_row)
        for (rm, rv), (r_m, r_v) in zip(stack.running, running):
            rm[k].copy_(r_m), rv[k].copy_(r_v)
        out = _outputs(stack, data.x_test, batch)[k : k + 1]
        stack.flat[k].copy_(saved[0])
        for (rm, rv), (r_m, r_v) in zip(stack.running, saved[1]):
            rm[k].copy_(r_m), rv[k].copy_(r_v)
        y = data.y_test.unsqueeze(0)
        loss = _loss(out, y, "regression" if regression else "classification", torch.tensor([[smoothing]])).item()
        if regression:
            return {"mae": (out - y).abs().mean().item() * data.target_std, "loss": loss}
        return {"accuracy": (out.argmax(-1) == y).float().mean().item(), "loss": loss}
