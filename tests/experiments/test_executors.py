"""Executors: the same compare gives the same results on the local pool and on Dask clusters
(in-process, two worker processes, --cluster local); a worker killed mid-run is survived; a
scheduler that cannot be reached fails in seconds with one line."""

from __future__ import annotations

import csv
import os
import signal
import socket
import sys
import threading
import time

import pytest

from trainwell.cli import main
from trainwell.errors import TrainwellError
from trainwell.experiments import compare
from trainwell.experiments.executors import check_address, make_executor
from trainwell.experiments.spec import parse_experiment

distributed = pytest.importorskip("distributed")
TIMING = ("wall_seconds",)


def results(folder):
    with open(folder / "results.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def two_workers():
    """A cluster of two single-threaded worker processes on 127.0.0.1, for this module only."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    ) as cluster:
        yield cluster


@pytest.fixture
def in_process():
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        yield cluster


@pytest.fixture
def pool_threads_as_two_slots(monkeypatch):
    """The pool in this process (workers=0, quicker than spawning) with the torch threads each
    task of a two-slot Dask host gets, so the arithmetic is the same."""
    from trainwell.experiments import executors

    real = executors.threads_per_worker
    monkeypatch.setattr(executors, "threads_per_worker", lambda workers: real(2))


def test_same_results_on_the_pool_and_on_dask_clusters(tmp_path, tiny, two_workers, pool_threads_as_two_slots):
    exp = parse_experiment(tiny(variants={"adam": {}, "sgd": {"optim.name": "sgd", "optim.lr": 0.01}}, stack=False))
    pool = compare(exp, tmp_path / "pool", workers=0, quiet=True, baselines=False)
    lines = []
    dask = compare(
        exp, tmp_path / "two", workers=2, say=lines.append, baselines=False, cluster=two_workers.scheduler_address
    )
    local = compare(exp, tmp_path / "local", workers=2, quiet=True, baselines=False, cluster="local")
    assert results(tmp_path / "pool") == results(tmp_path / "two") == results(tmp_path / "local")
    assert [r["status"] for r in results(tmp_path / "two")] == ["ok"] * 4
    assert any("2 worker slots on 1 host" in line for line in lines)
    # the threads column: each task's share of this machine's cores, the same on every executor
    assert {r["threads"] for r in dask.rows} == {r["threads"] for r in pool.rows} == {r["threads"] for r in local.rows}
    for name in ("config.yaml", "history.csv", "history.json", "metrics.json", "best.pt", "curves.svg"):
        shipped, written = (
            tmp_path / "two" / "runs" / "sgd" / "seed-1" / name,
            tmp_path / "pool" / "runs" / "sgd" / "seed-1" / name,
        )
        assert shipped.exists(), name
        if name == "best.pt":
            assert shipped.stat().st_size == pytest.approx(written.stat().st_size, abs=64)
    assert not (tmp_path / "two" / "runs" / "sgd" / "seed-1" / "last.pt").exists()  # finished: not shipped


def test_stacks_on_an_in_process_cluster_match_the_pool(tmp_path, tiny, in_process):
    exp = parse_experiment(tiny(variants={"a": {}, "b": {"optim.lr": 0.01}}, stack=True))
    compare(exp, tmp_path / "pool", workers=0, quiet=True, baselines=False)
    result = compare(
        exp, tmp_path / "dask", workers=0, quiet=True, baselines=False, cluster=in_process.scheduler_address
    )
    assert results(tmp_path / "pool") == results(tmp_path / "dask")
    assert {r["engine"] for r in result.rows} == {"vectorised"} and {r["stacked_with"] for r in result.rows} != {1}
    assert all((tmp_path / "dask" / r["run_dir"] / "metrics.json").exists() for r in result.rows)


def _kill_when_a_snapshot_ships(cluster, killed):
    """Kill the worker training the job once the job has shipped a checkpoint."""
    client = distributed.Client(cluster.scheduler_address, set_as_default=False)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shipped = client.run_on_scheduler(
                lambda dask_scheduler: [
                    k
                    for k, v in dask_scheduler.extensions["variables"].variables.items()
                    if k.endswith("-snapshot") and v["value"]
                ]
            )
            busy = [
                w for w, keys in client.processing().items() if any(str(k).startswith("trainwell-job-") for k in keys)
            ]
            if shipped and busy:
                pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.1)
    finally:
        client.close()


def test_a_worker_killed_mid_run_resumes_on_another_and_matches_an_uninterrupted_run(
    tmp_path, tiny, two_workers, pool_threads_as_two_slots
):
    base = tiny(seeds=1, stack=False)["base"]
    base["data"]["n"], base["train"]["max_epochs"], base["train"]["batch_size"] = 2000, 40, 16
    exp = parse_experiment(tiny(base=base, seeds=1, stack=False))
    reference = compare(exp, tmp_path / "pool", workers=0, quiet=True, baselines=False)
    killed, lines = [], []
    killer = threading.Thread(target=_kill_when_a_snapshot_ships, args=(two_workers, killed))
    killer.start()
    result = compare(
        exp, tmp_path / "dask", workers=2, say=lines.append, baselines=False, cluster=two_workers.scheduler_address
    )
    killer.join()
    assert killed, "the run finished before it shipped a checkpoint: make it longer"
    # the scheduler re-ran the task (or, with allowed-failures 0, the client did), which resumed from the snapshot
    assert result.rows[0]["attempts"] == 2 or any("died while training" in line for line in lines)
    assert result.rows[0]["status"] == "ok" and result.rows[0]["epochs"] == 40
    assert results(tmp_path / "dask") == results(tmp_path / "pool")  # exact resume from the shipped last.pt
    assert reference.rows[0]["test_mae"] == result.rows[0]["test_mae"]


def test_a_job_whose_worker_died_twice_is_recorded_as_failed(tmp_path, tiny, in_process):
    from distributed import Variable

    from trainwell.experiments.compare import run_dirs
    from trainwell.experiments.runner import Job
    from trainwell.experiments.shipping import GAVE_UP, run_on_worker, variable_names
    from trainwell.experiments.spec import expand

    run = expand(parse_experiment(tiny(seeds=1)))[0]
    job = Job([run], run_dirs(tmp_path, [run]))
    with distributed.Client(in_process, set_as_default=False) as client:
        attempts, snap = variable_names("t1")
        Variable(attempts, client=client).set(2)  # two attempts already started, and their workers died
        Variable(snap, client=client).set(None)
        rows, files = client.submit(run_on_worker, job, {}, "t1", None, pure=False).result()
    assert rows[0]["status"] == "failed" and rows[0]["error"] == GAVE_UP and files == []
    assert not job.dirs[0].exists()


def test_an_unreachable_scheduler_fails_in_seconds_with_one_line(tmp_path, tiny, capsys):
    import yaml

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny(seeds=1)))
    started = time.monotonic()
    code = main(["compare", str(path), "--out", str(tmp_path / "out"), "--cluster", f"tcp://127.0.0.1:{port}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and time.monotonic() - started < 20
    assert err.count("\n") == 0 and f"tcp://127.0.0.1:{port}" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "runs").exists()


def test_cluster_addresses_are_checked():
    assert check_address("local") == "local"
    assert check_address("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert check_address("scheduler:8786") == "tcp://scheduler:8786"
    for bad in ("", "http://host:8786", "tcp://", "two words"):
        with pytest.raises(TrainwellError, match="is not allowed"):
            check_address(bad)


def test_without_dask_the_cluster_option_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed → ImportError
    with pytest.raises(TrainwellError, match=r"pip install 'trainwell\[cluster\]'"):
        make_executor("local", 2)
    assert make_executor(None, 2).describe().startswith("2 workers")
