"""DaskExecutor: a compare's jobs as tasks of a Dask distributed cluster, `tcp://host:8786` or
"local" (a LocalCluster here, one single-threaded worker process per core).

Workers need not share a file system with this process: each job trains into a temporary
folder on its worker, and the finished run directories come back as bytes (shipping.py) and
are written here, atomically. While a single run trains, its worker ships a snapshot of its
last.pt (with config.yaml and best.pt) to the scheduler after each checkpoint; when the worker
dies, the job runs once more on another worker from that snapshot, and a job whose worker dies
twice is recorded as failed. Dask itself (the optional `distributed` package) is imported only
where it is used, so a compare on this machine runs without it. A search's stacks run as jobs too
(tune/distribute.py): `train` replaces a compare's execute on the worker, and jobs start in order.
"""

from __future__ import annotations

import signal
from typing import Any, Callable

from ..errors import TrainwellError
from .job_rows import Collector, Rows, main_thread
from .runner import FAILED, INTERRUPTED, Job, Say, cores, one_line, record
from .shipping import GAVE_UP, MAX_ATTEMPTS, RESUME, get_or, read_files, run_on_worker, variable_names, write_files

INSTALL_HINT = "--cluster needs Dask's distributed scheduler: pip install 'trainwell[cluster]'"
CONNECT_SECONDS = 5  # an unreachable scheduler fails after this long
WAIT_FOR_WORKERS_SECONDS = 30  # a reachable scheduler with no workers yet gets this long to gain one
POLL_SECONDS = 0.05  # how often the client looks for finished tasks


class _Task:
    """A job on its way through the cluster: its key's token, resume files and submissions."""

    def __init__(self, job: Job, prior: Any, order: int = 0) -> None:
        import uuid

        self.job, self.prior, self.token, self.submitted = job, prior, uuid.uuid4().hex, 0
        self.order = order  # the job's place in the queue: earlier jobs start first


