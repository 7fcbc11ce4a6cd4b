"""Caruana's ensemble selection (Caruana et al., 2004): greedily add, with replacement, the
member whose addition most improves the ensemble's score on held-out rows, then keep the
best prefix. Run on the validation rows (engine.validation_views), from the default's seeds,
bagged (Caruana et al., 2006): repeated on random halves of those rows and the picks pooled, so
that no member is chosen for a few rows it happens to fit (one pass on all rows lost to the
default on digits, caravan and car: 1.27×, 1.04× and 1.01× its test error; twenty halves 1.15×,
1.01× and 1.01×, and 0.975× the default's error over seven tables instead of 0.988×).

A classification ensemble is scored as the user gets it: its log loss at the best of the temperatures
calibration.fit may give it (temperature_grid), not at temperature 1. Members taught with label
smoothing are unsure by design, and at temperature 1 the sharpest of them scored best on the
validation rows and worst once the ensemble's temperature was fitted (digits: test log loss 0.068 →
0.103). Each bag's additions are also scored on the other half of the rows, which that bag did not
see: when on average they lose there, the choice does not carry to new rows and the default's
ensemble is kept (attrition: the additions lost on 15 of 20 held-out halves; kept, they took the
test 1 − AUC from 0.167 to 0.185).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .. import calibration
from ..outputs import test_metrics

ROUNDS = 25  # additions tried; the best-scoring prefix is kept (a few rounds settle on tabular data)
BAGS = 20  # bagged_caruana's passes, each on a random half of the choosing rows
TEMPERATURE_STEPS = 16  # temperatures a classification ensemble is scored at (temperature_grid), log-spaced
# elements (temperatures × classes × members × rows) of one tensor while scoring at every temperature: ~64 MiB float64
CHUNK_ELEMENTS = 8_000_000


@dataclass
class Selection:
    picks: list[int]  # member indices in the order added, with repeats (a repeat weighs that member more)
    score: float  # the ensemble's value of `metric` on the choosing rows
    single_best: int  # the best member alone
    single_score: float
    metric: str  # without the val_ prefix, e.g. loss, mae, accuracy
    trace: list[float]  # the ensemble's score after each addition
    # bagged_caruana with a start: the bags' additions' mean gain over the start on the rows each bag left out
    # (in `metric`'s units, > 0: better); None otherwise
    held_out_gain: float | None = None

    def counts(self) -> dict[int, int]:
        return dict(Counter(self.picks))


@dataclass(frozen=True)
class Choosing:
    """What an ensemble is chosen from and how it is scored: members' raw outputs on the choosing rows
    and their targets, the metric and its direction, and what scorer() takes (std, cal, temperatures)."""

    task: str
    outs: list[torch.Tensor]
    y: torch.Tensor
    metric: str
    mode: str
    std: float = 1.0
    cal: dict[str, Any] | None = None
    temperatures: tuple[float, ...] | None = None

    def on(self, rows: torch.Tensor) -> Choosing:
        """The same choice on a subset of the rows (a bag, or the rows it left out)."""
        return dataclasses.replace(self, outs=[o[rows] for o in self.outs], y=self.y[rows])

    def scorer(self) -> Callable[[dict[int, int]], float]:
        return scorer(self.task, self.outs, self.y, self.metric, self.std, self.cal, self.temperatures)


def ensemble_score(
    task: str,
    outs: list[torch.Tensor],
    counts: dict[int, int],
    y: torch.Tensor,
    metric: str,
    std: float,
    cal: dict[str, Any] | None = None,
) -> float:
    """`metric` of the ensemble that averages member i counts[i] times (outputs.test_metrics' rules),
    a classification's probabilities corrected by `cal` (the class weights' prior) when given."""
    chosen = [outs[i] for i, c in counts.items() for _ in range(c)]
    return test_metrics(task, chosen, y, std, cal)[metric]


def caruana(
    task: str,
    outs: list[torch.Tensor],
    y: torch.Tensor,
    metric: str,
    mode: str,
    std: float = 1.0,
    start: list[int] | None = None,
    cal: dict[str, Any] | None = None,
    temperatures: tuple[float, ...] | None = None,
) -> Selection:
    """Members' raw outputs (logits or predictions) on the selection rows → the chosen multiset.
    `start`: members the ensemble begins from (the default run's seeds): the greedy additions
    then start there, so the result is never worse than `start` alone on these rows (keeping
    none of the additions is one of the prefixes weighed). Without `start` they start from the
    best single member, which on a few hundred rows is often chosen alone and then loses on the
    test rows (mlc_churn: one member, picked 25 times). `cal`: probability corrections applied
    before scoring (ensemble.prior_correction), so that the choice weighs the probabilities a user gets;
    `temperatures`: the log loss is scored at the best of these (temperature_grid), as the saved ensemble's
    temperature will be fitted."""
    return _caruana(Choosing(task, outs, y, metric, mode, std, cal, temperatures), start)


def _caruana(c: Choosing, start: list[int] | None) -> Selection:
    score, added, singles, best = _singles(c)
    chosen = _greedy(len(c.outs), score, c.mode, list(start) if start else [best], c.metric, added)
    return Selection(chosen.picks, chosen.score, best, singles[best], c.metric, chosen.trace)


def _singles(
    c: Choosing,
) -> tuple[Callable[[dict[int, int]], float], Callable[[dict[int, int]], list[float]] | None, list[float], int]:
    """(counts → score, the loss's all-members greedy step or None, each member's score alone, the best member)."""
    if not c.outs:
        raise ValueError("ensemble selection needs at least one member")
    score = c.scorer()
    added = loss_if_added(c.task, c.outs, c.y, c.cal, c.temperatures) if c.metric == "loss" else None
    singles = added({}) if added else [score({i: 1}) for i in range(len(c.outs))]
    best = min(range(len(c.outs)), key=lambda i: -singles[i] if c.mode == "max" else singles[i])
    return score, added, singles, best


def scorer(
    task: str,
    outs: list[torch.Tensor],
    y: torch.Tensor,
    metric: str,
    std: float,
    cal: dict[str, Any] | None,
    temperatures: tuple[float, ...] | None = None,
) -> Callable[[dict[int, int]], float]:
    """counts → the ensemble's `metric` on these rows; the loss (the monitor of most runs) is scored
    without the other metrics (~15× faster), at the best of `temperatures` when given."""
    if metric == "loss":
        return loss_scorer(task, outs, y, cal, temperatures)
    return lambda counts: ensemble_score(task, outs, counts, y, metric, std, cal)


def loss_scorer(
    task: str,
    outs: list[torch.Tensor],
    y: torch.Tensor,
    cal: dict[str, Any] | None,
    temperatures: tuple[float, ...] | None = None,
) -> Callable[[dict[int, int]], float]:
    """counts → the ensemble's loss as outputs.test_metrics gives it (mean squared error of the mean
    prediction, or log loss of the mean probability corrected by `cal`, at the best of `temperatures`
    when given), from each member's probabilities computed once instead of per call."""
    if task == "regression":
        preds = torch.stack(outs)
        return lambda counts: (_weighted_mean(preds, counts) - y).pow(2).mean().item()
    probs = torch.softmax(torch.stack(outs).float(), dim=-1)
    return lambda counts: log_losses(_weighted_mean(probs, counts).unsqueeze(0), y, cal, temperatures)[0].item()


