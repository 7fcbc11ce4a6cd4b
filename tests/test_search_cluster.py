"""A search on a Dask cluster: its stacks train as tasks of the cluster's workers and it ends where
the same search on this machine ends (every configuration's history, the chosen ensemble); one
interrupted there continues when run again; bad input is one line."""

from __future__ import annotations

import csv
import json
import logging
import signal
import socket
import subprocess
import sys

import pytest

from conftest import tiny_config
from trainwell.cli import main
from trainwell.errors import TrainwellError
from trainwell.stop_reasons import HALVED
from trainwell.tune import distribute, search

distributed = pytest.importorskip("distributed")
# six configurations over width and depth: four stacks, and with this seed the last stack's only member stops at
# the rung because of the earlier stacks' values (a stack alone always keeps its best third)
SEARCH = {"trials": 6, "seed": 1, "dials": ["lr", "width", "depth"]}
TIMING = ("wall_seconds", "seconds")


def raw_config():
    # numeric_embedding "auto" (none on this table): the client must match it to the resolved value the workers'
    # runs write, or every finished stack looks unfinished and the search ends as interrupted
    return tiny_config(train={"max_epochs": 8, "patience": 3}, model={"numeric_embedding": "auto"})


def config_file(tmp_path):
    import yaml

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw_config()))
    return str(path)


@pytest.fixture(scope="module")
def two_workers():
    """Two single-threaded worker processes on 127.0.0.1, for this module only."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def local_search(tmp_path_factory):
    """The same search on this machine, once for the module."""
    out = tmp_path_factory.mktemp("local") / "search"
    return search(raw_config(), out=out, **SEARCH)


def without_timing(rows):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def history(run_dir):
    return without_timing(json.loads((run_dir / "history.json").read_text()))


def table(out):
    with open(out / "search.csv", newline="") as fh:
        return without_timing(csv.DictReader(fh))


def assert_same_search(a, b):
    for d in sorted((a.out / "runs").iterdir()):
        assert history(d) == history(b.out / "runs" / d.name), d.name
    assert history(a.out / "default") == history(b.out / "default")
    assert table(a.out) == table(b.out)
    ens_a, ens_b = (json.loads((r.ensemble_dir / "metrics.json").read_text()) for r in (a, b))
    assert ens_a == ens_b and ens_a["picks"]


def test_a_search_on_a_cluster_ends_where_the_same_search_here_ends(tmp_path, two_workers, local_search):
    lines = []
    result = search(
        raw_config(), out=tmp_path / "dask", cluster=two_workers.scheduler_address, say=lines.append, **SEARCH
    )
    assert not result.interrupted and not result.failed
    assert any("2 worker slots" in line for line in lines)
    plan = json.loads((result.out / "search.json").read_text())
    assert len(plan["stacks"]) == 4
    last = json.loads((result.out / "runs" / f"c{plan['stacks'][-1][0]:02d}" / "metrics.json").read_text())
    assert last["stop_reason"] == HALVED  # decided against the earlier stacks' values, posted by other workers
    assert_same_search(result, local_search)


def test_a_search_interrupted_on_a_cluster_continues_to_the_same_result(tmp_path, two_workers, local_search):
    def interrupt_at_the_first_finished_run(line):
        if line.startswith("[1/"):
            raise KeyboardInterrupt

    stopped = search(
        raw_config(),
        out=tmp_path / "dask",
        cluster=two_workers.scheduler_address,
        say=interrupt_at_the_first_finished_run,
        **SEARCH,
    )
    assert stopped.interrupted and "run the same command" in stopped.message
    assert not stopped.ensemble_dir.exists()
    finished = [d for d in (tmp_path / "dask" / "runs").iterdir() if (d / "metrics.json").exists()]
    assert 0 < len(finished) < SEARCH["trials"] + 1
    resumed = search(raw_config(), out=tmp_path / "dask", cluster=two_workers.scheduler_address, **SEARCH)
    assert not resumed.interrupted
    assert_same_search(resumed, local_search)


# a search against the test's scheduler that SIGKILLs itself once the first stack's runs have come back
KILLED_CLIENT = """
import json, os, signal, sys
from trainwell.tune import distribute, search

