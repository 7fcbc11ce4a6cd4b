"""Training a search: the default run, then each stack of candidates, one after another, each
continuing from its run directories where an earlier, interrupted search stopped.

Members early-stop on all validation rows and the ensemble is chosen on them too, or with
select_on="half" they early-stop on one half (the "stop half") and the other half (the
"selection half") is kept for choosing the ensemble (validation_views says why "all" is the
default). The halves are a fixed split (data.split_seed).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import torch

from ..config import RunConfig
from ..data import DataBundle, scaling_inputs
from ..errors import DataError
from ..experiments.runner import disk_state
from ..runner import load_resumable, train_runs
from ..stop_reasons import INTERRUPTED

STOP_HALF = "the first half of the validation rows (a fixed random half, data.split_seed)"
SELECT_HALF = "the other half of the validation rows"
ALL_ROWS = "all validation rows"
SELECT_ON = ("all", "half")  # SearchConfig.select_on: where members early-stop and the ensemble is chosen
# a stack's last.pt and best.pt at most this often (and whenever one of its runs finishes): on small
# tables writing them every epoch for every member costs more than training; a kill loses at most this
CHECKPOINT_SECONDS = 10.0


def split_validation(data: DataBundle, seed: int) -> tuple[DataBundle, DataBundle]:
    """(data whose validation rows are the stop half, data whose validation rows are the selection half)."""
    n = len(data.x_val)
    if n < 2:
        raise DataError(
            f"a search needs at least 2 validation rows (one half to early-stop on, one to choose the ensemble on); "
            f"there are {n}: give more rows or a larger data.val_fraction"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    stop, select = order[: n - n // 2].sort().values, order[n - n // 2 :].sort().values
    return (
        replace(data, x_val=data.x_val[stop], y_val=data.y_val[stop]),
        replace(data, x_val=data.x_val[select], y_val=data.y_val[select]),
    )


def validation_views(data: DataBundle, seed: int, select_on: str) -> tuple[DataBundle, DataBundle, str, str]:
    """(data the members early-stop on, data the ensemble is chosen on, and what each is, in words).
    "all": both on every validation row, as `train` early-stops the default — the default in the
    search is then the default a user trains, and the choice sees twice the rows (on attrition,
    mlc_churn, hpc_data and nmes1988 the halves lost to the default on the test rows: its seeds
    early-stopped on half the rows, and the choice on the other half overfitted them). "half":
    split_validation's halves, so the choice is not made on the rows that picked each best epoch."""
    if select_on == "all":
        return data, data, *view_names(select_on)
    return *split_validation(data, seed), *view_names(select_on)


def view_names(select_on: str) -> tuple[str, str]:
    """What the members early-stop on and what the ensemble is chosen on, in words."""
    if select_on == "all":
        return ALL_ROWS, f"{ALL_ROWS} (those the members early-stopped on)"
    return STOP_HALF, SELECT_HALF


def _states(cfgs: list[RunConfig], dirs: list[Path], data: DataBundle) -> list[str]:
    return [disk_state(SimpleNamespace(config=c), d, scaling_inputs(data)) for c, d in zip(cfgs, dirs)]


def run_stack(
    cfgs: list[RunConfig],
    dirs: list[Path],
    data: DataBundle,
    on_epoch_end: Callable[[Any, Any], None] | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
) -> list[Any]:
    """Train (or continue) these runs as one stack; [] when every one has finished on disk.
    A stack interrupted mid-way continues from last.pt; one killed before its first checkpoint
    starts again, so every member keeps the partners it had."""
    states = _states(cfgs, dirs, data)
    todo = [i for i, s in enumerate(states) if s != "done"]
    if not todo:
        return []
    payloads = None
    if all(states[i] == "resume" for i in todo):
        payloads = [load_resumable(dirs[i])[1] for i in todo]
    else:
        for i in todo:
            if dirs[i].exists():
                shutil.rmtree(dirs[i])
    return train_runs(
        [cfgs[i] for i in todo],
        [dirs[i] for i in todo],
        resume_from=payloads,
        data=data,
        on_epoch_end=on_epoch_end,
        checkpoint_seconds=checkpoint_seconds,
    )


def interrupted(results: list[Any]) -> bool:
    return any(r.stop_reason == INTERRUPTED for r in results)
