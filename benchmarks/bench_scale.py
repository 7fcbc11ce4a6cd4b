"""Scaling out: (a) the schedules compare on the local pool and on a local Dask cluster.

(a) The built-in schedules experiment with 5 seeds, run three ways, each into a fresh folder:
on the local pool (`trainwell compare --preset schedules --seeds 5 --workers 2`), on a Dask
LocalCluster of 2 single-threaded worker processes started beforehand (the cluster's own
start-up excluded), and with `--cluster local --workers 2` (start-up and shutdown included).
It reports wall and CPU seconds, checks the three results.csv agree (timing columns aside),
and the overhead Dask adds per run and per job: (Dask wall - pool wall) / runs. On 2 shared
cores no speed-up is promised: Dask adds a scheduler, per-task serialisation and the shipping
of each run directory, and buys machines this one does not have.

(b) One larger run (an MLP of about 170k parameters on a 200k-row generated delivery table) three
ways: 1 process with 1 thread, 1 process with 2 threads, and 2 torchrun processes with 1 thread
each (gloo on the CPU, each training half of every global batch). It reports training samples
per second (training rows × epochs / the epochs' seconds from history.csv, validation included)
and how far the 2-process weights are from the 1-process ones. On 2 shared cores no speed-up is
promised: each process does half the arithmetic of a step but adds an all_reduce of the whole
gradient per step, and the cores are shared with the other process and with everything else
running on the machine.

    OMP_NUM_THREADS=1 python benchmarks/bench_scale.py [--seeds 5] [--workers 2] [--no-stack]   # (a)
    python benchmarks/bench_scale.py --torchrun [--rows 200000] [--epochs 2] [--procs 2]       # (b)
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trainwell.checkpoint import LAST, load_checkpoint
from trainwell.config import load_config
from trainwell.data import load_data
from trainwell.experiments import compare, preset

TIMING = ("wall_seconds",)


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (not inflated by other load)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def results(folder: Path) -> list[dict[str, str]]:
    with open(folder / "results.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(fh)]


def timed(label: str, fn) -> tuple[float, float, object]:
    cpu, wall = cpu_seconds(), time.perf_counter()
    out = fn()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    print(f"{label:<38} wall {wall:6.1f} s   cpu {cpu:6.1f} s (this process and finished children)", flush=True)
    return wall, cpu, out


def single_run(label: str, command: list[str], out: Path, threads: int) -> tuple[float, Path]:
    """Train one run with `command` (+ --out); samples per second over its epochs."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    wall = time.perf_counter()
    subprocess.run([*command, "--out", str(out)], check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - wall
    with open(out / "history.csv", newline="") as fh:
        seconds = sum(float(row["seconds"]) for row in csv.DictReader(fh))
    cfg = load_config(out / "config.yaml")
    rows = len(load_data(cfg.data).x_train) * cfg.train.max_epochs
    print(
        f"{label:<34} {rows / seconds:10,.0f} samples/s  "
        f"({seconds:5.1f} s in epochs, {wall:5.1f} s wall with start-up)",
        flush=True,
    )
    return rows / seconds, out


def part_b(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-scale-b-"))
    train = [
        "train",
        "--preset",
        "delivery-quick",
        "--set",
        f"data.n={args.rows}",
        "--set",
        "model.hidden=[512,256,128]",
        "--set",
        f"train.max_epochs={args.epochs}",
        "--set",
        "train.batch_size=512",
        "--set",
        "train.early_stopping=false",
        "--set",
        "train.bn_recalibration_samples=0",
        "--quiet",
    ]
    one = [sys.executable, "-m", "trainwell", *train]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    many = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(args.procs),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port),
        "-m",
        "trainwell",
        *train,
    ]
    print(f"{args.rows:,} generated rows, MLP [512, 256, 128], batch 512, {args.epochs} epochs; outputs in {root}")
    base, d1 = single_run("1 process, 1 thread", [*one, "--set", "train.threads=1"], root / "one-1", 1)
    single_run(
        f"1 process, {args.procs} threads",
        [*one, "--set", f"train.threads={args.procs}"],
        root / f"one-{args.procs}",
        args.procs,
    )
    rate, dn = single_run(
        f"{args.procs} torchrun processes, 1 thread each", [*many, "--set", "train.threads=1"], root / "many", 1
    )
    w1 = load_checkpoint(d1 / "last.pt", LAST)["members"][0]["weights"]["params"]
    wn = load_checkpoint(dn / "last.pt", LAST)["members"][0]["weights"]["params"]
    print(
        f"{args.procs} processes / 1 process: {rate / base:.2f}×; largest weight difference after training "
        f"{float((w1 - wn).abs().max()):.2e} "
        "(BatchNorm per shard and per-process dropout streams make the runs differ by design)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-stack", action="store_true", help="train every run on its own (one task per run)")
    ap.add_argument(
        "--torchrun", action="store_true", help="part (b): one run on 1 process and on --procs torchrun processes"
    )
    ap.add_argument("--rows", type=int, default=200_000, help="(b) rows of the generated table")
    ap.add_argument("--epochs", type=int, default=2, help="(b) epochs")
    ap.add_argument("--procs", type=int, default=2, help="(b) torchrun processes")
    args = ap.parse_args()
    if args.torchrun:
        part_b(args)
        return
    from distributed import LocalCluster

    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    exp = preset("schedules").with_seeds(args.seeds)
    exp.stack = not args.no_stack
    runs = len(exp.variants) * args.seeds
    run = dict(workers=args.workers, quiet=True, baselines=False)
    pool_wall, _, pool = timed("local pool", lambda: compare(exp, root / "pool", **run))
    start = time.perf_counter()
    cluster = LocalCluster(
        n_workers=args.workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    print(f"{'(LocalCluster start-up)':<38} wall {time.perf_counter() - start:6.1f} s")
    with cluster:
        dask_wall, _, _ = timed(
            "Dask, cluster already running",
            lambda: compare(exp, root / "dask", cluster=cluster.scheduler_address, **run),
        )
    local_wall, _, _ = timed(
        "--cluster local (start-up included)", lambda: compare(exp, root / "local", cluster="local", **run)
    )
    engines = sorted({r["engine"] for r in pool.rows})
    same = results(root / "pool") == results(root / "dask") == results(root / "local")
    print(f"{runs} runs; results.csv the same on all three (timing aside): {same}")
    print(
        f"Dask overhead per run: {(dask_wall - pool_wall) / runs:+.2f} s (running cluster), "
        f"{(local_wall - pool_wall) / runs:+.2f} s (--cluster local)"
    )
    print(
        f"engines: {', '.join(engines)}; training seconds summed over runs (pool): "
        f"{sum(r['wall_seconds'] or 0 for r in pool.rows):.1f}"
    )
    print(f"outputs in {root}")


if __name__ == "__main__":
    main()
