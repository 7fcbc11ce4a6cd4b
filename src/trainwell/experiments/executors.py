"""Where a compare's jobs run; chosen in one place, `make_executor`. Jobs do not know where they run.

LocalPool: worker processes on this machine (or this process, with 0 workers), forked from a
fork server that imported torch once, started before the compare's configs are checked; each
with torch threads = max(1, cores // workers), writing straight into the run directories.

DaskExecutor (dask_executor.py): a Dask distributed cluster, `tcp://host:8786` or "local".
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Callable, Protocol

from ..errors import TrainwellError
from ..signals import remember_interrupts
from .dask_executor import DaskExecutor
from .job_rows import Collector, Rows, execute_quietly, failed_rows, main_thread
from .runner import INTERRUPTED, Job, Say, one_line, preload, threads_per_worker

ALLOWED_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
# On this machine a run's last.pt and best.pt are written at epoch ends at most this often (and
# whenever a run finishes, and on Ctrl-C after the current step): a run of a few seconds no longer
# writes one per epoch (a fifth of the schedules preset's training time). Only a killed process
# loses up to this much training; a Dask worker keeps writing every epoch, as its snapshots ship them.
CHECKPOINT_SECONDS = 10.0
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


class Executor(Protocol):
    workers: int  # jobs that run at once (planning splits stacks by it)

    def describe(self) -> str: ...

    def run(self, jobs: list[Job], say: Say, meanwhile: Callable[[], None] | None = None) -> tuple[Rows, bool]: ...

    def close(self) -> None: ...


def make_executor(cluster: str | None, workers: int) -> Executor:
    """The one place a compare's executor is chosen: no cluster → LocalPool, else a DaskExecutor."""
    if cluster is None:
        return LocalPool(workers, threads_per_worker(workers))
    return DaskExecutor(check_address(cluster), workers or None)


def check_address(address: str) -> str:
    """'local' or a scheduler address (tcp://host:8786, host:8786); anything else is refused."""
    text = address.strip()
    if text == "local":
        return text
    scheme, _, rest = text.rpartition("://")
    if not rest or " " in text or (scheme and scheme not in ALLOWED_SCHEMES) or rest.startswith(":"):
        raise TrainwellError(
            f"--cluster {address!r} is not allowed: give 'local' or a Dask scheduler address such as tcp://host:8786"
        )
    return text if scheme else f"tcp://{text}"


# ---- this machine ------------------------------------------------------------------------------


# What the fork server imports once, before it forks the workers: each starts with torch and the
# training code loaded (seconds of CPU a worker would otherwise spend importing them itself), and
# the server's quick exit (fork_server.py)
PRELOAD = ["torch", "trainwell.runner", "trainwell.experiments.job_rows", "trainwell.experiments.fork_server"]


def _start_fork_server(threads: int) -> None:
    """The fork server the workers are forked from: a fresh interpreter, never this process (whose
    torch may hold threads). Started here, under the caller's SIGINT guard, which it and every
    worker inherit; with the thread counts of a worker set before it imports torch. It serves every
    later compare of this process."""
    from multiprocessing import forkserver

    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update({k: str(threads) for k in THREAD_VARIABLES})
    try:
        forkserver.ensure_running()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _init_worker(threads: int, stop: Any) -> None:
    os.environ.update({k: str(threads) for k in THREAD_VARIABLES})
    # Ctrl-C reaches the whole process group: from here on a worker records it, as it records the
    # compare's `stop` event (signals.py), so a run it is about to start does not start, and a
    # running run stops after the current step (writing last.pt)
    remember_interrupts(stop)
    # the compare spawned this worker with SIGINT blocked as well as ignored: a Ctrl-C that came while
    # this process started has waited, pending, and reaches the handler just installed
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    import torch

    torch.set_num_threads(threads)


class LocalPool:
    """Spawned worker processes on this machine (workers 0: this process)."""

    def __init__(self, workers: int, threads: int) -> None:
        self.workers, self.threads = workers, threads
        self.started: Workers | None = None

    def describe(self) -> str:
        w, t = self.workers or 1, self.threads  # 0 workers: the runs train in this process, as one worker
        return f"{w} worker{'s' if w != 1 else ''} × {t} thread{'s' if t != 1 else ''}"

    def start(self, runs: int) -> None:
        """Spawn the workers now, before the runs are validated and planned: each imports torch
        (seconds) while this process does the same and checks the data. `runs`: at most this many
        jobs will come (a stack or a run each)."""
        count = min(self.workers, runs)
        if count < 1 or self.started is not None:
            return
        guard = main_thread()
        self.started = Workers(count, self.threads, guard)
        if guard:  # a Ctrl-C from the spawn on is raised here, and the compare's clean-up closes the pool
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def close(self) -> None:
        if self.started is not None:
            self.started.close()
            self.started = None

    def run(self, jobs: list[Job], say: Say, meanwhile: Callable[[], None] | None = None) -> tuple[Rows, bool]:
        if self.started is None and self.workers and jobs:
            self.started = Workers(min(self.workers, len(jobs)), self.threads, main_thread())
        return run_jobs(jobs, self.threads, say, meanwhile, self.started)


