"""The default's seeds retrained on other validation folds (cross-validation bagging, as AutoGluon's): the
default run trains again, the same config and its first seeds, with another block of the training rows held out
for its early stopping and the search's validation rows trained on; the saved ensemble averages every fold's copy
with the picks' weights. The searched configurations rarely beat the default out of sample (the held-out check kept the
default's ensemble on 13 of 17 tables); members that saw other rows did (README, results/search-folds-notes.md).
Only the default's run trains again, its first FOLD_SEEDS seeds (one stack a fold, about half a default run of
cost; a copy stops once it has not improved for as many epochs as halving.stale_after allows): retraining the picked
configurations too cost 8-11x the default's CPU on males and caravan (their picks span two layouts); a picked
configuration instead weighs as much as all its fold copies would, so the proportions of the choice are kept.

Every fold shares the search's preprocessing (fitted on its training rows, data.spec), so the members' outputs
average as one run's do and the ensemble is saved and predicted like any other. Fold 0 is the search's own data;
the other folds' validation blocks are disjoint, drawn from the training rows by data.split_seed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch

from .. import rundir
from ..config import RunConfig
from ..data import DataBundle
from .engine import interrupted, run_stack
from .ensemble import Candidate
from .halving import halver
from .selection import rounded

FOLDS_DIR = "folds"
SAVED_MEMBERS = 64  # the most members a run directory's config allows (train.members), repeats included
# seeds of the default each fold trains again: on the 17-table benchmark (3,000 rows) 3 instead of all 5 took the
# search from 4.15x to 3.44x the default's wall time (geometric mean; max 5.13x -> 4.21x) for an error ratio of
# 0.7675 against 0.7653 (the default 0.7992; results/search-s6-i..l.json)
FOLD_SEEDS = 3
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


def fold_dir(out: Path, fold: int, run_dir: Path) -> Path:
    return out / FOLDS_DIR / f"f{fold}" / run_dir.name


def train_folds(
    out: Path,
    picks: list[Candidate],
    default_dir: Path,
    data: DataBundle,
    folds: int,
    seed: int,
    stale: int | None = None,
) -> list[Candidate] | None:
    """The default's run (in `default_dir`) trained on folds 1..folds-1 (continuing what an interrupted search
    left) → the saved ensemble's members: per fold, the picks with the default's seeds replaced by that fold's
    copies in turn (in_fold; a picked configuration appears once per fold); None when interrupted. With more than
    SAVED_MEMBERS in all, the picks are first rounded to fewer repeats (the same proportions). `stale`: a fold copy
    stops once it has not improved for that many epochs, as the searched members do (halving.stale_after; None: its
    patience)."""
    if len(picks) * folds > SAVED_MEMBERS:
        counts = Counter(picks)
        order = list(counts)
        picks = [order[i] for i in rounded({i: counts[c] for i, c in enumerate(order)}, SAVED_MEMBERS // folds)]
    members = list(picks)
    default = next((c.cfg for c in picks if c.run_dir == default_dir), None)
    if default is None:  # the choice kept none of the default's seeds: nothing to train again
        return members * folds
    copy = fold_copy(default)
    stop = halver([], stale=stale)  # no rungs: one configuration; only the staleness limit
    for fold in range(1, folds):
        where = fold_dir(out, fold, default_dir)
        if interrupted(run_stack([copy], [where], refold(data, fold, seed), stop)):
            return None
        members += in_fold(picks, default_dir, Candidate(copy, where))
    return members


def fold_seeds(default: RunConfig) -> int:
    """How many of the default's seeds each fold trains again: its first FOLD_SEEDS."""
    return min(FOLD_SEEDS, default.train.members)


def fold_copy(default: RunConfig) -> RunConfig:
    """The default's config as a fold trains it: its first fold_seeds seeds."""
    raw = default.to_dict()
    raw["train"]["members"] = fold_seeds(default)
    return RunConfig.from_dict(raw)


def in_fold(picks: list[Candidate], default_dir: Path, copy: Candidate) -> list[Candidate]:
    """The picks with each pick of a default seed replaced by a seed of the fold's copy, in turn (the i-th such
    pick → copy seed i mod its seeds: a seed picked three times becomes three copies, not one weighed thrice)."""
    seeds, turn, out = copy.cfg.train.members, 0, []
    for c in picks:
        if c.run_dir == default_dir:
            c, turn = Candidate(copy.cfg, copy.run_dir, turn % seeds), turn + 1
        out.append(c)
    return out


def member_name(c: Candidate) -> str:
    """A member's name in the saved ensemble's picks: fold copies prefixed with their fold (f1/c03#0)."""
    in_fold = c.run_dir.parent.parent.name == FOLDS_DIR
    return f"{c.run_dir.parent.name}/{c.name}" if in_fold else c.name


def seconds(out: Path) -> float:
    """Training seconds of every fold run finished or started so far (from disk, as driver.training_seconds)."""
    paths = sorted((out / FOLDS_DIR).glob(f"f*/*/{rundir.METRICS}"))
    return sum(float(rundir.read_json(p).get("wall_seconds") or 0.0) for p in paths)
