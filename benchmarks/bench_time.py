"""The default's CPU time against RealMLP-TD's on the same rows, measured in interleaved rounds.

One fit's time moves by ±15-25% from run to run on a shared machine, more than the margins the
time target is judged by (the issue "good on real data": the default's time at most a third of
RealMLP-TD's on each table). So each table is fitted `--rounds` times by each method in one
process, the methods alternating (round 0: trainwell first, round 1: RealMLP-TD first, ...), and
the ratio is read from the medians of CPU seconds; the per-round ratios and the machine's load
average before and after are printed beside them. Rows, splits and settings are bench_tables.py's.
`--before KEY=VALUE` adds a third fit to every round, trainwell with those settings (an earlier
default), so a change's gain is measured side by side in the same rounds.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_time.py --tables signal,hpc_data --rounds 3 \\
        [--before train.max_steps=null]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/torch start their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from bench_tables import classes_of, fit_one, table_files  # noqa: E402
from tables import LOADERS, MAX_TEST, MAX_TRAIN, load_table, split  # noqa: E402
from trainwell.config import parse_override  # noqa: E402

TARGET = 1 / 3  # the default's CPU time over RealMLP-TD's, at most
Fits = dict[str, tuple[str, dict[str, Any]]]  # label -> (bench_tables method, trainwell's overrides)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def time_table(name: str, rounds: int, caps: tuple[int, int], fits: Fits) -> dict[str, Any]:
    """Each fit `rounds` times on the table's rows, in reversed order every other round."""
    table = load_table(name)
    train, test = split(table, *caps)
    classes = classes_of(table, train)
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in fits}
    with table_files(train, test) as folder:
        for r in range(rounds):
            for label in list(fits) if r % 2 == 0 else list(fits)[::-1]:
                method, overrides = fits[label]
                ctx = {"classes": classes, "overrides": overrides, "dials": None}
                run = fit_one(method, table, (train, test), folder, 0, ctx) | {"load": load_average()}
                runs[label].append(run)
                print(
                    f"  {name} round {r} {label}: {run['cpu_seconds']:.1f} CPU s, load {run['load']}", file=sys.stderr
                )
    return {"rows": [len(train), len(test)], "runs": runs, **ratio_of(runs)}


def ratio_of(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Median CPU seconds per fit; each trainwell fit's ratio of medians to RealMLP-TD's and its
    ratio in each round."""
    cpu = {label: [r["cpu_seconds"] for r in fits] for label, fits in runs.items()}
    medians = {label: statistics.median(v) for label, v in cpu.items()}
    mine = [label for label in runs if label != "realmlp"]
    return {
        "median_cpu_seconds": medians,
        "ratio_of_medians": {label: medians[label] / medians["realmlp"] for label in mine},
        "round_ratios": {label: [a / b for a, b in zip(cpu[label], cpu["realmlp"])] for label in mine},
    }


def print_results(results: dict[str, dict[str, Any]], settings: dict[str, Any]) -> None:
    print(f"{'table':<17}{'fit':<11}{'CPU s (median)':>15}{'÷ RealMLP-TD':>14}  per round")
    for name, r in results.items():
        for label, median in r["median_cpu_seconds"].items():
            ratio = r["ratio_of_medians"].get(label)
            rounds = ", ".join(f"{x:.2f}" for x in r["round_ratios"].get(label, []))
            print(f"{name:<17}{label:<11}{median:>15.1f}{'' if ratio is None else f'{ratio:.2f}':>14}  {rounds}")
    worst = max(r["ratio_of_medians"]["trainwell"] for r in results.values())
    print(
        f"worst ratio of medians {worst:.2f} (target <= {TARGET:.2f}); load {settings['load_before']} -> "
        f"{settings['load_after']}"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tables", default="signal,hpc_data", help=f"comma-separated subset of: {', '.join(LOADERS)}")
    p.add_argument("--rounds", type=int, default=3, help="fits per method and table, alternating (default 3)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change trainwell's recipe")
    p.add_argument("--before", action="append", default=[], metavar="KEY=VALUE", help="also time these settings")
    p.add_argument("--max-train", type=int, default=MAX_TRAIN)
    p.add_argument("--max-test", type=int, default=MAX_TEST)
    p.add_argument("--out", default=None, help="where the figures are written (JSON)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    names = [n.strip() for n in args.tables.split(",") if n.strip()]
    unknown = [n for n in names if n not in LOADERS]
    if unknown or args.rounds < 1:
        p.error(f"unknown table {unknown[0]!r}; choose from {', '.join(LOADERS)}" if unknown else "--rounds >= 1")
    fits: Fits = {"trainwell": ("trainwell", dict(parse_override(s) for s in args.set)), "realmlp": ("realmlp", {})}
    if args.before:
        fits["before"] = ("trainwell", dict(parse_override(s) for s in args.set + args.before))
    settings = vars(args) | {"load_before": load_average()}
    results = {n: time_table(n, args.rounds, (args.max_train, args.max_test), fits) for n in names}
    settings["load_after"] = load_average()
    print_results(results, settings)
    if args.out:
        Path(args.out).write_text(json.dumps({"settings": settings, "tables": results}, indent=1))


if __name__ == "__main__":
    main()
