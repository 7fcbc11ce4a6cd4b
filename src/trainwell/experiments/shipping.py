"""Run directories as bytes, and the task a Dask worker runs for one job.

A worker need not see the client's file system: it trains the job into a temporary folder and
returns each run directory's files as {name: bytes}; the client writes them under --out. While
a single run trains, a thread ships a consistent snapshot of its resume files (config.yaml,
best.pt, last.pt) to a Dask Variable after every checkpoint, so the job can continue on
another worker if this one dies. The Variables hold at most one snapshot per running job and
are deleted by the client when the job ends.
"""

from __future__ import annotations

import dataclasses
import io
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .. import rundir
from ..atomic import atomic_write
from .job_rows import execute_quietly, failed_rows
from .runner import Job, cores

Files = dict[str, bytes]
# metrics.json last: its presence marks a run as done, so it is written after everything else
FINISHED = (rundir.CONFIG, rundir.HISTORY_CSV, rundir.HISTORY_JSON, rundir.BEST_PT, rundir.CURVES, rundir.METRICS)
RESUME = (rundir.CONFIG, rundir.BEST_PT, rundir.LAST_PT)  # what `resume` reads
SNAPSHOT_SECONDS = 0.5  # how often a worker looks for a new last.pt
MAX_ATTEMPTS = 2  # a job whose worker dies is run once more, then recorded as failed
GAVE_UP = "its Dask worker died twice while training it (out of memory, killed, or the host went away)"


def read_files(folder: Path, names: tuple[str, ...]) -> Files:
    return {n: (folder / n).read_bytes() for n in names if (folder / n).is_file()}


def shipped_files(folder: Path) -> Files:
    """A finished run's files; an unfinished one's with last.pt, so it can be resumed."""
    done = (folder / rundir.METRICS).exists()
    return read_files(folder, FINISHED if done else (rundir.LAST_PT, *FINISHED))


def write_files(folder: Path, files: Files) -> None:
    """Write shipped files atomically, metrics.json last; a finished run keeps no stale last.pt."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(files, key=lambda n: n == rundir.METRICS):
        atomic_write(folder / name, lambda fh, body=files[name]: fh.write(body))
    if rundir.METRICS in files:
        (folder / rundir.LAST_PT).unlink(missing_ok=True)


def snapshot(folder: Path) -> Files | None:
    """config, best.pt and last.pt from one moment: last.pt unchanged while they were read, and
    best.pt no newer than it (a newer best.pt belongs to an epoch last.pt has not reached)."""
    last, best = folder / rundir.LAST_PT, folder / rundir.BEST_PT
    for _ in range(5):
        try:
            before = last.stat().st_mtime_ns
            files = read_files(folder, RESUME)
            if last.stat().st_mtime_ns == before and (not best.exists() or best.stat().st_mtime_ns <= before):
                return files
        except FileNotFoundError:  # replaced between stat and read
            pass
        time.sleep(0.05)
    return None


def position(files: Files) -> tuple[int, int] | None:
    """(epoch, step) of a snapshot's last.pt, or None if it cannot be read."""
    import torch

    try:
        loop = torch.load(io.BytesIO(files[rundir.LAST_PT]), map_location="cpu", weights_only=True)["loop"]
        return int(loop["epoch"]), int(loop["step"])
    except Exception:  # torn, foreign or missing: not a snapshot to ship
        return None


def consistent(files: list[Files | None]) -> bool:
    """Every run's snapshot taken, and a stack's runs all at one epoch and step: a stack writes its
    runs' last.pt one after another, so a look between two of those writes sees two epochs, and
    runs resumed together must agree (member_state.py)."""
    if any(f is None for f in files):
        return False
    if len(files) == 1:
        return True
    positions = {position(f) for f in files}  # type: ignore[arg-type]
    return len(positions) == 1 and None not in positions


class Shipper:
    """A thread that sends a snapshot of the job's resume files (one {name: bytes} per run
    directory) each time a last.pt changes, once every run's last.pt stands at the same epoch."""

    def __init__(self, folders: list[Path], variable: Any) -> None:
        self.folders, self.variable = folders, variable
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="trainwell-shipper", daemon=True)

    def __enter__(self) -> "Shipper":
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stopped.set()
        self.thread.join()

    def _loop(self) -> None:
        sent = None
        while not self.stopped.wait(SNAPSHOT_SECONDS):
            try:
                stamp = [(d / rundir.LAST_PT).stat().st_mtime_ns for d in self.folders]
            except FileNotFoundError:
                continue
            files = [snapshot(d) for d in self.folders] if stamp != sent else [None]
            if consistent(files):
                try:
                    self.variable.set(files)
                except Exception:  # the worker or scheduler is shutting down: nothing to ship to
                    return
                sent = stamp


def variable_names(token: str) -> tuple[str, str]:
    """Names of the job's attempt counter and its shipped snapshot on the scheduler."""
    return f"trainwell-{token}-attempts", f"trainwell-{token}-snapshot"


def get_or(variable: Any, default: Any) -> Any:
    """The variable's value (the client sets it before submitting), or `default` if it was deleted."""
    try:
        value = variable.get(timeout=5)
    except TimeoutError:
        return default
    return default if value is None else value


def share_of_cores(host: str, slots_by_host: dict[str, int]) -> int:
    """Torch threads for a task: this host's cores over the Dask task slots on it."""
    return max(1, cores() // max(1, slots_by_host.get(host, 1)))


def run_on_worker(
    job: Job,
    slots_by_host: dict[str, int],
    token: str,
    prior: list[Files] | None,
    train: Callable[[Job, int, Any], list[dict[str, Any]]] | None = None,
    inputs: Any = None,
) -> tuple[list[dict[str, Any]], list[Files]]:
    """The Dask task: train `job` in a temporary folder; return its rows and its run directories.
    `prior` holds, per run, the resume files the client found on its disk for an unfinished job.
    `train(job, threads, inputs)` trains it instead of a compare's execute (a search's stacks,
    tune/distribute.py); `inputs`: what it needs besides the job (Dask resolves futures in it)."""
    from urllib.parse import urlparse

    from distributed import Variable, get_client, get_worker

    threads = share_of_cores(urlparse(get_worker().address).hostname or "", slots_by_host)
    client = get_client()  # bound now: the shipper thread has no task context to find it
    attempts_var, snapshot_var = (Variable(n, client=client) for n in variable_names(token))
    attempt = get_or(attempts_var, 0) + 1
    attempts_var.set(attempt)
    if attempt > MAX_ATTEMPTS:  # the scheduler re-ran it after a second worker died
        return failed_rows(job, GAVE_UP), []
    start = get_or(snapshot_var, None) or prior  # a snapshot from an attempt whose worker died
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="trainwell-job-") as tmp:
        local = [Path(tmp) / str(i) for i in range(len(job.dirs))]
        # resume only when every run of the job has a last.pt; otherwise start it afresh
        resume = bool(start) and len(start) == len(local) and all(rundir.LAST_PT in f for f in start)
        for folder, files in zip(local, start if resume else []):
            write_files(folder, files)
        local_job = dataclasses.replace(job, dirs=local, resume=resume)
        with Shipper(local, snapshot_var):
            rows = execute_quietly(local_job, threads) if train is None else train(local_job, threads, inputs)
        files = [shipped_files(d) if d.is_dir() else {} for d in local]
    back = {str(d): str(c) for d, c in zip(local, job.dirs)}
    for row in rows:
        row["run_dir"] = back.get(str(row["run_dir"]), row["run_dir"])
        row["attempts"] = attempt
    return rows, files
