"""Early stopping as a small self-contained object: it watches one metric and counts epochs
without improvement; the loop reads `should_stop` and restores the best weights itself."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class EarlyStopping:
    patience: int  # epochs in a row without improvement before stopping
    min_delta: float = 0.0  # smallest change that counts as an improvement
    mode: str = "min"  # "min" or "max"
    enabled: bool = True  # off: it still tracks the best epoch (for best.pt) but never stops
    best_value: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0

    def improved(self, value: float) -> bool:
        if self.best_value is None:
            return math.isfinite(value)
        if self.mode == "min":
            return value < self.best_value - self.min_delta
        return value > self.best_value + self.min_delta

    def update(self, epoch: int, value: float) -> bool:
        """Record one epoch's value; True when it is the best so far."""
        if self.improved(value):
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.enabled and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_value, self.best_epoch, self.bad_epochs = (
            state["best_value"],
            state["best_epoch"],
            int(state["bad_epochs"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def replayed(history: list[dict[str, Any]], monitor: str, mode: str, min_delta: float = 0.0) -> EarlyStopping:
    """The stopper's own rule run over a history's `monitor` column: its best epoch and value. An
    ensemble's best is read this way from its averaged rows, so the live mark, metrics.json and
    the advice name the same epoch."""
    tracker = EarlyStopping(patience=0, min_delta=min_delta, mode=mode, enabled=False)
    for row in history:
        value = row.get(monitor)
        if value is not None:
            tracker.update(int(row["epoch"]), float(value))
    return tracker
