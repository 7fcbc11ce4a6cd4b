"""Caruana's ensemble selection (Caruana et al., 2004): greedily add, with replacement, the
member whose addition most improves the ensemble's score on held-out rows, then keep the
best prefix. Run on the half of validation the members did not early-stop on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..outputs import test_metrics

ROUNDS = 25  # additions tried; the best-scoring prefix is kept (a few rounds settle on tabular data)


@dataclass
class Selection:
    picks: list[int]  # member indices in the order added, with repeats (a repeat weighs that member more)
    score: float  # the ensemble's selection-half value of `metric`
    single_best: int  # the best member alone
    single_score: float
    metric: str  # without the val_ prefix, e.g. loss, mae, accuracy
    trace: list[float]  # the ensemble's score after each addition

    def counts(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for i in self.picks:
            out[i] = out.get(i, 0) + 1
        return out


def ensemble_score(
    task: str, outs: list[torch.Tensor], counts: dict[int, int], y: torch.Tensor, metric: str, std: float
) -> float:
    """`metric` of the ensemble that averages member i counts[i] times (outputs.test_metrics' rules)."""
    chosen = [outs[i] for i, c in counts.items() for _ in range(c)]
    return test_metrics(task, chosen, y, std)[metric]


def caruana(
    task: str, outs: list[torch.Tensor], y: torch.Tensor, metric: str, mode: str, std: float = 1.0
) -> Selection:
    """Members' raw outputs (logits or predictions) on the selection rows → the chosen multiset."""
    if not outs:
        raise ValueError("ensemble selection needs at least one member")
    better = (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)
    singles = [ensemble_score(task, outs, {i: 1}, y, metric, std) for i in range(len(outs))]
    best = min(range(len(outs)), key=lambda i: -singles[i] if mode == "max" else singles[i])
    counts, picks, trace = {best: 1}, [best], [singles[best]]
    for _ in range(ROUNDS - 1):
        scored = []
        for i in range(len(outs)):
            trial = {**counts, i: counts.get(i, 0) + 1}
            scored.append(ensemble_score(task, outs, trial, y, metric, std))
        pick = min(range(len(outs)), key=lambda i: -scored[i] if mode == "max" else scored[i])
        counts[pick] = counts.get(pick, 0) + 1
        picks.append(pick)
        trace.append(scored[pick])
    keep = 0
    for k in range(1, len(trace)):  # the shortest prefix with the best score
        if better(trace[k], trace[keep]):
            keep = k
    return Selection(picks[: keep + 1], trace[keep], best, singles[best], metric, trace)
