"""Running an experiment's runs in parallel worker processes, each into its own run directory.

Workers are forked from a fork server (a fresh interpreter that imported torch, never the compare's
own process), so none inherits the parent's multithreaded torch state; each sets its torch threads
to max(1, cores // workers) so the cores are not oversubscribed.
A compare that was interrupted picks up where it stopped: a run directory whose config
matches the plan and holds metrics.json is kept, one with last.pt is resumed, anything else
is started afresh. A run that fails (non-finite loss, or an exception) is recorded as failed
with its error and does not stop the others.

Runs that share a stack key (trainwell.planning) are trained together as one stack, whose
members are independent: a run's numbers do not depend on which runs share its stack. A stack
writes each run's last.pt at the same points a single run does, so an interrupted compare
resumes stacks too.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from .. import rundir, safeyaml, stop_reasons
from ..advice import plural
from ..errors import ConfigError, TrainwellError
from ..planning import estimate_cost, fast_path_reason, group_key, split_stacks
from ..same_run import PRESENTATION_FIELDS, same_run
from ..scaling import scale_configs
from .spec import Run

OK, FAILED, INTERRUPTED = "ok", "failed", "interrupted"
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
    """A unit of work for one worker: runs trained together in one process (one or several)."""

    runs: list[Run]
    dirs: list[Path]
    resume: bool = False  # continue every run from its last.pt
    cost: float = 0.0  # rough seconds, for ordering the queue (longest first)
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stacked(self) -> bool:
        return len(self.runs) > 1


# ---- what is already on disk ----------------------------------------------------------------


def as_recorded(cfg: Any, table: tuple[int, int | None] | None) -> Any:
    """The config as its run records it in config.yaml when trained on a table of `table` = (training rows,
    columns to embed) (data.scaling_inputs): "auto" (batch, step budget, cadence, numeric embedding, and the
    learning rate scaled with the batch) resolved by scaling.scale_configs, on a copy. None: the config as it is."""
    if table is None:
        return cfg
    recorded = copy.deepcopy(cfg)
    scale_configs([recorded], *table)
    return recorded


def disk_state(run: Run, run_dir: Path, table: tuple[int, int | None] | None = None) -> str:
    """ "done", "resume" or "fresh" for a planned run, from what its directory holds. `table`: the run's
    data.scaling_inputs, so a plan with "auto" fields matches the resolved values its finished run wrote
    (without them every run of the tabular preset looked changed and trained again)."""
    cfg_path = run_dir / rundir.CONFIG
    if not cfg_path.exists():
        return "fresh"
    try:  # the budgeted loader every config goes through: a damaged or hostile config.yaml cannot hang a compare
        on_disk = safeyaml.load(cfg_path.read_text(encoding="utf-8"), f"config file {str(cfg_path)!r}")
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ConfigError):
        return "fresh"
    if not isinstance(on_disk, dict) or not same_run(
        on_disk, as_recorded(run.config, table).to_dict(), PRESENTATION_FIELDS
    ):
        return "fresh"  # the plan changed for this run: its old results no longer apply
    if (run_dir / rundir.METRICS).exists():
        return "done"
    if (run_dir / rundir.LAST_PT).exists():
        return "resume"
    return "fresh"


def record(run: Run, run_dir: Path, metrics: dict[str, Any] | None, status: str, error: str = "") -> dict[str, Any]:
    """One row of results.csv: every test metric, how the run ended and how it was trained."""
    m = metrics or {}
    row: dict[str, Any] = {"experiment": run.experiment, "variant": run.variant, "seed": run.seed, "status": status}
    row.update({k: v for k, v in m.items() if k.startswith("test_") and k != "test_loss"})
    row.update(
        test_loss=m.get("test_loss"),
        epochs=m.get("epochs_run"),
        best_epoch=m.get("best_epoch"),
        stop_reason=m.get("stop_reason"),
        wall_seconds=m.get("wall_seconds"),
        engine=m.get("engine"),
        engine_reason=m.get("engine_reason", ""),
        stacked_with=m.get("stacked_with"),
        threads=m.get("threads"),
        error=error or m.get("error", ""),
        run_dir=str(run_dir),
    )
    return row


def record_from_disk(run: Run, run_dir: Path) -> dict[str, Any]:
    metrics = rundir.read_json(run_dir / rundir.METRICS)
    status = FAILED if metrics.get("stop_reason") == stop_reasons.NOT_FINITE else OK
    return record(run, run_dir, metrics, status)


# ---- inside a worker -------------------------------------------------------------------------


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, TrainwellError) else f"{type(exc).__name__}: {text}".rstrip(": ")


def preload() -> None:
    """A worker's first task, given before the compare knows its jobs: the modules execute() needs."""
    from ..runner import train_runs  # noqa: F401