def run_jobs(
    jobs: list[Job], threads: int, say: Say, meanwhile: Callable[[], None] | None, workers: Workers | None
) -> tuple[Rows, bool]:
    """Execute jobs on the workers (None: in this process) and return their rows and whether all ran.
    `meanwhile` runs in this process while the workers train (baselines, imports for the report)."""
    finished = Collector(jobs, say)
    rows = finished.rows
    if not jobs:
        if meanwhile is not None:
            meanwhile()
        return rows, True
    if workers is None:
        # in this process: `meanwhile` in a thread beside the training (torch's kernels and
        # scikit-learn's release the GIL), so the other core does it
        beside = threading.Thread(target=meanwhile, daemon=True) if meanwhile is not None else None
        if beside is not None:
            beside.start()
        try:
            for job in jobs:
                finished(execute_quietly(job, threads, CHECKPOINT_SECONDS))
        except KeyboardInterrupt:
            return rows, False
        finally:
            if beside is not None:
                beside.join()
        return rows, True
    return _run_in_pool(jobs, workers, threads, say, meanwhile, finished, rows)


class Workers:
    """Worker processes (a ProcessPoolExecutor) forked from the fork server, each given `preload` first;
    jobs come later.
    With `guard` (the main thread), SIGINT is left blocked: the caller unblocks it where it handles
    KeyboardInterrupt.

    Workers are born ignoring Ctrl-C: the fork server is started with SIGINT ignored (an ignored signal
    stays ignored across exec, and Python then installs no KeyboardInterrupt handler), and a worker
    forked from it gets the server's own handler back, so one that is still starting when Ctrl-C comes
    does not die with a traceback. The Ctrl-C is not lost: this process sets `stop`, which a worker
    reads before each job and a running run after each step (signals.py). SIGINT is also blocked
    meanwhile (the mask is inherited by the server, and from it by each worker): an ignored signal
    would be lost, while a blocked one waits until the worker's handler unblocks it."""

    def __init__(self, count: int, threads: int, guard: bool) -> None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        self.stop, self.given_jobs = ctx.Event(), False
        self.exiting: threading.Thread | None = None
        if guard:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if guard else None
        try:
            _start_fork_server(threads)
            self.pool = ProcessPoolExecutor(
                max_workers=count, mp_context=ctx, initializer=_init_worker, initargs=(threads, self.stop)
            )
        except BaseException:
            if guard:
                signal.signal(signal.SIGINT, previous)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            raise
        if guard:
            signal.signal(signal.SIGINT, previous)
        # each submit forks one worker once the server has imported PRELOAD: seconds this process
        # spends validating and planning meanwhile
        self.spawning = threading.Thread(target=self._spawn, args=(count,), daemon=True)
        self.spawning.start()

    def _spawn(self, count: int) -> None:
        for _ in range(count):  # the pool starts a worker for each task submitted while none is idle
            self.pool.submit(preload)

    def release(self) -> None:
        """Let the workers exit (seconds, for torch) while this process writes the report; close() waits."""
        self.exiting = threading.Thread(target=self.pool.shutdown, kwargs={"cancel_futures": True}, daemon=True)
        self.exiting.start()

    def submit(self, jobs: list[Job], threads: int) -> dict[Future, Job]:
        self.spawning.join()
        self.given_jobs = True
        return {self.pool.submit(execute_quietly, job, threads, CHECKPOINT_SECONDS): job for job in jobs}

    def close(self) -> None:
        """Wait for the workers to exit; ones never given a job (the compare stopped before its runs:
        bad input, Ctrl-C, nothing left to run) are ended at once instead of after their imports."""
        if self.exiting is not None:
            self.exiting.join()
            return
        self.spawning.join()
        if not self.given_jobs:
            for process in list((self.pool._processes or {}).values()):  # the pool has no public way
                process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)


def _run_in_pool(
    jobs: list[Job],
    workers: Workers,
    threads: int,
    say: Say,
    meanwhile: Callable[[], None] | None,
    finished: Callable[[Rows], None],
    rows: Rows,
) -> tuple[Rows, bool]:
    guard = main_thread()
    pending: dict[Future, Job] = {}
    complete = True

    def collect() -> None:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                job = pending[fut]
                if fut.cancelled():
                    job_rows = []
                else:
                    try:
                        job_rows = fut.result()
                    except Exception as exc:  # the worker process itself died
                        job_rows = failed_rows(job, f"worker process failed: {one_line(exc)}")
                del pending[fut]
                finished(job_rows)

    try:
        try:
            if guard:  # a Ctrl-C that came while the workers were spawned is raised here
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            pending.update(workers.submit(jobs, threads))  # waits for the workers to be forked
            if meanwhile is not None:
                meanwhile()
            collect()
        except KeyboardInterrupt:
            complete = False
            workers.stop.set()  # running runs stop after their current step; workers start no other job
            if main_thread():  # a second Ctrl-C must not cut the collection short
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            for fut in list(pending):
                fut.cancel()  # jobs not yet started: they run next time
            collect()
    finally:
        workers.release()
        if not complete and main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)
    return rows, complete and all(r["status"] != INTERRUPTED for r in rows)
