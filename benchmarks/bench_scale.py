"""Scaling out: (a) the schedules compare on the local pool and on a local Dask cluster.

(a) The built-in schedules experiment with 5 seeds, run three ways, each into a fresh folder:
on the local pool (`trainwell compare --preset schedules --seeds 5 --workers 2`), on a Dask
LocalCluster of 2 single-threaded worker processes started beforehand (the cluster's own
start-up excluded), and with `--cluster local --workers 2` (start-up and shutdown included).
It reports wall and CPU seconds, checks the three results.csv agree (timing columns aside),
and the overhead Dask adds per run and per job: (Dask wall - pool wall) / runs. On 2 shared
cores no speed-up is promised: Dask adds a scheduler, per-task serialisation and the shipping
of each run directory, and buys machines this one does not have.

(b), single runs under torchrun, is another part of the issue and not here yet.

    OMP_NUM_THREADS=1 python benchmarks/bench_scale.py [--seeds 5] [--workers 2] [--no-stack]
"""

from __future__ import annotations

import argparse
import csv
import logging
import resource
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-stack", action="store_true", help="train every run on its own (one task per run)")
    args = ap.parse_args()
    from distributed import LocalCluster

    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    exp = preset("schedules").with_seeds(args.seeds)
    exp.stack = not args.no_stack
    runs = len(exp.variants) * args.seeds
    run = dict(workers=args.workers, quiet=True, baselines=False)
    pool_wall, _, pool = timed("local pool", lambda: compare(exp, root / "pool", **run))
    start = time.perf_counter()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0", silence_logs=logging.ERROR)
    print(f"{'(LocalCluster start-up)':<38} wall {time.perf_counter() - start:6.1f} s")
    with cluster:
        dask_wall, _, _ = timed("Dask, cluster already running", lambda: compare(exp, root / "dask", cluster=cluster.scheduler_address, **run))
    local_wall, _, _ = timed("--cluster local (start-up included)", lambda: compare(exp, root / "local", cluster="local", **run))
    engines = sorted({r["engine"] for r in pool.rows})
    same = results(root / "pool") == results(root / "dask") == results(root / "local")
    print(f"{runs} runs; results.csv the same on all three (timing aside): {same}")
    print(f"Dask overhead per run: {(dask_wall - pool_wall) / runs:+.2f} s (running cluster), {(local_wall - pool_wall) / runs:+.2f} s (--cluster local)")
    print(f"engines: {', '.join(engines)}; training seconds summed over runs (pool): {sum(r['wall_seconds'] or 0 for r in pool.rows):.1f}")
    print(f"outputs in {root}")


if __name__ == "__main__":
    main()
