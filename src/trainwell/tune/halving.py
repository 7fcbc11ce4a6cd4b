"""Successive halving inside a stack: at a few fixed epochs all but the best third of the members
still training stop (ASHA's reduction factor 3), ranked by their best monitored validation value so far.

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

# the share of the epochs a run usually trains at which a stack halves (see rungs)
RUNG_SHARES = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1)
REDUCTION = 3  # at each rung the best third of the members keep training (ASHA's eta)


def rungs(cfg: RunConfig) -> list[int]:
    """Epochs at which a stack halves: a sixteenth, an eighth, a quarter, half and all of the epochs
    a run usually trains (all of them, or about three patiences with early stopping), at least 3.
    The sixteenth keeps --search 32 within ~5× the default's time: the first rung alone costs
    32 members × that many epochs (at an eighth, attrition's search took 6.2× the default's CPU time).
    With the tabular preset's default (45 expected epochs) the rungs are 5, 11, 22 and 45; keeping
    the best third instead of half at them took caravan's search from 5.3× to 4.0× the default's
    CPU time and check_times' from 6.2× to 4.4× (benchmarks/results/search-cost-q-*.json)."""
    expected = expected_epochs(cfg)
    points = (int(expected * share) for share in RUNG_SHARES)
    return sorted({e for e in points if 3 <= e < cfg.train.max_epochs})


def worse_share(values: list[float | None], mode: str) -> list[int]:
    """Indices of all but the best 1/REDUCTION (rounded up) of these best values (with REDUCTION 3
    the worse two thirds, rounded down); None or NaN ranks last.
    Ties keep the earlier index ahead, so the choice never depends on anything but the values."""
    sign = -1.0 if mode == "max" else 1.0

    def badness(i: int) -> tuple[float, int]:
        v = values[i]
        return (math.inf if v is None or not math.isfinite(v) else sign * v, i)

    ranked = sorted(range(len(values)), key=badness)
    return sorted(ranked[math.ceil(len(values) / REDUCTION) :])


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
    """An epoch-end hook for the run book: at each rung, the members still training that rank
    outside the best third of everything that reached that rung stop. `earlier`: the values at each rung
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
        for i in worse_share(pool, mode):
            if i < len(reached) and reached[i].training and reached[i].cfg.name != keep:
                m = reached[i]
                m.stop_reason, m.stop_detail = HALVED, f"stopped by successive halving at epoch {state.epoch}"

    return at_epoch_end
