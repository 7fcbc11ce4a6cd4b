"""Running an experiment's runs in parallel worker processes, each into its own run directory.

Workers are spawned (never forked), so none inherits the parent's multithreaded torch state;
each sets its torch threads to max(1, cores // workers) so the cores are not oversubscribed.
A compare that was interrupted picks up where it stopped: a run directory whose config
matches the plan and holds metrics.json is kept, one with last.pt is resumed, anything else
is started afresh. A run that fails (non-finite loss, or an exception) is recorded as failed
with its error and does not stop the others.

Runs that share a model shape may be trained together as one vectorised model (stacked.py);
the rest go through trainwell.runner.train one by one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from .. import rundir
from .spec import Run

OK, FAILED, INTERRUPTED = "ok", "failed", "interrupted"
IGNORED_FIELDS = ("quiet", "threads")  # train fields that do not change what a run computes
Say = Callable[[str], None]


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int, n_cores: int | None = None) -> int:
    return max(1, (n_cores or cores()) // max(1, workers))


@dataclass
class Job:
    """A unit of work for one worker: a single run, or several runs trained as one stacked model."""

    runs: list[Run]
    dirs: list[Path]
    resume: bool = False  # single runs only: continue from last.pt
    stacked: bool = False
    cost: float = 0.0  # rough seconds, for ordering the queue (longest first)
    records: list[dict[str, Any]] = field(default_factory=list)


# ---- what is already on disk ----------------------------------------------------------------


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in cfg.items()}
    for name in IGNORED_FIELDS:
        out.get("train", {}).pop(name, None)
    return out


def disk_state(run: Run, run_dir: Path) -> str:
    """"done", "resume" or "fresh" for a planned run, from what its directory holds."""
    cfg_path = run_dir / rundir.CONFIG
    if not cfg_path.exists():
        return "fresh"
    try:
        on_disk = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return "fresh"
    if not isinstance(on_disk, dict) or _comparable(on_disk) != _comparable(run.config.to_dict()):
        return "fresh"  # the plan changed for this run: its old results no longer apply
    if (run_dir / rundir.METRICS).exists():
        return "done"
    if (run_dir / rundir.LAST_PT).exists():
        return "resume"
    return "fresh"


def record(run: Run, run_dir: Path, metrics: dict[str, Any] | None, status: str, error: str = "", engine: str = "single") -> dict[str, Any]:
    """One row of results.csv."""
    m = metrics or {}
    row: dict[str, Any] = {"experiment": run.experiment, "variant": run.variant, "seed": run.seed, "status": status}
    for key in ("test_mae", "test_accuracy"):
        if key in m:
            row[key] = m[key]
    row.update(
        test_loss=m.get("test_loss"),
        epochs=m.get("epochs_run"),
        best_epoch=m.get("best_epoch"),
        stop_reason=m.get("stop_reason"),
        wall_seconds=m.get("wall_seconds"),
        engine=m.get("engine", engine),
        error=error or m.get("error", ""),
        run_dir=str(run_dir),
    )
    return row


def record_from_disk(run: Run, run_dir: Path) -> dict[str, Any]:
    metrics = rundir.read_json(run_dir / rundir.METRICS)
    status = FAILED if metrics.get("stop_reason") == "not_finite" else OK
    return record(run, run_dir, metrics, status)


# ---- inside a worker -------------------------------------------------------------------------


def one_line(exc: BaseException) -> str:
    from ..errors import TrainwellError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, TrainwellError) else f"{type(exc).__name__}: {text}".rstrip(": ")


def execute(job: Job, threads: int) -> list[dict[str, Any]]:
    """Run a job in this process and return its result rows; never raises for a failed run."""
    if job.stacked:
        from .stacked import train_stacked

        return train_stacked(job.runs, job.dirs, threads)
    (run,), (run_dir,) = job.runs, job.dirs
    from ..runner import resume, train

    run.config.train.threads = threads
    try:
        result = resume(run_dir, quiet=True) if job.resume else train(run.config, out=run_dir, quiet=True)
    except Exception as exc:  # a failed run is a result, not the end of the experiment
        return [record(run, run_dir, None, FAILED, one_line(exc))]
    if result.stop_reason == "interrupted":
        return [record(run, run_dir, None, INTERRUPTED, "interrupted; run the same command again to continue")]
    status = FAILED if result.stop_reason == "not_finite" else OK
    return [record(run, run_dir, result.metrics, status, result.message if status == FAILED else "")]


# ---- planning and the pool ---------------------------------------------------------------------


def estimate_cost(cfg: Any) -> float:
    """Rough seconds of a run on one thread: epochs × steps × (dispatch + arithmetic)."""
    rows = cfg.data.n * (1 - cfg.data.test_fraction) * (1 - cfg.data.val_fraction) if cfg.data.name == "delivery" else 50_000
    steps = math.ceil(rows / cfg.train.batch_size)
    dims = [4, *cfg.model.hidden, 1]
    params = sum(a * b for a, b in zip(dims, dims[1:]))
    step_seconds = 5e-4 + 6 * cfg.train.batch_size * params / 2e10  # ~0.5 ms of dispatch, ~20 GFLOP/s
    from .stacked import expected_epochs

    return expected_epochs(cfg) * steps * step_seconds


def plan_jobs(runs: list[Run], dirs: list[Path], stack: bool, workers: int, say: Say) -> tuple[list[Job], list[dict[str, Any]]]:
    """Jobs for the runs still to do, and the rows of runs already finished on disk."""
    done: list[dict[str, Any]] = []
    singles: list[Job] = []
    to_stack: list[tuple[Run, Path]] = []
    for run, run_dir in zip(runs, dirs):
        state = disk_state(run, run_dir)
        if state == "done":
            done.append(record_from_disk(run, run_dir))
            continue
        if state == "resume":
            singles.append(Job([run], [run_dir], resume=True, cost=estimate_cost(run.config)))
            continue
        if run_dir.exists():
            shutil.rmtree(run_dir)
        if stack:
            from .stacked import eligible

            if eligible(run.config):
                to_stack.append((run, run_dir))
                continue
        singles.append(Job([run], [run_dir], cost=estimate_cost(run.config)))
    jobs = singles
    if to_stack:
        from .stacked import group_jobs

        jobs = jobs + group_jobs(to_stack, workers)
    if done:
        say(f"{len(done)} finished runs kept from an earlier compare; {sum(len(j.runs) for j in jobs)} to run")
    return sorted(jobs, key=lambda j: -j.cost), done


def stderr_say(quiet: bool) -> Say:
    return (lambda _: None) if quiet else (lambda text: print(text, file=sys.stderr, flush=True))


def write_results(path: Path, rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    order = ["variant", "seed", "status", "test_mae", "test_accuracy", "test_loss", "epochs", "best_epoch", "stop_reason", "wall_seconds", "engine", "error", "run_dir"]
    df = pd.DataFrame(rows)
    cols = [c for c in order if c in df.columns]
    rundir.write_text_atomic(path, df[cols].to_csv(index=False) if len(df) else ",".join(order[:3]) + "\n")


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / rundir.HISTORY_JSON
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
