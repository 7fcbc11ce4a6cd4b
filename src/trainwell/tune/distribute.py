"""A search's stacks as tasks of a Dask cluster: `trainwell train --search N --cluster ADDRESS`.

Each stack is one job (the default run trains before them, on this machine: its epochs place the
halving points) of compare's DaskExecutor: it trains in a
temporary folder on its worker, with that worker's share of threads, and its run directories come
back to OUT as a compare's do (experiments/shipping.py); a stack unfinished on this disk resumes
from its files, and one whose worker dies runs once more elsewhere. The rows (the data the members
see) are scattered to every worker once.

The stacks are not quite independent: a stack's halving ranks its members against the values that
the configurations of every earlier stack reached at the same rung (halving.halver, as ASHA). So
that a search on a cluster decides exactly as one on this machine, each stack posts its values at
each rung to the scheduler (its metadata, under the search's token) as soon as it has passed that
rung, and a stack at a rung waits for the earlier stacks' values there. Stacks are queued in order
(earlier first), so the stacks a running one waits on are running or done: on one worker the
stacks run one after another, as on this machine; on several they overlap between rungs.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import rundir
from ..config import RunConfig
from ..data import DataBundle, ScalingInputs, scaling_inputs
from ..errors import CheckpointError, TrainwellError
from ..experiments.dask_executor import DaskExecutor
from ..experiments.executors import check_address
from ..experiments.runner import FAILED, INTERRUPTED, OK, Job, disk_state, record
from ..experiments.spec import Run
from ..stop_reasons import INTERRUPTED as STOPPED
from ..stop_reasons import NOT_FINITE
from .engine import interrupted, run_stack
from .halving import best_up_to, halver

Say = Callable[[str], None]
Rows = list[dict[str, Any]]
Stack = tuple[list[RunConfig], list[Path]]  # a stack's configs and run directories
BOARD = "trainwell-search"  # the scheduler metadata under which stacks post their rung values
POLL_SECONDS = 0.2  # how often a stack waiting at a rung looks for the earlier stacks' values
LEFT_OUT = "left out"  # a row's status: its stack started after the --time budget was spent


def values_at_rungs(histories: list[list[dict[str, Any]]], rungs: list[int], monitor: str, mode: str) -> dict:
    """Per rung, the best monitored value each of these histories had reached by then (those that reached it)."""
    out: dict[int, list[float]] = {r: [] for r in rungs}
    for history in histories:
        for r in rungs:
            value = best_up_to(history, r, monitor, mode)
            if value is not None:
                out[r].append(value)
    return out


def read_histories(dirs: list[Path]) -> list[list[dict[str, Any]]]:
    return [json.loads((d / rundir.HISTORY_JSON).read_text(encoding="utf-8")) for d in dirs]


class Board:
    """The search's rung values and training seconds per stack, on the scheduler (its metadata)."""

    def __init__(self, client: Any, token: str) -> None:
        self.client, self.token = client, token

    def _key(self, stack: int, item: str) -> list[str]:
        return [BOARD, self.token, f"stack{stack}", item]

    def post(self, stack: int, rung: int, values: list[float]) -> None:
        self.client.set_metadata(self._key(stack, f"rung{rung}"), [float(v) for v in values])

    def posted(self, stack: int, rung: int) -> list[float] | None:
        return self.client.get_metadata(self._key(stack, f"rung{rung}"), None)

    def post_seconds(self, stack: int, seconds: float) -> None:
        self.client.set_metadata(self._key(stack, "seconds"), float(seconds))

    def fail(self, stack: int) -> None:
        """The stack will not post (it failed, or the client gave it up): the stacks waiting on it stop."""
        try:
            self.client.set_metadata(self._key(stack, "failed"), True)
        except Exception:  # the scheduler is gone, and the waiting stacks with it
            pass

    def failed(self, stack: int) -> bool:
        return bool(self.client.get_metadata(self._key(stack, "failed"), False))

    def spent(self, before: int) -> float:
        """Training seconds of the stacks before this one that have finished (a --time budget)."""
        return sum(self.client.get_metadata(self._key(j, "seconds"), 0.0) for j in range(before))

    def clear(self) -> None:
        self.client.set_metadata([BOARD, self.token], {})  # the scheduler has no way to delete metadata


