"""Seconds for trainwell's equivalents of the first seed lesson's five scripts, one seed each.

The tabular lesson's scripts, run as written one after another, take 198 s on this machine (2 cores;
figures in shared/seeds/README.md). Here each built-in experiment (optimizers, batchnorm,
dropout, schedules, recipe) runs with one seed as `trainwell compare --preset NAME --seeds 1`
would, one after another, each with its own worker pool (forking included; the fork server that
imports torch for the workers is started by the first and serves the others, so only the
whole-process line at the end pays it each time), report and baselines. Then
(unless --separate-only) all five again in one pool, as `trainwell demo` runs
its experiments. Target: total <= 198 / 5 = 40 s (aim: 20 s), and every variant's test MAE
no worse than the lesson's figure. The lesson's figures are single runs trained on 80% of the
rows (no validation split); trainwell holds 15% of those out for validation, so each network
here trains on 15% fewer rows, and a single seed's MAE moves by a few hundredths from seed
to seed: run with --seeds 3 to compare means.

    python benchmarks/bench_experiments.py [--workers N] [--seeds 1] [--no-stack] [--separate-only] [--out DIR]
        [--only schedules]   # one experiment's breakdown, then the whole-process line
        [--repeat N]         # N whole-process timings (wall, and CPU of the process tree, for a loaded machine)
        [--against SRC]      # alternate those with whole processes of another tree's src folder (PYTHONPATH)
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trainwell.experiments import compare, compare_many, preset

SEED_SECONDS = {"optimizers": 33, "batchnorm": 26, "dropout": 70, "schedules": 58, "recipe": 11}
SEED_TOTAL = 198  # all five scripts one after another (the seed README)
SEED_MAE = {
    "optimizers": {"sgd": 3.409, "sgd-momentum": 3.500, "adam": 3.533, "adamw": 3.537},
    "batchnorm": {"without": 3.475, "with": 3.673},
    "dropout": {
        "dropout=0": 4.345,
        "dropout=0.1": 3.854,
        "dropout=0.3": 3.754,
        "dropout=0.5": 3.625,
        "dropout=0.7": 4.779,
    },
    "schedules": {"none": 3.878, "step": 3.431, "cosine": 3.417, "plateau": 3.430, "onecycle": 3.425},
    "recipe": {"recipe": 3.429},
}


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished workers: unlike wall time, not inflated when
    other work shares the cores. The workers are the fork server's children, reaped by it: their
    seconds are read from its /proc entry (Linux; the server lives as long as this process)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime + fork_server_cpu()


def fork_server_cpu() -> float:
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)  # no public way to ask
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    utime, stime, children_utime, children_stime = (int(x) for x in fields[11:15])
    return (utime + stime + children_utime + children_stime) / os.sysconf("SC_CLK_TCK")


# runs a command as a child subreaper, so that the CPU seconds of every process it starts count,
# also those it leaves to be reaped (the fork server its workers come from); prints "wall cpu"
SUBREAPER = """
import ctypes, os, resource, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
started = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, capture_output=True)
wall = time.perf_counter() - started
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(wall, usage.ru_utime + usage.ru_stime)
"""


def whole_process(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds of `command` until it exits, and CPU seconds of all its processes (Linux)."""
    done = subprocess.run(
        [sys.executable, "-c", SUBREAPER, *command], check=True, capture_output=True, text=True, env=env
    )
    wall, cpu = done.stdout.split()
    return float(wall), float(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--no-stack", action="store_true", help="train every run on its own (no vectorised stacks)")
    ap.add_argument("--separate-only", action="store_true", help="skip the one-pool run of all five")
    ap.add_argument("--out", help="keep the outputs here (default: a temporary folder)")
    ap.add_argument("--only", help="run just this experiment (e.g. schedules), then the whole-process line")
    ap.add_argument("--repeat", type=int, default=1, help="whole-process timings of the schedules compare")
    ap.add_argument(
        "--against",
        metavar="SRC",
        help="another tree's src folder: each whole process alternates with one run from it (PYTHONPATH), "
        "and both medians are printed",
    )
    args = ap.parse_args()
    root = args.out or tempfile.mkdtemp(prefix="bench-experiments-")
    total, worse = 0.0, []
    cpu_start = cpu_seconds()
    lines = []
    for name in [args.only] if args.only else SEED_SECONDS:
        exp = preset(name).with_seeds(args.seeds)
        exp.stack = not args.no_stack
        out = f"{root}/{name}"
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        result = compare(exp, out, workers=args.workers, quiet=True)
        seconds = time.perf_counter() - started
        total += seconds
        t = result.timings
        setup = seconds - t.get("training", 0.0) - t.get("report", 0.0)
        print(
            f"{name:<11} {seconds:6.1f} s  (the lesson's script {SEED_SECONDS[name]} s, "
            f"{SEED_SECONDS[name] / seconds:.1f}x): "
            f"set-up {setup:.1f} s, training {t.get('training', 0):.1f} s (baselines "
            f"{t.get('baselines', 0):.1f} s meanwhile), report {t.get('report', 0):.1f} s",
            flush=True,
        )
        for row in result.summary:
            mae, ref = row["test_mae_mean"], SEED_MAE[name][row["variant"]]
            flag = "ok" if mae <= ref else "WORSE"
            if mae > ref:
                worse.append(f"{name}/{row['variant']}")
            interval = ""
            if args.seeds > 1:  # is the seed's single figure one of the values these seeds make plausible?
                lo, hi = row["test_mae_ci_low"], row["test_mae_ci_high"]
                interval = (
                    f"  95% CI [{lo:.3f}, {hi:.3f}] {'holds' if lo <= ref <= hi else 'excludes'} the lesson's figure"
                )
            lines.append(f"  {name}/{row['variant']:<14} test MAE {mae:.3f}  seed {ref:.3f}  {flag}{interval}")
    print("\n".join(lines))
    print(
        f"total       {total:6.1f} s  = {total / SEED_TOTAL:.3f} of the lessons' {SEED_TOTAL} s "
        f"({SEED_TOTAL / total:.1f}x faster); target <= {SEED_TOTAL / 5:.0f} s"
    )
    print(f"            {cpu_seconds() - cpu_start:6.1f} CPU seconds (both cores together)")
    if not args.separate_only and not args.only:
        exps = [preset(name).with_seeds(args.seeds) for name in SEED_SECONDS]
        for e in exps:
            e.stack = not args.no_stack
        shutil.rmtree(f"{root}/together", ignore_errors=True)
        started, cpu_before = time.perf_counter(), cpu_seconds()
        results = compare_many(exps, f"{root}/together", workers=args.workers, quiet=True)
        together = time.perf_counter() - started
        t = results[0].timings
        print(
            f"one pool breakdown: set-up {together - t['training'] - t['report']:.1f} s, training "
            f"{t['training']:.1f} s "
            f"(baselines {t.get('baselines', 0):.1f} s meanwhile), report {t['report']:.1f} s"
        )
        print(
            f"one pool    {together:6.1f} s  = {together / SEED_TOTAL:.3f} of the lessons' {SEED_TOTAL} s "
            f"({SEED_TOTAL / together:.1f}x faster): all five in one compare, as the demo runs them; "
            f"{cpu_seconds() - cpu_before:.1f} CPU seconds"
        )
    print(
        "every variant's test MAE no worse than the lesson's"
        if not worse
        else f"worse than the lesson's single run: {', '.join(worse)}"
    )
    whole_processes(root, args.seeds, args.repeat, args.against)
    print(f"load average {os.getloadavg()[0]:.2f} (2 cores)")
    if not args.out:
        shutil.rmtree(root, ignore_errors=True)


def whole_processes(root: str, seeds: int, repeat: int, against: str | None) -> None:
    """`repeat` whole-process timings of the schedules compare; with `against` (another tree's src
    folder) each is followed or preceded, in turn, by one of that tree's, so that drift in the
    machine's speed (here ±20% from one minute to the next) hits both alike."""
    cli = [sys.executable, "-m", "trainwell.cli", "compare", "--preset", "schedules", "--seeds", str(seeds)]
    trees = {"": None} if against is None else {"this tree: ": None, f"{against}: ": against}
    seen: dict[str, list[tuple[float, float]]] = {label: [] for label in trees}
    for i in range(repeat):
        for label in list(trees) if i % 2 == 0 else list(trees)[::-1]:
            env = None if trees[label] is None else {**os.environ, "PYTHONPATH": str(trees[label])}
            shutil.rmtree(f"{root}/cli-schedules", ignore_errors=True)
            load = os.getloadavg()[0]
            whole, tree_cpu = whole_process([*cli, "--quiet", "--out", f"{root}/cli-schedules"], env)
            seen[label].append((whole, tree_cpu))
            print(
                f"{label}`trainwell compare --preset schedules --seeds {seeds}` as a whole process: {whole:.1f} s = "
                f"{SEED_SECONDS['schedules'] / whole:.1f}x faster than the lesson's schedules script "
                f"({SEED_SECONDS['schedules']} s as recorded in shared/seeds/README.md; target >= 5x); "
                f"{tree_cpu:.1f} CPU seconds of its process tree; load average {load:.2f} before it",
                flush=True,
            )
    if against is not None and repeat:
        for label, times in seen.items():
            wall = statistics.median(w for w, _ in times)
            print(
                f"{label}median {wall:.1f} s wall ({SEED_SECONDS['schedules'] / wall:.1f}x), "
                f"{statistics.median(c for _, c in times):.1f} CPU seconds, over {len(times)} processes"
            )


if __name__ == "__main__":
    main()
