"""Successive halving inside a stack: at a few fixed epochs the worse half of the members still
training stop, ranked by their best monitored validation value so far.

A stopped member keeps its best weights and history; up to its last epoch it is bit-identical
to the same configuration trained alone (each member owns its generators). The rungs depend
only on the config, and the ranking only on the members' state, so a resumed stack decides
exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from ..config import RunConfig
from ..planning import expected_epochs
from ..stop_reasons import HALVED


def rungs(cfg: RunConfig) -> list[int]:
    """Epochs at which a stack halves: a sixteenth, an eighth, a quarter and half of the epochs a
    run usually trains (all of them, or about three patiences with early stopping), at least 3.
    The sixteenth keeps --search 32 within ~5× the default's time: the first rung alone costs
    32 members × that many epochs (at an eighth, attrition's search took 6.2× the default's CPU time)."""
    expected = expected_epochs(cfg)
    points = (expected // 16, expected // 8, expected // 4, expected // 2)
    return sorted({e for e in points if 3 <= e < cfg.train.max_epochs})


def worse_half(values: list[float | None], mode: str) -> list[int]:
    """Indices of the worse half (rounded down) of these best values; None or NaN ranks last.
    Ties keep the earlier index ahead, so the choice never depends on anything but the values."""
    sign = -1.0 if mode == "max" else 1.0

    def badness(i: int) -> tuple[float, int]:
        v = values[i]
        return (math.inf if v is None or not math.isfinite(v) else sign * v, i)

    ranked = sorted(range(len(values)), key=badness)
    return sorted(ranked[len(values) - len(values) // 2 :])


def best_up_to(history: list[dict[str, Any]], epoch: int, monitor: str, mode: str) -> float | None:
    """The best monitored value among the first `epoch` rows (None when the run stopped before)."""
    if len(history) < epoch:
        return None
    values = [row[monitor] for row in history[:epoch] if math.isfinite(row[monitor])]
    if not values:
        return math.inf if mode == "min" else -math.inf
    return max(values) if mode == "max" else min(values)


def halver(
    at: list[int], earlier: dict[int, list[float]] | None = None, keep: str | None = None
) -> Callable[[Any, Any], None]:
    """An epoch-end hook for the run book: at each rung, the members still training that rank in
    the worse half of everything that reached that rung stop. `earlier`: the values at each rung
    of the configurations trained in earlier stacks (asynchronous successive halving, as ASHA:
    a stack whose layout is worse than what came before stops early). `keep`: the name of a run
    whose members rank but never stop (the default run, trained in the search's first stack)."""
    points, earlier = set(at), earlier or {}

    def at_epoch_end(trainer: Any, state: Any) -> None:
        if state.epoch not in points:
            return
        # every member that reached the rung ranks (one that early-stopped there too); the training ones may stop
        reached = [m for m in trainer.members if len(m.history) >= state.epoch]
        if not any(m.training for m in reached):
            return
        monitor, mode = reached[0].cfg.train.monitor, reached[0].stopper.mode
        mine = [best_up_to(m.history, state.epoch, monitor, mode) for m in reached]
        pool = [*mine, *earlier.get(state.epoch, [])]
        for i in worse_half(pool, mode):
            if i < len(reached) and reached[i].training and reached[i].cfg.name != keep:
                m = reached[i]
                m.stop_reason, m.stop_detail = HALVED, f"stopped by successive halving at epoch {state.epoch}"

    return at_epoch_end