@dataclass
class EarlierStacks:
    """halver's `earlier` for stack `stack` on a worker: at a rung, the values every earlier stack
    posted there, waited for (`get` is all halver asks of its mapping)."""

    board: Board
    stack: int

    def get(self, rung: int, default: Any = None) -> list[float]:
        values: list[float] = []
        for j in range(self.stack):
            posted = self.board.posted(j, rung)
            while posted is None:
                if self.board.failed(j) or _cancelled():  # that stack will not post, or the client gave this one up
                    raise TrainwellError(f"stack {j + 1} of the search stopped before this one could rank its members")
                time.sleep(POLL_SECONDS)
                posted = self.board.posted(j, rung)
            values += posted
        return values


def _cancelled() -> bool:
    from distributed import get_worker

    worker = get_worker()
    task = worker.state.tasks.get(worker.get_current_task())
    return task is None or task.state not in ("executing", "long-running")


@dataclass
class StackWork:
    """What a worker runs for any stack of one search (shipping.run_on_worker's `train`): halving
    against the earlier stacks, and posting this stack's values. Picklable; the rows come as inputs."""

    token: str
    monitor: str
    mode: str
    rungs: list[int]
    stale: int | None  # halving.halver's: epochs without improvement after which a member stops
    budget: float | None  # --time: a stack starts only while the earlier ones have spent less
    stack_of: dict[str, int]  # run name → its stack
    done: dict[int, dict[int, list[float]]] = field(default_factory=dict)  # per stack: its members done on disk
    done_seconds: dict[int, float] = field(default_factory=dict)

    def __call__(self, job: Job, threads: int, data: DataBundle) -> Rows:
        from distributed import get_client

        k = self.stack_of[job.runs[0].config.name]
        board = Board(get_client(), self.token)
        if k > 0 and self.budget is not None and board.spent(k) >= self.budget:
            self._post_rest(board, k, {})  # a later stack waiting on this one goes on
            why = f"--time {self.budget:g} spent before its stack started"
            return [record(r, d, None, LEFT_OUT, why) for r, d in zip(job.runs, job.dirs)]
        posted: set[int] = set()
        halve = halver(self.rungs, EarlierStacks(board, k), stale=self.stale)

        def at_epoch_end(trainer: Any, state: Any) -> None:
            # post before halving: a rung's values are the best up to it, whoever stops there
            histories = [m.history for m in trainer.members]
            for rung, values in values_at_rungs(histories, self.rungs, self.monitor, self.mode).items():
                if rung <= state.epoch and rung not in posted:
                    board.post(k, rung, values + self.done.get(k, {}).get(rung, []))
                    posted.add(rung)
            halve(trainer, state)

        try:
            results = _run(job, data, at_epoch_end)
        except Exception:
            board.fail(k)
            raise
        if not interrupted(results):
            mine = values_at_rungs(read_histories(job.dirs), self.rungs, self.monitor, self.mode)
            self._post_rest(board, k, mine)
            seconds = sum(float(res.metrics.get("wall_seconds") or 0.0) for res in results)
            board.post_seconds(k, seconds + self.done_seconds.get(k, 0.0))
        return [_row(r, d, res) for r, d, res in zip(job.runs, job.dirs, results)]

    def _post_rest(self, board: Board, k: int, values: dict[int, list[float]]) -> None:
        """Every rung's values (those of the members done on disk with these), once the stack has finished."""
        for rung in self.rungs:
            if board.posted(k, rung) is None:
                board.post(k, rung, values.get(rung, []) + self.done.get(k, {}).get(rung, []))


def _run(job: Job, data: DataBundle, at_epoch_end: Callable[[Any, Any], None]) -> list[Any]:
    """run_stack in the job's folders; resume files that do not stand at one epoch (shipped from a stack given up
    while some members had finished) are dropped and the stack starts afresh, as one killed before its first save."""
    cfgs = [r.config for r in job.runs]
    try:
        return run_stack(cfgs, job.dirs, data, at_epoch_end)
    except CheckpointError:
        for d in job.dirs:
            shutil.rmtree(d, ignore_errors=True)
        return run_stack(cfgs, job.dirs, data, at_epoch_end)


