"""A generated table shaped like the public flights table (one year of departures from three airports).

19 columns as the flights table has them: a row index (`rownames`), the date in parts and as an
ISO date-time (`time_hour`), clock times written HHMM, four text columns of 3 to ~4,000 levels
(origin, carrier, dest, tailnum), a whole-number flight code, distances and air times with a few
blanks, and the target `arr_delay` in minutes. The target needs interactions: departure delays
grow through the day at a rate that depends on the airport, storms hit one airport on one day,
the wind's effect on air time depends on the destination and the season, carriers and aircraft
fly at their own speeds, and the scheduled block time hides in two HHMM columns.

    from big_table import write_flights_like
    train_csv, test_csv = write_flights_like(rows=300_000, seed=0)   # cached under the temp folder
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

TARGET = "arr_delay"
TEST_FRACTION = 0.2


def _codes(rng: np.random.Generator, count: int, letters: int, prefix: str = "") -> np.ndarray:
    alphabet = np.array(list(string.ascii_uppercase))
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(prefix + "".join(rng.choice(alphabet, letters)))
    return np.array(sorted(codes))


def _zipf_probabilities(count: int, power: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, count + 1) ** power
    return weights / weights.sum()


def _hhmm(minutes: np.ndarray) -> np.ndarray:
    """Minutes after midnight (any integer) → a clock time written HHMM, as the flights table does."""
    m = np.mod(np.round(minutes).astype(np.int64), 24 * 60)
    return (m // 60) * 100 + m % 60


def flights_like(rows: int, seed: int = 0) -> pd.DataFrame:
    """The table in departure order (so `rownames` rises with the row order, as in the flights table)."""
    rng = np.random.default_rng(seed)
    origins = np.array(["EWR", "JFK", "LGA"])
    carriers = _codes(rng, 16, 2)
    dests = _codes(rng, 105, 3)
    tails = _codes(rng, 4000, 4, prefix="N")
    origin = rng.choice(3, rows, p=[0.36, 0.33, 0.31])
    carrier = rng.choice(16, rows, p=_zipf_probabilities(16, 1.1))
    dest = rng.choice(105, rows, p=_zipf_probabilities(105, 0.9))
    tail = rng.choice(len(tails), rows, p=_zipf_probabilities(len(tails), 0.3))
    day_of_year = rng.integers(0, 365, rows)
    sched_dep = rng.integers(5 * 60, 23 * 60, rows)  # minutes after midnight
    order = np.lexsort((sched_dep, day_of_year))
    origin, carrier, dest, tail, day_of_year, sched_dep = (
        a[order] for a in (origin, carrier, dest, tail, day_of_year, sched_dep)
    )
    hour = sched_dep // 60
    distance = np.exp(rng.uniform(np.log(180), np.log(2600), 105)).round()[dest]
    # departure delay (minutes): congestion through the day at a per-airport rate, storms per airport and day
    congestion = np.array([1.6, 1.0, 2.2])[origin] * np.clip(hour - 6, 0, None)
    storm = (rng.random((365, 3)) < 0.07) * rng.gamma(2.0, 35.0, (365, 3))
    carrier_delay = rng.normal(0, 6, 16)[carrier]
    dep_delay = -4 + congestion + storm[day_of_year, origin] * rng.random(rows) + carrier_delay
    dep_delay = np.round(np.maximum(dep_delay + rng.exponential(9, rows) - 5, -30))
    # air time: carrier and aircraft speeds, a wind that depends on the destination and the season
    speed = rng.uniform(7.0, 8.2, 16)[carrier] * rng.uniform(0.95, 1.05, len(tails))[tail]  # miles per minute
    wind = rng.normal(0, 0.08, 105)[dest] * np.cos(2 * np.pi * (day_of_year - 20) / 365)
    air_time = np.round(distance / speed * (1 + wind) + rng.normal(0, 3, rows))
    taxi = 14 + 0.45 * storm[day_of_year, origin] ** 0.8 + np.array([4.0, 7.0, 9.0])[origin] * (hour >= 16)
    block = np.round(distance / 7.6 + 28 + rng.normal(0, 4, 16)[carrier])  # scheduled gate-to-gate minutes
    arr_delay = dep_delay + taxi + air_time + rng.normal(0, 5, rows) - block
    date = pd.Timestamp("2013-01-01") + pd.to_timedelta(day_of_year, unit="D")
    air_time_shown = np.where(rng.random(rows) < 0.01, np.nan, air_time)  # a few blanks, as in the flights table
    return pd.DataFrame(
        {
            "rownames": np.arange(1, rows + 1),
            "year": 2013,
            "month": date.month,
            "day": date.day,
            "dep_time": _hhmm(sched_dep + dep_delay),
            "sched_dep_time": _hhmm(sched_dep),
            "dep_delay": dep_delay,
            "sched_arr_time": _hhmm(sched_dep + block),
            TARGET: np.round(arr_delay),
            "carrier": carriers[carrier],
            "flight": rng.integers(1, 6000, 16)[carrier] + rng.integers(0, 400, rows),
            "tailnum": tails[tail],
            "origin": origins[origin],
            "dest": dests[dest],
            "air_time": air_time_shown,
            "distance": distance,
            "hour": hour,
            "minute": sched_dep % 60,
            "time_hour": (date + pd.to_timedelta(hour, unit="h")).strftime("%Y-%m-%d %H:%M:%S"),
        }
    )


def write_flights_like(rows: int = 300_000, seed: int = 0, folder: str | None = None) -> tuple[Path, Path]:
    """(train.csv, test.csv): a seeded 80/20 split of the table, each in row order; written once, then reused."""
    where = Path(folder or tempfile.gettempdir()) / f"trainwell-flights-like-{rows}-{seed}"
    train, test = where / "train.csv", where / "test.csv"
    if train.exists() and test.exists():
        return train, test
    where.mkdir(parents=True, exist_ok=True)
    df = flights_like(rows, seed)
    is_test = np.random.default_rng(seed + 1).random(rows) < TEST_FRACTION
    df[~is_test].to_csv(train.with_suffix(".tmp"), index=False)
    df[is_test].to_csv(test.with_suffix(".tmp"), index=False)
    train.with_suffix(".tmp").replace(train)
    test.with_suffix(".tmp").replace(test)
    return train, test
