"""Live progress on stderr; --quiet silences it (what loading inferred still shows).

On a terminal, a single line redraws within each epoch (steps, rows/s, ETA of the epoch, the
running training loss), at most REDRAW_SECONDS apart, and each epoch ends with a plain line.
Written to a file or a pipe, nothing redraws: epoch lines at most one per LOG_SECONDS (the first
and the last always), and within a long epoch a plain step line once training has run
FIRST_STEP_SECONDS, then every STEP_LINE_SECONDS, so a log shows life early without filling up.
No library: tqdm or rich would add their import to every command's start-up for one line of text.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO

REDRAW_SECONDS = 0.2  # terminal: redraws of the live line
LOG_SECONDS = 1.0  # file or pipe: never more than one line per second
FIRST_STEP_SECONDS = 1.0  # file or pipe: the first step line after this much training
STEP_LINE_SECONDS = 10.0  # file or pipe: later step lines within an epoch


class Progress:
    def __init__(self, quiet: bool = False, stream: TextIO | None = None, clock: Callable[[], float] | None = None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.clock = clock or time.monotonic
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.log_file = not self.live and _is_file(self.stream)  # a real file or pipe: rate-limited lines
        self.max_epochs = 0
        self.drawn = False  # a live line is on screen and must be cleared before a plain line
        self.last_line = -float("inf")  # when the last plain line was written
        self.last_draw = -float("inf")
        self.epoch_start: float | None = None
        self.first_step_line = True
        self.held: str | None = None  # an epoch line held back by the one-per-second limit

    def __call__(self, event: str, **payload: Any) -> None:
        if self.quiet:  # quiet: no progress, but what loading inferred (task, column roles, warnings) still shows
            for line in payload.get("notes", []) if event == "start" else []:
                self.say(line)
            return
        handler = getattr(self, f"on_{event}", None)
        if handler is not None:
            handler(**payload)

    def say(self, text: str) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[2K")
            self.drawn = False
        print(text, file=self.stream, flush=True)
        self.last_line = self.clock()

    def on_start(self, lines: list[str], max_epochs: int, **_: Any) -> None:
        self.max_epochs = max_epochs
        for line in lines:
            self.say(line)

    def on_step(self, step: int, steps: int, rows: int, loss: Callable[[], float], **_: Any) -> None:
        """After each optimizer step: `rows` trained this epoch so far, `loss` its running mean (lazy)."""
        now = self.clock()
        if self.epoch_start is None or step <= 1:
            self.epoch_start = now if step <= 1 or self.epoch_start is None else self.epoch_start
            return
        if self.live:
            if now - self.last_draw >= REDRAW_SECONDS:
                self._draw(self._step_text(step, steps, rows, loss, now))
        elif self.log_file and now - self.last_line >= (
            FIRST_STEP_SECONDS if self.first_step_line else STEP_LINE_SECONDS
        ):
            if now - self.epoch_start >= FIRST_STEP_SECONDS:
                self.say(self._step_text(step, steps, rows, loss, now))
                self.first_step_line = False

    def _step_text(self, step: int, steps: int, rows: int, loss: Callable[[], float], now: float) -> str:
        elapsed = max(now - self.epoch_start, 1e-9)
        eta = elapsed / step * (steps - step)
        return f"  step {step}/{steps}  {rows / elapsed:,.0f} rows/s  ETA {eta:.0f} s  train {loss():.4f}"

    def _draw(self, text: str) -> None:
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()
        self.drawn, self.last_draw = True, self.clock()

    def on_epoch_end(self, row: dict[str, Any], state: Any = None, **_: Any) -> None:
        self.epoch_start = None
        metric = next(((k, v) for k, v in row.items() if k in ("val_mae", "val_accuracy")), None)
        shown = f"  {metric[0]} {metric[1]:.4f}" if metric else ""
        best = "  *" if state is not None and state.best_epoch == row["epoch"] else ""
        width = len(str(self.max_epochs))
        text = (
            f"epoch {row['epoch']:>{width}}/{self.max_epochs}  train {row['train_loss']:.4f}  val {row['val_loss']:.4f}"
            f"{shown}  lr {_rates(row)}  |g| {row['grad_norm_mean']:.2f}  {row['seconds']:.2f}s{best}"
        )
        if not self.log_file or row["epoch"] == 1 or self.clock() - self.last_line >= LOG_SECONDS:
            self.held = None
            self.say(text)
        else:
            self.held = text  # shown at the end if no later epoch line replaces it

    def on_end(self, **_: Any) -> None:
        if self.held is not None:
            self.say(self.held)
            self.held = None

    def on_message(self, text: str, **_: Any) -> None:
        self.on_end()  # the held epoch line first, so lines stay in order
        self.say(text)


def _rates(row: dict[str, Any]) -> str:
    """The learning rate, or an ensemble's lowest–highest member rate when they differ."""
    low = row.get("lr_min", row["lr"])
    return f"{row['lr']:.2e}" if low == row["lr"] else f"{low:.2e}–{row['lr']:.2e}"


def _is_file(stream: TextIO) -> bool:
    """Whether the stream is backed by a file descriptor (a log file or a pipe, not a StringIO)."""
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True