class DaskExecutor:
    """Jobs as tasks of a Dask distributed cluster (see the module's docstring)."""

    def __init__(self, address: str, workers: int | None = None) -> None:
        # what a task runs instead of a compare's execute, and its inputs (shipping.run_on_worker)
        self.train: Callable[[Job, int, Any], Rows] | None = None
        self.inputs: Any = None
        self.on_give_up: Callable[[Job], None] | None = None  # told of each job given up (a search's waiting stacks)
        try:
            import distributed
        except ImportError:
            raise TrainwellError(INSTALL_HINT) from None
        self.address, self.cluster = address, None
        if address == "local":
            self.cluster = _local_cluster(workers or cores())
            self.client = distributed.Client(self.cluster, set_as_default=False)
        else:
            self.client = _connect(address)
        self.slots_by_host = _slots_by_host(self.client)
        self.workers = sum(self.slots_by_host.values())

    def describe(self) -> str:
        where = "a local Dask cluster" if self.cluster is not None else f"the Dask cluster at {self.address}"
        hosts = len(self.slots_by_host)
        slots = f"{self.workers} worker slot{'s' if self.workers != 1 else ''}"
        return f"{where}: {slots} on {hosts} host{'s' if hosts != 1 else ''}"

    def close(self) -> None:
        with _quiet_logs():
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()

    def run(self, jobs: list[Job], say: Say, meanwhile: Callable[[], None] | None = None) -> tuple[Rows, bool]:
        finished = Collector(jobs, say)
        rows = finished.rows
        pending: dict[Any, _Task] = {}
        complete = True
        try:
            for order, job in enumerate(jobs):  # a run found unfinished on this disk resumes from its files
                prior = [read_files(d, RESUME) for d in job.dirs] if job.resume else None
                self._submit(_Task(job, prior, order), pending)
            if meanwhile is not None:
                meanwhile()
            self._collect(pending, finished, say)
        except KeyboardInterrupt:
            complete = False
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread() else None
            try:
                say(
                    "interrupted: runs not yet started are cancelled; running runs keep their last shipped "
                    "checkpoint for next time"
                )
                self._abandon(pending)
            finally:
                if previous is not None:
                    signal.signal(signal.SIGINT, signal.default_int_handler)
        return rows, complete and not pending and all(r["status"] != INTERRUPTED for r in rows)

    def _submit(self, task: _Task, pending: dict[Any, _Task]) -> None:
        from distributed import Variable

        if task.submitted == 0:  # set before the task runs, so a worker's get never waits
            attempts, snap = variable_names(task.token)
            Variable(attempts, client=self.client).set(0)
            Variable(snap, client=self.client).set(None)
        task.submitted += 1
        key = f"trainwell-job-{task.token}-{task.submitted}"
        fut = self.client.submit(
            run_on_worker,
            task.job,
            self.slots_by_host,
            task.token,
            task.prior,
            self.train,
            self.inputs,
            key=key,
            pure=False,
            priority=-task.order,
        )
        pending[fut] = task

    def _collect(self, pending: dict[Any, _Task], finished: Callable[[Rows], None], say: Say) -> None:
        import time

        last_seen_workers = checked = time.monotonic()
        while pending:
            done = [fut for fut in pending if fut.done()]
            for fut in done:
                finished(self._settle(fut, pending.pop(fut), pending, say))
            if done:
                continue
            time.sleep(POLL_SECONDS)
            if time.monotonic() - checked < 1:
                continue
            checked = time.monotonic()
            if self._has_workers():
                last_seen_workers = checked
            elif checked - last_seen_workers > WAIT_FOR_WORKERS_SECONDS:  # never hang on an empty cluster
                for fut, task in list(pending.items()):
                    finished(
                        self._give_up(
                            task,
                            f"no Dask worker for {WAIT_FOR_WORKERS_SECONDS} s; run the same command again to continue",
                            INTERRUPTED,
                        )
                    )
                    fut.cancel()
                pending.clear()

    def _has_workers(self) -> bool:
        try:
            return self.client.status == "running" and bool(self.client.nthreads())
        except Exception:  # the scheduler is unreachable: as good as no workers
            return False

    def _settle(self, fut: Any, task: _Task, pending: dict[Any, _Task], say: Say) -> Rows:
        """Rows for a job whose future is done: its results, a retry, or a failure with the reason."""
        from distributed import KilledWorker

        if fut.status == "finished":
            job_rows, files = fut.result()
            for folder, shipped in zip(task.job.dirs, files):
                if shipped:
                    write_files(folder, shipped)
            self._forget(task)
            return job_rows
        if fut.status != "error":  # cancelled by the scheduler (it went away or restarted)
            return self._give_up(
                task, "cancelled by the Dask scheduler; run the same command again to continue", INTERRUPTED
            )
        exc = fut.exception()
        if not isinstance(exc, KilledWorker):
            return self._give_up(task, one_line(exc))
        from distributed import Variable

        attempts = get_or(Variable(variable_names(task.token)[0], client=self.client), 0)
        if attempts < MAX_ATTEMPTS:
            say(f"a Dask worker died while training {_names(task.job)}; running it once more on another worker")
            self._submit(task, pending)
            return []
        return self._give_up(task, GAVE_UP)

    def _give_up(self, task: _Task, reason: str, status: str = FAILED) -> Rows:
        """Keep the job's last shipped checkpoint on disk (a later compare resumes from it)."""
        try:
            from distributed import Variable

            shipped = get_or(Variable(variable_names(task.token)[1], client=self.client), None)
        except Exception:  # the scheduler is gone, and the snapshot with it
            shipped = None
        for folder, files in zip(task.job.dirs, shipped or []):
            write_files(folder, files)
        self._forget(task)
        if self.on_give_up is not None:
            self.on_give_up(task.job)
        return [record(r, d, None, status, reason) for r, d in zip(task.job.runs, task.job.dirs)]

    def _abandon(self, pending: dict[Any, _Task]) -> None:
        """Ctrl-C: cancel every job still out, keeping what running ones shipped."""
        self.client.cancel(list(pending))
        for task in pending.values():
            self._give_up(task, "interrupted")
        pending.clear()

    def _forget(self, task: _Task) -> None:
        from distributed import Variable

        for name in variable_names(task.token):
            try:
                Variable(name, client=self.client).delete()
            except Exception:  # the scheduler is gone: nothing is left to free
                pass


def _names(job: Job) -> str:
    return ", ".join(f"{r.variant} seed {r.seed}" for r in job.runs)


def _slots_by_host(client: Any) -> dict[str, int]:
    """Dask task slots (worker threads) per host: a task's torch threads are its host's share."""
    from urllib.parse import urlparse

    slots: dict[str, int] = {}
    for address, n in client.nthreads().items():
        host = urlparse(address).hostname or ""
        slots[host] = slots.get(host, 0) + n
    return slots


def _quiet_logs() -> Any:
    """Dask logs connection attempts and shutdowns at WARNING; a compare reports in its own lines."""
    import contextlib
    import logging

    @contextlib.contextmanager
    def quiet() -> Any:
        loggers = [logging.getLogger(n) for n in ("distributed", "tornado")]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)

    return quiet()


def _connect(address: str) -> Any:
    import distributed

    try:
        with _quiet_logs():
            client = distributed.Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError):
        raise TrainwellError(
            f"cannot reach a Dask scheduler at {address} within {CONNECT_SECONDS} s; start one with 'dask "
            f"scheduler' or check --cluster"
        ) from None
    try:
        client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS_SECONDS)
    except TimeoutError:
        client.close()
        raise TrainwellError(
            f"the Dask scheduler at {address} has no workers after {WAIT_FOR_WORKERS_SECONDS} s; start some "
            f"with 'dask worker {address}'"
        ) from None
    return client


def _local_cluster(workers: int) -> Any:
    """One single-threaded worker process per core on 127.0.0.1, born ignoring Ctrl-C (the
    client handles it: it cancels what has not started and keeps what finished)."""
    import logging

    from distributed import LocalCluster

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread() else None
    try:
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