def _row(run: Run, run_dir: Path, result: Any) -> dict[str, Any]:
    if result.stop_reason == STOPPED:
        return record(run, run_dir, None, INTERRUPTED, "interrupted")
    status = FAILED if result.stop_reason == NOT_FINITE else OK
    return record(run, run_dir, result.metrics, status, result.message if status == FAILED else "")


def connect(address: str) -> DaskExecutor:
    """The cluster at `address` ('local': a LocalCluster here); bad input (an address not allowed,
    no scheduler there, Dask not installed) is one line, before the search touches OUT."""
    if not isinstance(address, str):
        raise TrainwellError(
            f"cluster = {address!r} is not allowed: 'local' or a Dask scheduler address (tcp://host:8786)"
        )
    return DaskExecutor(check_address(address))


def train_on_cluster(
    executor: DaskExecutor, name: str, stacks: list[Stack], data: DataBundle, work: StackWork, say: Say
) -> tuple[bool, list[int]]:
    """Train the stacks on the cluster into their run directories; (whether every stack ran to its
    end, the stacks the --time budget left out). `name`: the search's, for the progress lines."""
    board, table = Board(executor.client, work.token), scaling_inputs(data)
    try:
        say(f"training the stacks on {executor.describe()}")
        jobs = _jobs(name, stacks, work, board, table)
        executor.train, executor.on_give_up = work, lambda job: board.fail(work.stack_of[job.runs[0].config.name])
        executor.inputs = executor.client.scatter(data, broadcast=True, hash=False) if jobs else None
        rows, complete = executor.run(jobs, say)
    finally:
        board.clear()
    left_out = sorted({work.stack_of[r["variant"]] for r in rows if r["status"] == LEFT_OUT})
    unfinished = [
        k
        for k, (cfgs, dirs) in enumerate(stacks)
        if k not in left_out and any(_state(c, d, table) != "done" for c, d in zip(cfgs, dirs))
    ]
    return complete and not unfinished, left_out


def _state(cfg: RunConfig, run_dir: Path, table: ScalingInputs) -> str:
    return disk_state(Run("", cfg.name, cfg.train.seed, cfg), run_dir, table)


def _jobs(name: str, stacks: list[Stack], work: StackWork, board: Board, table: ScalingInputs) -> list[Job]:
    """One job per stack with runs still to train (those done on disk post their values now);
    a stack whose unfinished runs cannot all resume starts them afresh, as engine.run_stack does."""
    jobs = []
    for k, (cfgs, dirs) in enumerate(stacks):
        states = [_state(c, d, table) for c, d in zip(cfgs, dirs)]
        done = [d for c, d, s in zip(cfgs, dirs, states) if s == "done"]
        work.done[k] = values_at_rungs(read_histories(done), work.rungs, work.monitor, work.mode)
        work.done_seconds[k] = sum(float(rundir.read_json(d / rundir.METRICS).get("wall_seconds") or 0) for d in done)
        todo = [i for i, s in enumerate(states) if s != "done"]
        if not todo:
            for rung, values in work.done[k].items():
                board.post(k, rung, values)
            board.post_seconds(k, work.done_seconds[k])
            continue
        resume = all(states[i] == "resume" for i in todo)
        for i in todo if not resume else []:
            if dirs[i].exists():
                shutil.rmtree(dirs[i])
        runs = [Run(name, cfgs[i].name, cfgs[i].train.seed, cfgs[i]) for i in todo]
        jobs.append(Job(runs, [dirs[i] for i in todo], resume=resume))
    return jobs


def new_work(
    monitor: str, mode: str, rungs: list[int], stale: int | None, budget: float | None, stacks: list[Stack]
) -> StackWork:
    stack_of = {c.name: k for k, (cfgs, _) in enumerate(stacks) for c in cfgs}
    return StackWork(uuid.uuid4().hex, monitor, mode, list(rungs), stale, budget, stack_of)