def temperature_grid(smoothed: bool) -> tuple[float, ...]:
    """The temperatures a classification ensemble is scored at while chosen: calibration.fit's range
    (from SMOOTHED_T_MIN when members were taught with label smoothing, else from 1), TEMPERATURE_STEPS
    log-spaced points, 1 among them (fit keeps 1 when nothing beats it)."""
    low = calibration.SMOOTHED_T_MIN if smoothed else calibration.T_RANGE[0]
    grid = torch.logspace(math.log10(low), math.log10(calibration.T_RANGE[1]), TEMPERATURE_STEPS, dtype=torch.float64)
    return tuple(sorted({1.0, *grid.tolist()}))


def log_losses(
    means: torch.Tensor, y: torch.Tensor, cal: dict[str, Any] | None, temperatures: tuple[float, ...] | None
) -> torch.Tensor:
    """(M, N, C) mean probabilities of M ensembles → their (M,) log losses with `cal`'s corrections;
    with `temperatures`, `cal`'s prior shift then each ensemble's best temperature among them."""
    if temperatures is None:
        logp = torch.log(means.clamp(min=1e-12))
        labels = y.long().view(1, -1, 1).expand(len(logp), -1, 1)
        return -calibration.apply(logp, cal).gather(-1, labels).mean(dim=(1, 2))
    return losses_by_temperature(means, y, cal, temperatures).min(dim=1).values


