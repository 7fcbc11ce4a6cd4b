"""One run under torchrun: 2 gloo processes on the CPU against 1 process, exact resume after the
whole group is killed, and the one-line refusals of bad setups."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainwell import distributed
from trainwell.checkpoint import LAST, load_checkpoint
from trainwell.cli import main
from trainwell.errors import CheckpointError
from trainwell.runner import resume

# the tabular lesson's delivery table, small: no BatchNorm or dropout, so 2 processes compute the
# same global-batch gradient as 1 (up to the order of float sums); 303 rows of which 205 train,
# so the last batch of 13 rows is split 7 + 6 and each half's loss weighted by its rows
SMALL = [
    "--preset",
    "delivery-quick",
    "--set",
    "data.n=303",
    "--set",
    "model.hidden=[16,8]",
    "--set",
    "model.norm=none",
    "--set",
    "model.dropout=0",
    "--set",
    "train.batch_size=32",
    "--set",
    "train.max_epochs=3",
    "--quiet",
]
TOLERANCE = 1e-5  # absolute, on weights and history figures after 30 steps (float32 sums in another order)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], cwd: Path, n: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(n),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "-m",
        "trainwell",
        *args,
    ]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(torchrun(args, cwd), cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def weights(run_dir: Path) -> torch.Tensor:
    return load_checkpoint(run_dir / "last.pt", LAST)["members"][0]["weights"]["params"]


def history(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "history.csv", newline="") as fh:
        return [{k: float(v) for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


@pytest.mark.parametrize("norm, engine", [("none", "vectorised"), ("layer", "module")])
def test_two_processes_reach_the_weights_and_history_of_one(tmp_path: Path, norm: str, engine: str) -> None:
    args = [*SMALL, "--set", f"model.norm={norm}"]
    done = run(["train", *args, "--out", "two"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("results in") == 1  # rank 0 reports, rank 1 prints nothing
    assert main(["train", *args, "--out", str(tmp_path / "one")]) == 0
    one, two = tmp_path / "one", tmp_path / "two"
    assert json.loads((two / "metrics.json").read_text())["engine"] == engine
    assert load_checkpoint(two / "last.pt", LAST)["loop"]["world_size"] == 2
    assert torch.allclose(weights(one), weights(two), rtol=0, atol=TOLERANCE)
    h1, h2 = history(one), history(two)
    assert len(h1) == len(h2) == 3
    for a, b in zip(h1, h2):
        assert a.keys() == b.keys()
        assert all(abs(a[k] - b[k]) <= TOLERANCE * max(1.0, abs(a[k])) for k in a), (a, b)


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def test_resume_after_the_whole_group_is_killed_ends_as_an_uninterrupted_run(tmp_path: Path) -> None:
    # BatchNorm and dropout on, mid-epoch checkpoints: the per-process streams must resume exactly too
    args = [
        "train",
        "--preset",
        "delivery-quick",
        "--set",
        "data.n=300",
        "--set",
        "train.batch_size=32",
        "--set",
        "train.max_epochs=40",
        "--set",
        "train.early_stopping=false",
        "--set",
        "train.checkpoint_every_steps=7",
        "--quiet",
    ]
    done = run([*args, "--out", "whole"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    group = subprocess.Popen(
        torchrun([*args, "--out", "killed"], tmp_path),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = tmp_path / "killed" / "last.pt"
    deadline = time.monotonic() + 60
    while not last.exists() and group.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    for pid in [*_children(group.pid), group.pid]:  # every worker, then the launcher
        os.kill(pid, signal.SIGKILL)
    group.wait()
    assert not (tmp_path / "killed" / "metrics.json").exists(), "the run finished before it could be killed"
    again = run(["resume", "killed", "--quiet"], tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert torch.equal(weights(tmp_path / "whole"), weights(tmp_path / "killed"))
    assert history(tmp_path / "whole") == history(tmp_path / "killed")

    # the same last.pt resumed by one process is refused in one line, before anything is written
    (tmp_path / "killed" / "metrics.json").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "killed").iterdir()}
    with pytest.raises(CheckpointError, match="written by 2 process\\(es\\) and this resume runs 1"):
        resume(tmp_path / "killed", quiet=True)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "killed").iterdir()} == before


def _as_rank(monkeypatch: pytest.MonkeyPatch, world: int, rendezvous: bool = True) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", str(world))
    if rendezvous:
        monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
        monkeypatch.setenv("MASTER_PORT", str(free_port()))
    else:
        monkeypatch.delenv("MASTER_ADDR", raising=False)
        monkeypatch.delenv("MASTER_PORT", raising=False)


@pytest.mark.parametrize(
    "world, rendezvous, extra, message",
    [
        (3, True, [], "train.batch_size = 32 is not divisible by the 3 torchrun processes; use a multiple of 3"),
        (2, False, [], "the rendezvous is missing (MASTER_ADDR and MASTER_PORT); start the processes with torchrun"),
        (2, True, ["--set", "train.members=2"], "train.members = 2 is not supported under torchrun"),
        (2, True, ["--set", "train.backend=nccl", "--set", "train.device=cpu"], "train.backend = 'nccl' needs"),
    ],
)
def test_bad_setups_are_refused_in_one_line(tmp_path, monkeypatch, capsys, world, rendezvous, extra, message) -> None:
    _as_rank(monkeypatch, world, rendezvous)
    assert main(["train", *SMALL, *extra, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_the_environment_is_read_in_one_place(monkeypatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.launch() is None and distributed.world_size() == 1 and not distributed.is_follower()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert distributed.launch() == distributed.Launch(1, 2, 1) and distributed.is_follower()
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(Exception, match="RANK must be from 0 to WORLD_SIZE - 1"):
        distributed.launch()


def test_shards_split_the_last_partial_batch_and_weigh_by_rows() -> None:
    idx = torch.arange(11).unsqueeze(0)
    parts = [distributed.DataParallel(r, 2, torch.device("cpu")).shard(idx) for r in range(2)]
    assert [p.tolist() for p in parts] == [[[0, 1, 2, 3, 4, 5]], [[6, 7, 8, 9, 10]]]
    dp = distributed.DataParallel(0, 2, torch.device("cpu"))
    assert dp.needs_drop_last(65, 32, batchnorm=False) and not dp.needs_drop_last(66, 32, batchnorm=False)
    assert dp.needs_drop_last(67, 32, batchnorm=True) and not dp.needs_drop_last(68, 32, batchnorm=True)
