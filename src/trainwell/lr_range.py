"""The learning-rate range test's arithmetic, free of torch: pure functions on lists of numbers.

The test raises the learning rate exponentially, one optimizer step per value, and records the
training loss. The loss is smoothed with a bias-corrected exponential moving average (the raw
loss of single batches is too noisy to read), and the test stops once the smoothed loss exceeds
`STOP_FACTOR` times the best seen so far: past that point the network is diverging.

Suggestions, by three rules that people use (their spread says how sharp the choice is):
- steepest: where the smoothed loss falls fastest per decade of learning rate;
- minimum/10: a tenth of the learning rate at the smoothed loss's minimum;
- valley: the middle (on the log axis) of the longest stretch over which the loss keeps falling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

STEPS = 100  # optimizer steps of a range test
START_LR, END_LR = 1e-7, 10.0  # the range swept
STOP_FACTOR = 4.0  # stop once the smoothed loss exceeds this multiple of the best
BETA = (
    0.95  # smoothing: weight of the running average (about the last 20 steps; it lags the raw loss by about that much)
)
RULES = ("steepest", "minimum/10", "valley")
AUTO_RULE = "minimum/10"  # the rule `optim.lr: auto` and `schedule.max_lr: auto` use


def lr_schedule(start: float, end: float, steps: int) -> list[float]:
    """`steps` learning rates from start to end, evenly spaced on the log axis."""
    if steps < 2 or not 0 < start < end:
        raise ValueError("a range test needs steps >= 2 and 0 < start < end")
    ratio = (end / start) ** (1 / (steps - 1))
    return [start * ratio**i for i in range(steps)]


def smooth(losses: list[float], beta: float = BETA) -> list[float]:
    """Exponential moving average, divided by (1 - beta^k) so early values are not pulled to 0."""
    out, avg = [], 0.0
    for k, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**k))
    return out


def diverged(smoothed: float, best: float, factor: float = STOP_FACTOR) -> bool:
    return not math.isfinite(smoothed) or smoothed > factor * best


def steepest(lrs: list[float], smoothed: list[float]) -> float:
    """The lr of the most negative slope d(loss)/d(log10 lr) up to the loss's minimum, each slope
    taken over a window of a twentieth of the points either side (neighbours alone are too noisy)."""
    n, w = len(lrs), max(1, len(lrs) // 20)
    end = max(1, smoothed.index(min(smoothed)))
    slopes = {}
    for i in range(end + 1):
        lo, hi = max(0, i - w), min(n - 1, i + w)
        slopes[i] = (smoothed[hi] - smoothed[lo]) / math.log10(lrs[hi] / lrs[lo])
    return lrs[min(slopes, key=slopes.__getitem__)]


def minimum_tenth(lrs: list[float], smoothed: list[float]) -> float:
    return lrs[smoothed.index(min(smoothed))] / 10


def valley(lrs: list[float], smoothed: list[float]) -> float:
    """Middle of the longest decreasing subsequence's span of the smoothed loss (O(n²), n ≈ 100)."""
    n = len(smoothed)
    length, start = [1] * n, list(range(n))  # per end point: longest run length and where it starts
    for i in range(n):
        for j in range(i):
            if smoothed[j] > smoothed[i] and length[j] + 1 > length[i]:
                length[i], start[i] = length[j] + 1, start[j]
    end = max(range(n), key=lambda i: (length[i], -i))
    return lrs[(start[end] + end) // 2]


def suggest(lrs: list[float], smoothed: list[float]) -> dict[str, float]:
    if len(lrs) < 3 or len(lrs) != len(smoothed):
        raise ValueError("suggestions need at least 3 recorded steps")
    return {
        "steepest": steepest(lrs, smoothed),
        "minimum/10": minimum_tenth(lrs, smoothed),
        "valley": valley(lrs, smoothed),
    }


def spread_decades(suggestions: dict[str, float]) -> float:
    """How far apart the suggestions are, in powers of ten (0: they agree)."""
    values = list(suggestions.values())
    return math.log10(max(values) / min(values))


@dataclass
class RangeTest:
    lrs: list[float] = field(default_factory=list)  # learning rates actually tried
    losses: list[float] = field(default_factory=list)  # raw training loss of each step
    smoothed: list[float] = field(default_factory=list)
    stop_reason: str = "end of range"

    @property
    def suggestions(self) -> dict[str, float]:
        # the step that diverged is left out: its loss says nothing about a usable rate; so is the
        # first tenth, where the average still rests on a few noisy batches
        keep = len(self.lrs) - (self.stop_reason != "end of range")
        skip = min(keep // 10, max(0, keep - 3))
        return suggest(self.lrs[skip:keep], self.smoothed[skip:keep])

    def summary(self) -> list[str]:
        sugg = self.suggestions
        lines = [
            f"{rule:>11}: {lr:.3g}" + ("  (used by 'auto')" if rule == AUTO_RULE else "") for rule, lr in sugg.items()
        ]
        spread = spread_decades(sugg)
        factor = 10**spread
        lines.append(
            f"the suggestions lie within a factor of {factor:.1f} ({spread:.2f} decades) of each other"
            + ("; the curve is flat or noisy, so treat them with care" if spread > 1 else "")
        )
        lines.insert(
            0, f"range test: {len(self.lrs)} steps from {self.lrs[0]:.1e} to {self.lrs[-1]:.1e} ({self.stop_reason})"
        )
        return lines


def run_range_test(
    step: Callable[[float], float],
    start: float = START_LR,
    end: float = END_LR,
    steps: int = STEPS,
    factor: float = STOP_FACTOR,
    beta: float = BETA,
) -> RangeTest:
    """Call step(lr) -> training loss for each lr of the schedule until the loss diverges."""
    test = RangeTest()
    best = math.inf
    for lr in lr_schedule(start, end, steps):
        loss = step(lr)
        test.lrs.append(lr)
        test.losses.append(loss)
        test.smoothed = smooth(test.losses, beta)
        current = test.smoothed[-1]
        if len(test.lrs) > 1 and diverged(current, best, factor):
            test.stop_reason = (
                f"stopped: loss above {factor:g}x its best" if math.isfinite(current) else "stopped: loss not finite"
            )
            break
        best = min(best, current)
    return test
