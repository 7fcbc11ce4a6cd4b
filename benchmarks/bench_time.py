"""The default's CPU time against RealMLP-TD's on the same rows, measured in interleaved rounds.

One fit's time moves by ±15-25% from run to run on a shared machine, more than the margins the
time target is judged by (the issue "good on real data": the default's time at most a third of
RealMLP-TD's on each table). So each table is fitted `--rounds` times by each method in one
process, the methods alternating (round 0: trainwell first, round 1: RealMLP-TD first, ...), and
the ratio is read from the medians of CPU seconds; the per-round ratios and the machine's load
average before and after are printed beside them. Rows, splits and settings are bench_tables.py's.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_time.py --tables signal,hpc_data --rounds 3
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/torch start their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from bench_tables import fit_one  # noqa: E402
from tables import LOADERS, MAX_TEST, MAX_TRAIN, load_table, split  # noqa: E402
from trainwell.config import parse_override  # noqa: E402

METHODS = ("trainwell", "realmlp")
TARGET = 1 / 3  # the default's CPU time over RealMLP-TD's, at most


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def time_table(name: str, rounds: int, caps: tuple[int, int], overrides: dict[str, Any]) -> dict[str, Any]:
    """Each method `rounds` times on the table's rows, alternating which goes first."""
    table = load_table(name)
    train, test = split(table, *caps)
    classes = sorted(train[table.target].unique()) if table.task == "classification" else []
    ctx = {"classes": classes, "overrides": overrides, "dials": None}
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train.to_csv(folder / "train.csv", index=False)
        test.to_csv(folder / "test.csv", index=False)
        for r in range(rounds):
            for method in METHODS if r % 2 == 0 else METHODS[::-1]:
                run = fit_one(method, table, (train, test), folder, 0, ctx) | {"load": load_average()}
                runs[method].append(run)
                print(
                    f"  {name} round {r} {method}: {run['cpu_seconds']:.1f} CPU s, load {run['load']}", file=sys.stderr
                )
    return {"rows": [len(train), len(test)], "runs": runs, **ratio_of(runs)}


def ratio_of(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Median CPU seconds per method, their ratio, and each round's own ratio."""
    cpu = {m: [r["cpu_seconds"] for r in runs[m]] for m in METHODS}
    medians = {m: statistics.median(v) for m, v in cpu.items()}
    return {
        "median_cpu_seconds": medians,
        "ratio_of_medians": medians["trainwell"] / medians["realmlp"],
        "round_ratios": [a / b for a, b in zip(cpu["trainwell"], cpu["realmlp"])],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tables", default="signal,hpc_data", help=f"comma-separated subset of: {', '.join(LOADERS)}")
    p.add_argument("--rounds", type=int, default=3, help="fits per method and table, alternating (default 3)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change trainwell's recipe")
    p.add_argument("--max-train", type=int, default=MAX_TRAIN)
    p.add_argument("--max-test", type=int, default=MAX_TEST)
    p.add_argument("--out", default=None, help="where the figures are written (JSON)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    names = [n.strip() for n in args.tables.split(",") if n.strip()]
    unknown = [n for n in names if n not in LOADERS]
    if unknown or args.rounds < 1:
        p.error(f"unknown table {unknown[0]!r}; choose from {', '.join(LOADERS)}" if unknown else "--rounds >= 1")
    settings = vars(args) | {"load_before": load_average()}
    results = {
        n: time_table(n, args.rounds, (args.max_train, args.max_test), dict(parse_override(s) for s in args.set))
        for n in names
    }
    settings["load_after"] = load_average()
    print(f"{'table':<17}{'trainwell CPU s':>16}{'RealMLP-TD CPU s':>18}{'ratio':>8}  per round")
    for name, r in results.items():
        med = r["median_cpu_seconds"]
        rounds = ", ".join(f"{x:.2f}" for x in r["round_ratios"])
        print(f"{name:<17}{med['trainwell']:>16.1f}{med['realmlp']:>18.1f}{r['ratio_of_medians']:>8.2f}  {rounds}")
    worst = max(r["ratio_of_medians"] for r in results.values())
    print(
        f"worst ratio of medians {worst:.2f} (target <= {TARGET:.2f}); load {settings['load_before']} -> "
        f"{settings['load_after']}"
    )
    if args.out:
        Path(args.out).write_text(json.dumps({"settings": settings, "tables": results}, indent=1))


if __name__ == "__main__":
    main()