def say(line):
    if line.startswith("[1/"):
        os.kill(os.getpid(), signal.SIGKILL)

raw, out, address, given = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
search(raw, out=out, cluster=address, say=say, **given)
"""


def test_a_search_killed_during_cluster_training_continues_to_the_same_result(tmp_path, two_workers, local_search):
    out, address = tmp_path / "dask", two_workers.scheduler_address
    argv = [sys.executable, "-c", KILLED_CLIENT, json.dumps(raw_config()), str(out), address, json.dumps(SEARCH)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (out / "ensemble").exists() and (out / "default" / "metrics.json").exists()
    resumed = search(raw_config(), out=out, cluster=address, **SEARCH)
    assert not resumed.interrupted
    assert_same_search(resumed, local_search)


def test_a_stack_failing_on_the_cluster_stops_those_waiting_on_it_and_the_search_continues(
    tmp_path, monkeypatch, local_search
):
    """The second stack raises on its worker: the later stacks, waiting for its values at the rung,
    stop instead of waiting for ever; the same call then continues to the same result."""
    real = distribute.run_stack

    def failing(cfgs, *rest, **given):
        if any(c.name.endswith("-c01") for c in cfgs):  # stack 2 of 4
            raise RuntimeError("this worker ran out of memory")
        return real(cfgs, *rest, **given)

    lines = []
    # in this process, so the patch reaches its worker; one worker thread, since stacks trained at once by threads of
    # one process would share torch's global generator while building their models (seeding.py)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        monkeypatch.setattr(distribute, "run_stack", failing)
        stopped = search(
            raw_config(), out=tmp_path / "dask", cluster=cluster.scheduler_address, say=lines.append, **SEARCH
        )
        assert stopped.interrupted and any("ran out of memory" in line for line in lines)
        monkeypatch.setattr(distribute, "run_stack", real)
        resumed = search(raw_config(), out=tmp_path / "dask", cluster=cluster.scheduler_address, **SEARCH)
    assert not resumed.interrupted
    assert_same_search(resumed, local_search)


def _free_port():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "address, says",
    [(f"tcp://127.0.0.1:{_free_port()}", "cannot reach a Dask scheduler"), ("ftp://h:1", "not allowed")],
)
def test_a_bad_cluster_is_one_line_and_writes_nothing(tmp_path, capsys, address, says):
    out = tmp_path / "out"
    args = ["train", config_file(tmp_path), "--search", "2", "--out", str(out), "--cluster", address, "--quiet"]
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and says in err and err.count("\n") == 0 and "Traceback" not in err
    assert not out.exists()


def test_without_dask_a_cluster_search_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed → ImportError
    with pytest.raises(TrainwellError, match=r"pip install 'trainwell\[cluster\]'"):
        search(raw_config(), out=tmp_path / "out", cluster="local", **SEARCH)
    assert not (tmp_path / "out").exists()


def test_cluster_without_a_search_is_refused(tmp_path, capsys):
    code = main(["train", config_file(tmp_path), "--out", str(tmp_path / "out"), "--cluster", "local"])
    assert code == 2 and "--search" in capsys.readouterr().err


def test_scikit_learn_estimators_search_on_a_cluster_to_the_local_result(two_workers):
    from sklearn.datasets import load_diabetes

    from trainwell.sklearn import TrainwellRegressor

    X, y = load_diabetes(return_X_y=True)
    settings = dict(hidden=(16,), max_epochs=4, patience=2, search=3, random_state=0)
    here = TrainwellRegressor(**settings).fit(X[:300], y[:300])
    there = TrainwellRegressor(**settings, cluster=two_workers.scheduler_address).fit(X[:300], y[:300])
    assert (there.predict(X[300:]) == here.predict(X[300:])).all()
    with pytest.raises(ValueError, match="give search=N"):
        TrainwellRegressor(cluster=two_workers.scheduler_address).fit(X[:300], y[:300])
