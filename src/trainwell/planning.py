"""What the vectorised fast path can train, declared as data, and how runs are grouped into stacks.

A run goes to the fast path (fastmlp.MLPStack: several members as batched matmuls with a
hand-written backward) only when every property below is one it supports; otherwise it trains
on the module path (stack.ModuleStack), and the reason is recorded in results. Runs that
agree on every field in STACK_KEY can share one stack (one process, one set of batched
matmuls); each still owns its generators, so its numbers do not depend on its partners.
"""

from __future__ import annotations

import math
from typing import Any

from .config import AUTO, RunConfig
from .scaling import auto_batch_size

# the fast path's capabilities: anything else trains on the module path, never as something else
CAPABILITIES: dict[str, tuple[Any, ...]] = {
    "model.kind": ("auto", "mlp"),
    "model.norm": ("batch", "none"),
    "model.activation": ("relu", "gelu", "silu", "tanh"),
    "optim.name": ("sgd", "adam", "adamw"),
    "data.kind": ("tabular",),
    "train.device": ("auto", "cpu"),
    "train.compile": (False,),
}
# fields that must agree for runs to share a stack (data, layer layout, batch, what is evaluated and how)
STACK_KEY = (
    "data",
    "model.kind",
    "model.hidden",
    "model.norm",
    "model.activation",
    "model.has_dropout",
    "model.numeric_embedding",  # the embedding's layout (its sigma only draws the start: members may differ)
    "model.numeric_frequencies",
    "model.numeric_width",
    "train.batch_size",
    "train.val_every",
    "train.eval_batch_size",
    "train.monitor",
    "train.mode",
    "train.bn_recalibration_samples",
    "train.class_weights",
    "train.device",
    "train.amp",
)
MAX_MEMBERS = 16  # members per stack: more gain little and delay the first finished runs
TABULAR = ("delivery", "csv")


def _get(cfg: RunConfig, dotted: str) -> Any:
    if dotted == "data.kind":
        return "tabular" if cfg.data.name in TABULAR else cfg.data.name
    if dotted == "model.has_dropout":  # Dropout modules exist only where the rate is > 0: members share one layout
        return cfg.model.dropout > 0
    section, _, name = dotted.partition(".")
    value = getattr(cfg, section) if not name else getattr(getattr(cfg, section), name)
    return repr(value) if section == "data" and not name else value


def fast_path_reason(cfg: RunConfig, cuda: bool = False) -> str | None:
    """None when the fast path can train this run; else why not (recorded in results)."""
    for key, allowed in CAPABILITIES.items():
        value = _get(cfg, key)
        if value not in allowed:
            return f"{key} = {value!r} is not supported by the vectorised path"
    if cuda and cfg.train.device == "auto":
        return "CUDA is available: the module path runs there"
    return None


def group_key(cfg: RunConfig) -> tuple:
    return tuple(repr(_get(cfg, k)) for k in STACK_KEY)


def expected_epochs(cfg: RunConfig) -> int:
    """Epochs a run will likely train: all of them, or with early stopping about three patiences."""
    return min(cfg.train.max_epochs, 3 * cfg.train.patience) if cfg.train.early_stopping else cfg.train.max_epochs


def estimate_cost(cfgs: list[RunConfig], rows: int | None = None) -> float:
    """Rough seconds of a job (one run or a stack) on one thread: epochs × steps × (dispatch +
    arithmetic of its members), constants measured on the delivery MLPs (~0.4 ms of dispatch per
    step, ~20 GFLOP/s in matmuls); images cost far more per row. `rows`: training rows when
    known (otherwise delivery's, or 20,000 for a file)."""
    c = cfgs[0]
    if rows is None:
        rows = (
            c.data.n * (1 - c.data.test_fraction) * (1 - c.data.val_fraction) if c.data.name == "delivery" else 20_000
        )
    batch = auto_batch_size(int(rows), c.train.auto_batch_min) if c.train.batch_size == AUTO else c.train.batch_size
    steps = math.ceil(rows / batch)
    dims = [4, *c.model.hidden, 1]
    params = sum(a * b for a, b in zip(dims, dims[1:]))
    if c.data.name not in TABULAR:
        params *= 100
    members = sum(x.train.members for x in cfgs)
    dispatch = 4e-4 * (1 + (c.model.norm == "batch") + 0.5 * any(x.model.dropout > 0 for x in cfgs))
    return max(expected_epochs(x) for x in cfgs) * steps * (dispatch + 6 * batch * params * members / 2e10)


def split_stacks(groups: list[list[Any]], cost: Any, workers: int) -> list[list[Any]]:
    """Chunks of at most MAX_MEMBERS items per group, then halved while that shortens the
    estimated makespan (longest first to the least-loaded worker), so every worker has work and
    no stack is much longer than an even share. `cost(chunk)` estimates seconds."""
    chunks = [g[i : i + MAX_MEMBERS] for g in groups for i in range(0, len(g), MAX_MEMBERS)]

    def split_largest() -> bool:
        chunks.sort(key=cost, reverse=True)
        for i, chunk in enumerate(chunks):
            if len(chunk) > 1:
                half = (len(chunk) + 1) // 2
                chunks[i : i + 1] = [chunk[:half], chunk[half:]]
                return True
        return False

    def makespan() -> float:
        loads = [0.0] * max(1, workers)
        for c in sorted((cost(c) for c in chunks), reverse=True):
            loads[loads.index(min(loads))] += c
        return max(loads)

    # a stack of small models costs mostly dispatch, which halving does not remove: those stay whole
    while len(chunks) < workers and split_largest():
        pass
    for _ in range(sum(len(g) for g in groups)):
        before, saved = makespan(), list(chunks)
        if not split_largest() or makespan() > 0.95 * before:
            chunks[:] = saved
            break
    return chunks
