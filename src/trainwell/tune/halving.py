"""Successive halving inside a stack: at a few epochs all but the best third of the members
still training stop (ASHA's reduction factor 3), ranked by their best monitored validation value so far.

The epochs are fractions of the epochs the default run trained (it trains first, alone): on
small tables it early-stops after 17-18 epochs where planning's guess is ~45, and halving at
fractions of the guess let most of the search train past the point where the default had stopped.

A stopped member keeps its best weights and history; up to its last epoch it is bit-identical
to the same configuration trained alone (each member owns its generators). The rungs depend
only on the config and the default run's finished length (read from its metrics.json), and the
ranking only on the members' state, so a resumed stack decides exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from ..stop_reasons import HALVED

# the shares of the default run's epochs at which a stack halves (see rungs)
RUNG_SHARES = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1)
# a member stops once it has not improved for this share of the default run's epochs (when that is under its
# patience): where the default peaked after 2-3 epochs and stopped at 18, 15 epochs of patience are most of a
# member's cost and bought nothing for the default
STALE_SHARE = 1 / 3
# the earliest halving, on every table: after one epoch (ASHA's minimum resource). At epoch 2, or a sixteenth of the
# default's epochs where that is later, the first rung trained all 32 configurations that long, the search's largest
# cost after the folds: on the 17-table benchmark (3,000 rows), a rung at epoch 1 on the tables whose default stops
# within ~20 epochs took the search from 4.45x to 4.02x the default's CPU (error ratio 0.772 -> 0.773), and on every
# table to 4.12x (0.765: digits 0.190 -> 0.159; results/search-s6-*.json)
FIRST_RUNG = 1
MIN_STALE = 2  # a member stops after no fewer epochs without improvement than this (stale_after)
REDUCTION = 3  # at each rung the best third of the members keep training (ASHA's eta)


def rungs(default_epochs: int, max_epochs: int) -> list[int]:
    """Epochs at which a stack halves: epoch FIRST_RUNG, then a sixteenth, an eighth, a quarter, half and all of
    the epochs the default run trained (its early stop), below max_epochs. With the tabular preset on a 3,000-row
    table the default stops after 11 epochs (default) to 68 (signal): rungs 1, 3, 6, 11 to 1, 4, 8, 17, 34, 68.
    A member still improving when the default stopped trains on."""
    if default_epochs < FIRST_RUNG:
        return []
    points = [FIRST_RUNG, *(round(default_epochs * share) for share in RUNG_SHARES)]
    return sorted({e for e in points if FIRST_RUNG <= e < max_epochs})


def stale_after(default_epochs: int) -> int:
    """Epochs without improvement after which a member stops (halver's `stale`): a third of the
    default run's epochs, at least MIN_STALE (a member's own patience still applies when shorter)."""
    return max(MIN_STALE, round(default_epochs * STALE_SHARE))


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
    at: list[int], earlier: dict[int, list[float]] | None = None, stale: int | None = None
) -> Callable[[Any, Any], None]:
    """An epoch-end hook for the run book: at each rung, the members still training that rank
    outside the best third of everything that reached that rung stop. `earlier`: the values at each rung
    of the configurations trained in earlier stacks (asynchronous successive halving, as ASHA:
    a stack whose layout is worse than what came before stops early). `stale`: at any epoch, a member
    that has not improved for that many epochs stops (None: only its own patience)."""
    points, earlier = set(at), earlier or {}

    def at_epoch_end(trainer: Any, state: Any) -> None:
        if stale is not None:
            for m in trainer.members:
                if m.training and m.stopper.bad_epochs >= stale:
                    m.stop_reason, m.stop_detail = HALVED, f"no improvement for {stale} epochs (halving's limit)"
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
            if i < len(reached) and reached[i].training:
                m = reached[i]
                m.stop_reason, m.stop_detail = HALVED, f"stopped by successive halving at epoch {state.epoch}"

    return at_epoch_end
