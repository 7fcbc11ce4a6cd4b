"""The chosen ensemble retrained on other validation folds (cross-validation bagging, as AutoGluon's): each
distinct run the ensemble picked trains again, same config and seeds, with another block of the training rows
held out for its early stopping and the default's validation rows trained on; the final model averages every
fold's copy, with the picks' weights. The searched configurations rarely beat the default out of sample (the
held-out check kept the default's ensemble on 13 of 17 tables); members that saw other rows did: on the 17-table
benchmark (3,000 training rows) the default's 5 seeds plus the same on two more folds cut the geometric-mean
error ratio to LightGBM by 3.4%, where 5 more seeds on the same rows cut it by 0.9% (benchmarks/README).

Every fold shares the default's preprocessing (fitted on its training rows, data.spec), so the members'
outputs average as one run's do and the ensemble is saved and predicted like any other. Fold 0 is the search's
own data; the other folds' validation blocks are disjoint, drawn from the training rows by data.split_seed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch

from .. import rundir
from ..config import RunConfig
from ..data import DataBundle
from ..planning import group_key
from .engine import interrupted, run_stack
from .ensemble import Candidate
from .selection import rounded

FOLDS_DIR = "folds"
SAVED_MEMBERS = 64  # the most members a run directory's config allows (train.members), repeats included
FOLD_SEED_OFFSET = 7919  # the fold blocks' permutation seed is data.split_seed + this (apart from the halves' seed)


def usable_folds(folds: int, train_rows: int, val_rows: int) -> int:
    """As many folds as asked for while the training rows hold a disjoint validation block for each extra one."""
    if val_rows < 1:
        return 1
    return max(1, min(folds, 1 + train_rows // val_rows))


def refold(data: DataBundle, fold: int, seed: int) -> DataBundle:
    """Fold 0: `data` itself. Fold k >= 1: the k-th block (as many rows as data's validation rows) of a seeded
    permutation of the training rows is the validation set; the rest, with data's validation rows, trains."""
    if fold == 0:
        return data
    n_train, n_val = len(data.x_train), len(data.x_val)
    if fold * n_val > n_train:
        raise ValueError(f"fold {fold} needs {fold * n_val} training rows; there are {n_train}")
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed + FOLD_SEED_OFFSET))
    held = order[(fold - 1) * n_val : fold * n_val].sort().values
    kept = torch.ones(n_train, dtype=torch.bool)
    kept[held] = False
    return replace(
        data,
        x_train=torch.cat([data.x_train[kept], data.x_val]),
        y_train=torch.cat([data.y_train[kept], data.y_val]),
        x_val=data.x_train[held],
        y_val=data.y_train[held],
    )


def _stacks(runs: dict[Path, RunConfig]) -> list[list[tuple[Path, RunConfig]]]:
    """The picked runs as the search trained them: a run of several seeds (the default) alone, single-member
    configurations of one layout together (a stack costs about one run on small tables, where a step's dispatch
    outweighs its arithmetic; every member is still the configuration trained alone)."""
    groups: dict[tuple, list[tuple[Path, RunConfig]]] = {}
    for run_dir, cfg in runs.items():
        key = ("alone", run_dir) if cfg.train.members > 1 else group_key(cfg)
        groups.setdefault(key, []).append((run_dir, cfg))
    return list(groups.values())


def fold_dir(out: Path, fold: int, run_dir: Path) -> Path:
    return out / FOLDS_DIR / f"f{fold}" / run_dir.name


def train_folds(out: Path, picks: list[Candidate], data: DataBundle, folds: int, seed: int) -> list[Candidate] | None:
    """Each distinct run among `picks` trained on folds 1..folds-1 (continuing what an interrupted search left);
    → the picks followed by each fold's copies of them (the same weights), or None when interrupted. With
    more than SAVED_MEMBERS in all, each fold's picks are first rounded to fewer repeats (the same proportions)."""
    if len(picks) * folds > SAVED_MEMBERS:
        counts = Counter(picks)
        order = list(counts)
        picks = [order[i] for i in rounded({i: counts[c] for i, c in enumerate(order)}, SAVED_MEMBERS // folds)]
    stacks = _stacks({c.run_dir: c.cfg for c in picks})
    copies: list[Candidate] = []
    for fold in range(1, folds):
        fold_data = refold(data, fold, seed)
        for stack in stacks:
            dirs = [fold_dir(out, fold, run_dir) for run_dir, _ in stack]
            if interrupted(run_stack([cfg for _, cfg in stack], dirs, fold_data)):
                return None
        copies += [Candidate(c.cfg, fold_dir(out, fold, c.run_dir), c.member) for c in picks]
    return [*picks, *copies]


def member_name(c: Candidate) -> str:
    """A member's name in the saved ensemble's picks: fold copies prefixed with their fold (f1/c03#0)."""
    in_fold = c.run_dir.parent.parent.name == FOLDS_DIR
    return f"{c.run_dir.parent.name}/{c.name}" if in_fold else c.name


def seconds(out: Path) -> float:
    """Training seconds of every fold run finished or started so far (from disk, as driver.training_seconds)."""
    paths = sorted((out / FOLDS_DIR).glob(f"f*/*/{rundir.METRICS}"))
    return sum(float(rundir.read_json(p).get("wall_seconds") or 0.0) for p in paths)