def losses_by_temperature(
    means: torch.Tensor, y: torch.Tensor, cal: dict[str, Any] | None, temperatures: tuple[float, ...]
) -> torch.Tensor:
    """(M, N, C) mean probabilities → (M, temperatures) log losses after `cal`'s prior shift, at each temperature.
    The log-sum-exp runs over the classes as the outer dimension ((C, T, M, N), each class a contiguous slab), every
    temperature in one operation: log_softmax over a handful of classes innermost took ~6× as long, and a loop over
    the temperatures was dispatch-bound (car's selection: 2.6 → 0.9 s of a 15 s search)."""
    logp = torch.log(means.clamp(min=1e-12))
    if cal is not None:
        logp = logp + torch.tensor(cal["prior_shift"], dtype=logp.dtype)
    label = logp.gather(-1, y.long().view(1, -1, 1).expand(len(logp), -1, 1)).squeeze(-1)  # (M, N)
    by_class = logp.movedim(-1, 0).contiguous()  # (C, M, N)
    top = by_class.max(dim=0).values  # subtracted before exp: no overflow at any temperature
    temps = torch.tensor(temperatures, dtype=logp.dtype).view(-1, 1, 1)  # (T, 1, 1)
    per_chunk = max(1, CHUNK_ELEMENTS // (len(temperatures) * logp[0].numel()))
    losses = []
    for shifted, gap in zip((by_class - top).split(per_chunk, dim=1), (top - label).split(per_chunk)):
        lse = (shifted.unsqueeze(1) / temps).exp_().sum(dim=0).log_()  # (C, T, m, N) → (T, m, N)
        losses.append((lse + gap / temps).mean(dim=-1).T)  # (m, T)
    return torch.cat(losses)


def around_best(
    mean: torch.Tensor, y: torch.Tensor, cal: dict[str, Any] | None, temperatures: tuple[float, ...]
) -> tuple[float, ...]:
    """The temperature at which the ensemble with (N, C) mean probabilities scores best, and its neighbours
    among `temperatures`: adding one member to an ensemble moves its best temperature little."""
    best = int(losses_by_temperature(mean.unsqueeze(0), y, cal, temperatures)[0].argmin())
    return temperatures[max(0, best - 1) : best + 2]


def loss_if_added(
    task: str,
    outs: list[torch.Tensor],
    y: torch.Tensor,
    cal: dict[str, Any] | None,
    temperatures: tuple[float, ...] | None = None,
) -> Callable[[dict[int, int]], list[float]]:
    """counts → the ensemble's loss (as loss_scorer) with each member added once more, all members in
    one tensor operation (in float64): the greedy step, ~30× faster than a loss_scorer call per member.
    With `temperatures`, each at the best of the three around the current ensemble's best (around_best)."""
    if task == "regression":
        members = torch.stack(outs).double()
        target = y.double()
        dims = tuple(range(1, members.dim()))
        return lambda counts: (
            ((_sum(members, counts) + members) / (_total(counts) + 1) - target).pow(2).mean(dims).tolist()
        )
    probs = torch.softmax(torch.stack(outs).double(), dim=-1)

    def step(counts: dict[int, int]) -> list[float]:
        total, temps = _sum(probs, counts), temperatures
        if temperatures is not None and counts:  # 3 temperatures instead of all 17: ~5× faster
            temps = around_best(total / _total(counts), y, cal, temperatures)
        return log_losses((total + probs) / (_total(counts) + 1), y, cal, temps).tolist()

    return step


def _sum(stacked: torch.Tensor, counts: dict[int, int]) -> torch.Tensor | float:
    return sum((c * stacked[i] for i, c in counts.items()), 0.0)


def _total(counts: dict[int, int]) -> int:
    return sum(counts.values())


def _weighted_mean(stacked: torch.Tensor, counts: dict[int, int]) -> torch.Tensor:
    return sum(c * stacked[i] for i, c in counts.items()) / sum(counts.values())


def _better(mode: str):
    return (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)


def _greedy(
    n: int,
    score: Callable[[dict[int, int]], float],
    mode: str,
    first: list[int],
    metric: str,
    added: Callable[[dict[int, int]], list[float]] | None = None,
) -> Selection:
    """Greedy additions with replacement among n members after the members `first`; the
    best-scoring prefix (the shortest among equals, `first` alone included) is kept.
    `added`: counts → every member's score when added once more (score called per member without)."""
    better = _better(mode)
    counts = dict(Counter(first))
    picks, trace = list(first), [score(counts)]
    for _ in range(ROUNDS - 1):
        scored = added(counts) if added else [score({**counts, i: counts.get(i, 0) + 1}) for i in range(n)]
        pick = min(range(n), key=lambda i: -scored[i] if mode == "max" else scored[i])
        counts[pick] = counts.get(pick, 0) + 1
        picks.append(pick)
        trace.append(scored[pick])
    keep = 0
    for k in range(1, len(trace)):  # the shortest prefix with the best score
        if better(trace[k], trace[keep]):
            keep = k
    return Selection(picks[: len(first) + keep], trace[keep], first[0], trace[0], metric, trace)


def bagged_caruana(
    task: str,
    outs: list[torch.Tensor],
    y: torch.Tensor,
    metric: str,
    mode: str,
    std: float = 1.0,
    start: list[int] | None = None,
    cal: dict[str, Any] | None = None,
    temperatures: tuple[float, ...] | None = None,
) -> Selection:
    """caruana on BAGS random halves of the rows (seeded: the same rows give the same choice), each
    pass's picks pooled and the pool rounded to as many picks as one pass may make (largest
    remainders), so the saved ensemble predicts no slower than one pass's. Scored on all rows;
    with `start`, never worse there than `start` alone, and `start` alone is kept too when the
    passes' additions lose to it on average on the halves they left out (held_out_gain <= 0)."""
    c = Choosing(task, outs, y, metric, mode, std, cal, temperatures)
    score, _, singles, best = _singles(c)
    totals, gains = _bags(c, start)
    picks = rounded(totals, len(start or [0]) + ROUNDS - 1)
    value = score({i: picks.count(i) for i in set(picks)})
    held_out = sum(gains) / len(gains) if gains else None
    if start:
        alone = score(dict(Counter(start)))
        # the start alone scores better on all rows, or the additions did not carry to rows they were not chosen on
        if _better(mode)(alone, value) or (held_out is not None and held_out <= 0):
            picks, value = list(start), alone
    return Selection(picks, value, best, singles[best], metric, [value], held_out)


def _bags(c: Choosing, start: list[int] | None) -> tuple[dict[int, int], list[float]]:
    """(times each member was picked over the BAGS passes, with `start` each pass's gain over `start`
    alone on the rows it left out: > 0 when its picks score better there)."""
    n, totals, gains = len(c.y), dict.fromkeys(range(len(c.outs)), 0), []
    generator = torch.Generator().manual_seed(0)
    for _ in range(BAGS):
        order = torch.randperm(n, generator=generator)
        rows, left = order[: max(1, n // 2)].sort().values, order[max(1, n // 2) :].sort().values
        picks = _caruana(c.on(rows), start).picks
        for i in picks:
            totals[i] += 1
        if start and len(left):
            there = c.on(left).scorer()
            gain = there(dict(Counter(start))) - there(dict(Counter(picks)))
            gains.append(-gain if c.mode == "max" else gain)
    return totals, gains


def rounded(totals: dict[int, int], slots: int) -> list[int]:
    """Member indices repeated in proportion to `totals`, `slots` in all (largest remainders; ties to the
    lower index), most weighted first."""
    whole = sum(totals.values())
    quotas = {i: t * slots / whole for i, t in totals.items()}
    counts = {i: int(q) for i, q in quotas.items()}
    spare = slots - sum(counts.values())
    for i in sorted(quotas, key=lambda i: (-(quotas[i] - counts[i]), i))[:spare]:
        counts[i] += 1
    return [i for i in sorted(counts, key=lambda i: (-counts[i], i)) for _ in range(counts[i])]
