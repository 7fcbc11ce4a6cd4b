"""A job's result rows, shared by every executor and by a Dask worker: progress lines as rows
arrive, failed rows for a job that could not run, and execute() that never raises."""

from __future__ import annotations

import threading
import traceback
from typing import Any

from ..signals import interrupted_before
from .runner import FAILED, INTERRUPTED, OK, Job, Say, execute, one_line, record

Rows = list[dict[str, Any]]


def progress_line(i: int, total: int, r: dict[str, Any]) -> str:
    metric = next((f"{k} {r[k]:.4g}" for k in ("test_mae", "test_accuracy") if r.get(k) is not None), "")
    what = f"{r['experiment']} / {r['variant']} / seed {r['seed']}"
    if r["status"] != OK:
        return f"[{i}/{total}] {what}: {r['status']}: {r['error']}"
    secs = f", {r['wall_seconds']:.1f} s" if r.get("wall_seconds") is not None else ""
    return f"[{i}/{total}] {what}: {metric} ({r['epochs']} epochs{secs})"


class Collector:
    """Result rows as jobs finish, each announced with a progress line."""

    def __init__(self, jobs: list[Job], say: Say) -> None:
        self.rows: Rows = []
        self.total, self.say = sum(len(j.runs) for j in jobs), say

    def __call__(self, job_rows: Rows) -> None:
        for r in job_rows:
            self.rows.append(r)
            if r["status"] != INTERRUPTED:  # an interrupted compare says so once, not per run
                self.say(progress_line(len(self.rows), self.total, r))


def failed_rows(job: Job, reason: str) -> Rows:
    return [record(r, d, None, FAILED, reason) for r, d in zip(job.runs, job.dirs)]


def execute_quietly(job: Job, threads: int, checkpoint_seconds: float = 0.0) -> Rows:
    """execute(), with the thread count in every row; an unexpected error becomes failed rows.
    A worker interrupted before the job started starts nothing: the job's runs are left for next time."""
    if interrupted_before():
        return [record(r, d, None, INTERRUPTED, "interrupted") for r, d in zip(job.runs, job.dirs)]
    try:
        rows = execute(job, threads, checkpoint_seconds)
    except Exception as exc:  # pragma: no cover - execute catches run failures itself
        detail = one_line(exc) + " | " + traceback.format_exc(limit=2).replace("\n", " ")[-300:]
        rows = failed_rows(job, detail)
    for row in rows:  # the threads a run used (one for small models), else this worker's share
        if row.get("threads") is None:
            row["threads"] = threads
    return rows


def main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