def execute(job: Job, threads: int, checkpoint_seconds: float = 0.0) -> list[dict[str, Any]]:
    """Run a job in this process and return its result rows; never raises for a failed run.
    `checkpoint_seconds`: epoch-end writes of last.pt and best.pt at most this often (train_runs)."""
    from ..runner import load_resumable, train_runs

    try:
        cfgs, payloads = [r.config for r in job.runs], None
        if job.resume:
            loaded = [load_resumable(d) for d in job.dirs]
            cfgs, payloads = [c for c, _ in loaded], [p for _, p in loaded]
        else:  # "auto" rates become numbers (the range test's files go into each run's folder), as train does
            from ..lr_find import resolve_auto_lr

            cfgs = [resolve_auto_lr(c, d) for c, d in zip(cfgs, job.dirs)]
        results = train_runs(
            cfgs, job.dirs, resume_from=payloads, max_threads=threads, checkpoint_seconds=checkpoint_seconds
        )
    except Exception as exc:  # a failed run is a result, not the end of the experiment
        return [record(r, d, None, FAILED, one_line(exc)) for r, d in zip(job.runs, job.dirs)]
    rows = []
    for run, d, result in zip(job.runs, job.dirs, results):
        if result.stop_reason == stop_reasons.INTERRUPTED:
            rows.append(record(run, d, None, INTERRUPTED, stop_reasons.INTERRUPTED))
            continue
        status = FAILED if result.stop_reason == stop_reasons.NOT_FINITE else OK
        rows.append(record(run, d, result.metrics, status, result.message if status == FAILED else ""))
    return rows


# ---- planning and the pool ---------------------------------------------------------------------


def plan_jobs(
    runs: list[Run],
    dirs: list[Path],
    stack: bool,
    workers: int,
    say: Say,
    table_of: Callable[[Run], tuple[int, int | None] | None] = lambda _run: None,
) -> tuple[list[Job], list[dict[str, Any]]]:
    """Jobs for the runs still to do, and the rows of runs already finished on disk.

    Runs with a last.pt resume, stacked with the others that stand at the same epoch and step;
    fresh runs that the fast path can train are stacked by stack key; the rest run alone."""
    done: list[dict[str, Any]] = []
    groups: dict[tuple, list[tuple[Run, Path]]] = {}
    singles: list[Job] = []
    for run, run_dir in zip(runs, dirs):
        state = disk_state(run, run_dir, table_of(run))
        if state == "done":
            done.append(record_from_disk(run, run_dir))
            continue
        if state == "fresh" and run_dir.exists():
            shutil.rmtree(run_dir)
        position = _position(run_dir) if state == "resume" else None
        if stack and fast_path_reason(run.config) is None:
            groups.setdefault((state, position, group_key(run.config)), []).append((run, run_dir))
        else:
            singles.append(Job([run], [run_dir], resume=state == "resume", cost=estimate_cost([run.config])))
    # one split over every group, so the makespan is estimated for all stacks together (a stack
    # never mixes groups: it only ever splits one chunk into two)
    resumed = {id(run) for (state, _, _), members in groups.items() if state == "resume" for run, _ in members}
    chunks = split_stacks(list(groups.values()), lambda c: estimate_cost([r.config for r, _ in c]), workers)
    stacked = [
        Job(
            [r for r, _ in c],
            [d for _, d in c],
            resume=id(c[0][0]) in resumed,
            cost=estimate_cost([r.config for r, _ in c]),
        )
        for c in chunks
    ]
    jobs = singles + stacked
    if done:
        say(
            f"{plural(len(done), 'finished run')} kept from an earlier compare; {sum(len(j.runs) for j in jobs)} to run"
        )
    return sorted(jobs, key=lambda j: -j.cost), done


def _position(run_dir: Path) -> tuple[int, int] | None:
    """(epoch, step) a resumable run stands at: runs resumed together must agree."""
    from ..checkpoint import LAST, load_checkpoint

    try:
        loop = load_checkpoint(run_dir / rundir.LAST_PT, LAST)["loop"]
        return int(loop["epoch"]), int(loop["step"])
    except Exception:  # an unreadable last.pt resumes alone and reports its own error
        return None


def stderr_say(quiet: bool) -> Say:
    return (lambda _: None) if quiet else (lambda text: print(text, file=sys.stderr, flush=True))


def write_results(path: Path, rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    df = pd.DataFrame(rows)
    metrics = [c for c in df.columns if c.startswith("test_") and c != "test_loss"]
    order = [
        "variant",
        "seed",
        "status",
        *metrics,
        "test_loss",
        "epochs",
        "best_epoch",
        "stop_reason",
        "wall_seconds",
        "engine",
        "engine_reason",
        "stacked_with",
        "threads",
        "error",
        "run_dir",
    ]
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
