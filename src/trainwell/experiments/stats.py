"""Summaries over seeds: mean, standard deviation and a Student-t confidence interval, and the
paired difference of two variants over the seeds they share.

Pairing matters: two variants run with the same seed share data order and initial weights'
random stream, so seed-to-seed swings cancel in their difference and its interval is
narrower than the two separate intervals suggest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

CONFIDENCE = 0.95  # two-sided level of every interval in the reports


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student-t critical value, e.g. 4.303 for df=2 at 95%."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, df))


@dataclass(frozen=True)
class Estimate:
    n: int
    mean: float
    std: float  # sample standard deviation (ddof 1); nan for n < 2
    half_width: float  # of the confidence interval; nan for n < 2

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def excludes_zero(self) -> bool:
        return self.n >= 2 and (self.low > 0 or self.high < 0)


NAN = float("nan")


def estimate(values: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """Mean, sample std and the t-interval half-width of finite values (others are dropped)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return Estimate(0, NAN, NAN, NAN)
    mean = sum(xs) / n
    if n < 2:
        return Estimate(1, mean, NAN, NAN)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return Estimate(n, mean, std, t_quantile(n - 1, confidence) * std / math.sqrt(n))


def paired_difference(
    values: dict[int, float], reference: dict[int, float], confidence: float = CONFIDENCE
) -> Estimate:
    """Estimate of (variant − reference) over the seeds both have with finite values."""
    shared = sorted(s for s in values.keys() & reference.keys() if _finite(values[s]) and _finite(reference[s]))
    return estimate([values[s] - reference[s] for s in shared], confidence)


def number(v: object) -> float | None:
    """v as a finite float, or None (missing, empty, not a number, nan, inf): how result rows are read."""
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(float(v))


MOST_SEEDS = 200  # beyond this many seeds a paired comparison is no practical way to settle a difference


def seeds_needed(diff: float, std: float, confidence: float = CONFIDENCE, most: int = MOST_SEEDS) -> int | None:
    """Roughly how many paired seeds would tell a difference of this size from noise: the fewest n
    whose interval half-width t(n−1)·std/√n falls below |diff|, if the paired spread stays as
    observed. About half of such comparisons would then exclude zero: it is a rough scale, not a
    power calculation. None when |diff| is zero or more than `most` seeds would be needed."""
    if not (_finite(diff) and _finite(std)) or diff == 0:
        return None
    if std == 0:
        return 2
    import numpy as np
    from scipy.stats import t

    n = np.arange(2, most + 1)
    half = t.ppf(0.5 + confidence / 2, n - 1) * std / np.sqrt(n)
    enough = np.nonzero(half < abs(diff))[0]
    return int(n[enough[0]]) if len(enough) else None
