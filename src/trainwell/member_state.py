"""One member's state in last.pt: the schema, how each piece is captured and how it is put back.

Exact resume is the core promise, so every piece of a member's state is one `StateField` below:
its key in last.pt, the code that captures it and the code that applies it, side by side. A new
piece of state is one new row. Three kinds of rows:
- stack rows (`row=True`): the member's weights, average and optimizer state; saved while the
  member holds a row in the stack (None once it stopped and left), applied when present;
- bookkeeping: its schedule, early stopping, history, stop reason and generators;
- the loop's mid-epoch tensors (`loop_dim` set): its column of this epoch's order, step losses
  and gradient norms, saved only mid-epoch and stacked back into the LoopState over all members.
torch's global generator stream (module path) is applied after the process's own generator
state, so it is a row of its own kind (`after_rng=True`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from . import rundir
from .errors import CheckpointError
from .loop import LoopState, Member, Trainer
from .seeding import rng_restore
from .stop_reasons import INTERRUPTED, MAX_EPOCHS


@dataclass(frozen=True)
class StateField:
    key: str
    capture: Callable[[Trainer, LoopState, Member], Any]
    apply: Callable[[Trainer, Member, Any], None] | None = None  # None: the loop's tensors, stacked by restore
    row: bool = False  # lives in the stack: None once the member has left it
    loop_dim: int | None = None  # the LoopState tensor of this key holds members along this dimension
    after_rng: bool = False  # applied after the process's generator state is restored


def _load_schedule(t: Trainer, m: Member, state: dict[str, Any]) -> None:
    m.schedule.load_state_dict(state)


def _load_history(t: Trainer, m: Member, history: str | list[dict[str, Any]]) -> None:
    m.history = json.loads(history) if isinstance(history, str) else history


def _set(attr: str, convert: Callable[[Any], Any] = lambda v: v) -> Callable[[Trainer, Member, Any], None]:
    return lambda t, m, value: setattr(m, attr, convert(value))


def _load_generators(t: Trainer, m: Member, states: dict[str, torch.Tensor]) -> None:
    for k, state in states.items():
        m.generators[k].set_state(state)


def _mid_epoch(key: str, dim: int) -> StateField:
    def capture(t: Trainer, s: LoopState, m: Member) -> torch.Tensor | None:
        if s.perm is None or m.row is None:
            return None
        return getattr(s, key).select(dim, m.row).cpu()

    return StateField(key, capture, loop_dim=dim)


MEMBER_STATE: tuple[StateField, ...] = (
    StateField(
        "weights",
        lambda t, s, m: t.stack.pack(m.row, average=False),
        lambda t, m, v: t.stack.unpack(m.row, v, average=False),
        row=True,
    ),
    StateField(
        "average",
        lambda t, s, m: t.stack.pack(m.row, average=True) if t.stack.has_average else None,
        lambda t, m, v: t.stack.unpack(m.row, v, average=True) if t.stack.has_average else None,
        row=True,
    ),
    StateField(
        "optimizer",
        lambda t, s, m: t.optimizer.state_rows(m.row),
        lambda t, m, v: t.optimizer.load_rows(m.row, v),
        True,
    ),
    StateField("schedule", lambda t, s, m: m.schedule.state_dict(), _load_schedule),
    StateField("early_stopping", lambda t, s, m: m.stopper.state_dict(), lambda t, m, v: m.stopper.load_state_dict(v)),
    # history as one JSON string: torch.save pays ~1 µs per pickled object
    StateField("history", lambda t, s, m: json.dumps(m.history), _load_history),
    StateField("stop_reason", lambda t, s, m: m.stop_reason, _set("stop_reason")),
    StateField("stop_detail", lambda t, s, m: m.stop_detail, _set("stop_detail")),
    StateField("seconds", lambda t, s, m: m.seconds, _set("seconds", float)),
    StateField("best", lambda t, s, m: m.best, _set("best")),
    StateField("generators", lambda t, s, m: {k: g.get_state() for k, g in m.generators.items()}, _load_generators),
    StateField(
        "torch_rng",
        lambda t, s, m: t.stack.rng_state(m.row),
        lambda t, m, v: t.stack.load_rng_state(m.row, v),
        row=True,
        after_rng=True,
    ),
    _mid_epoch("perm", 0),
    _mid_epoch("step_loss", 1),
    _mid_epoch("step_norm", 1),
)


def capture(t: Trainer, s: LoopState, m: Member) -> dict[str, Any]:
    """Everything one member needs to continue exactly, as plain data."""
    return {
        f.key: None if f.row and m.row is None else f.capture(t, s, m)  # a stopped member has left the stack
        for f in MEMBER_STATE
    }


def apply(t: Trainer, m: Member, saved: dict[str, Any]) -> None:
    """Put one member's saved state back (all but the loop's tensors and torch's stream)."""
    for f in MEMBER_STATE:
        if f.apply is None or f.after_rng:
            continue
        if f.row and saved["weights"] is None:  # stopped before the last save: its bookkeeping only
            continue
        if saved[f.key] is not None or not f.row:
            f.apply(t, m, saved[f.key])


def restore(t: Trainer, payloads: list[dict[str, Any]], run_dirs: list[Path]) -> LoopState:
    """Load every member's state from its run's last.pt; all must stand at the same epoch and step."""
    loops = {(p["loop"]["epoch"], p["loop"]["step"]) for p in payloads}
    if len(loops) != 1:
        raise CheckpointError("runs resumed together must stand at the same epoch and step")
    ((epoch, step),) = loops
    loop = payloads[0]["loop"]
    s = LoopState(epoch=epoch, step=step, offset=int(loop.get("offset", 0)), epoch_seconds=float(loop["epoch_seconds"]))
    rows = t.rows()
    saved_rows = []  # every member's saved state, in stack-row order
    for run, payload, d in zip(t.book.runs, payloads, run_dirs):
        try:
            for m, saved in zip(run.members, payload["members"]):
                apply(t, m, saved)
                saved_rows.append(saved)
        except (KeyError, ValueError, RuntimeError, TypeError, IndexError):
            raise CheckpointError(
                f"checkpoint {str(d / rundir.LAST_PT)!r} does not match its run's model, optimizer or schedule"
            ) from None
    rng_restore(payloads[0]["rng"], {})
    _restore_mid_epoch(t, s, saved_rows)
    for m in rows:  # torch's global stream of a lone module-path member is restored last
        for f in MEMBER_STATE:
            if f.after_rng and saved_rows[m.row][f.key] is not None:
                f.apply(t, m, saved_rows[m.row][f.key])
    for run in t.book.runs:  # a finished max_epochs may have grown; an interrupted member trains on
        for m in run.members:
            budget = m.cfg.train.max_steps
            spent = budget is not None and m.schedule.steps_done >= budget
            if m.stop_reason == MAX_EPOCHS and len(m.history) < m.cfg.train.max_epochs and not spent:
                m.stop_reason = None
            if m.stop_reason == INTERRUPTED:
                m.stop_reason = None
    return s


def _restore_mid_epoch(t: Trainer, s: LoopState, saved_rows: list[dict[str, Any]]) -> None:
    """Mid-epoch, the loop's tensors over all members; members that had stopped get placeholders
    (they do not train)."""
    mid = next((saved for saved in saved_rows if saved["perm"] is not None), None)
    if mid is None:
        return
    for f in MEMBER_STATE:
        if f.loop_dim is not None:
            parts = [saved[f.key] if saved[f.key] is not None else torch.zeros_like(mid[f.key]) for saved in saved_rows]
            setattr(s, f.key, torch.stack(parts, dim=f.loop_dim).to(t.device))
