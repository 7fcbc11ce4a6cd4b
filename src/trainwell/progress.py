"""Live progress display: one line per epoch on stderr; --quiet silences it."""

from __future__ import annotations

import sys
from typing import Any, TextIO


class Progress:
    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.max_epochs = 0

    def __call__(self, event: str, **payload: Any) -> None:
        if self.quiet:  # quiet: no progress, but what loading inferred (task, column roles, warnings) still shows
            for line in payload.get("notes", []) if event == "start" else []:
                self.say(line)
            return
        handler = getattr(self, f"on_{event}", None)
        if handler is not None:
            handler(**payload)

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def on_start(self, lines: list[str], max_epochs: int, **_: Any) -> None:
        self.max_epochs = max_epochs
        for line in lines:
            self.say(line)

    def on_epoch_end(self, row: dict[str, Any], state: Any = None, **_: Any) -> None:
        metric = next(((k, v) for k, v in row.items() if k in ("val_mae", "val_accuracy")), None)
        shown = f"  {metric[0]} {metric[1]:.4f}" if metric else ""
        best = "  *" if state is not None and state.best_epoch == row["epoch"] else ""
        width = len(str(self.max_epochs))
        self.say(
            f"epoch {row['epoch']:>{width}}/{self.max_epochs}  train {row['train_loss']:.4f}  val {row['val_loss']:.4f}"
            f"{shown}  lr {_rates(row)}  |g| {row['grad_norm_mean']:.2f}  {row['seconds']:.2f}s{best}"
        )

    def on_message(self, text: str, **_: Any) -> None:
        self.say(text)


def _rates(row: dict[str, Any]) -> str:
    """The learning rate, or an ensemble's lowest–highest member rate when they differ."""
    low = row.get("lr_min", row["lr"])
    return f"{row['lr']:.2e}" if low == row["lr"] else f"{low:.2e}–{row['lr']:.2e}"
