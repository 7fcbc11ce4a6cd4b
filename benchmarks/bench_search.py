"""`--search N` against the default on a few tables: test score and wall time.

For each table the search trains the default run (the `tabular` preset, what `trainwell train
--data FILE --target COL` runs) and N configurations around it, then keeps an ensemble chosen on
the validation rows (selection.py). Printed per table: the default's and the ensemble's test
metric (MAE for regression, accuracy for classification), the best single configuration's, the
training-time ratio of the search to the default run (summed member seconds, from the search's
report), and the wall and CPU seconds of `trainwell.search` (which trains the default run too)
beside those of `trainwell.train` with the default, both in this process.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_search.py [--trials 32] [--tables delivery,digits]

Besides delivery and scikit-learn's digits, breast_cancer and diabetes, any table of
benchmarks/tables.py (bench_tables.py's) may be named, e.g. --tables attrition,males.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

torch.set_num_threads(1)  # the machine's cores are shared: one thread per benchmark process


def table_config(name: str, folder: Path, max_train: int | None = None) -> dict[str, Any]:
    """The raw config `trainwell train --data` would build for this table (the tabular preset)."""
    from trainwell.presets import PRESETS

    raw = PRESETS.get("tabular")()
    raw["name"] = name
    if name == "delivery":
        raw["data"] = {"name": "delivery", "n": 5000}
        return raw
    if name not in SKLEARN_TABLES:
        return real_table_config(raw, name, folder, max_train)
    from sklearn import datasets

    loaders = {
        "digits": (datasets.load_digits, "classification"),
        "breast_cancer": (datasets.load_breast_cancer, "classification"),
        "diabetes": (datasets.load_diabetes, "regression"),
    }
    loader, task = loaders[name]
    frame = loader(as_frame=True).frame
    if task == "classification":
        frame["target"] = "c" + frame["target"].astype(str)
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    raw["data"] = {"name": "csv", "path": str(path), "target": "target", "task": task}
    return raw


SKLEARN_TABLES = ("digits", "breast_cancer", "diabetes")


def real_table_config(raw: dict[str, Any], name: str, folder: Path, max_train: int | None) -> dict[str, Any]:
    """A table of benchmarks/tables.py (bench_tables.py's public tables; `pip install 'trainwell[bench]'`),
    with its fixed train/test split written as two CSV files."""
    import tables  # benchmarks/tables.py, beside this script

    table = tables.load_table(name)
    train, test = tables.split(table, max_train or tables.MAX_TRAIN, tables.MAX_TEST)
    paths = folder / f"{name}-train.csv", folder / f"{name}-test.csv"
    train.to_csv(paths[0], index=False)
    test.to_csv(paths[1], index=False)
    raw["data"] = {"name": "csv", "path": str(paths[0]), "test_path": str(paths[1]), "target": table.target}
    raw["data"]["task"] = table.task
    return raw


def one_table(
    name: str, trials: int, folder: Path, dials: list[str] | None = None, max_train: int | None = None
) -> dict[str, Any]:
    import trainwell
    from trainwell.config import RunConfig

    cfg = RunConfig.from_dict(table_config(name, folder, max_train))
    cfg.train.quiet = True
    default_wall, default_cpu, _ = timed(lambda: trainwell.train(cfg, out=folder / f"{name}-default"))
    wall, cpu, result = timed(lambda: trainwell.search(cfg, trials, out=folder / f"{name}-search", dials=dials))
    s = result.summary
    return {
        "table": name,
        "metric": s["main_metric"],
        "default": s["default_test"],
        "search": s["ensemble_test"],
        "best_single": s["single_test"],
        "members": s["ensemble_size"],
        "stacks": s["stacks"],
        "cost_ratio": s["cost_ratio"],
        "default_wall": default_wall,
        "search_wall": wall,
        "default_cpu": default_cpu,
        "search_cpu": cpu,
    }


def timed(fn: Any) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result): CPU seconds hold up better than wall
    seconds when other processes share the cores."""
    import resource

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    wall0, cpu0 = time.perf_counter(), cpu()
    result = fn()
    return time.perf_counter() - wall0, cpu() - cpu0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--tables", default="delivery,digits,breast_cancer,diabetes")
    parser.add_argument("--dials", help="comma-separated dials to vary (default: the search's own)")
    parser.add_argument("--max-train", type=int, help="cap on a public table's training rows (bench_tables')")
    args = parser.parse_args()
    dials = args.dials.split(",") if args.dials else None
    with tempfile.TemporaryDirectory() as tmp:
        print(
            "| table | metric | default | search | best single | members | stacks | training-time ratio "
            "| wall s default / search (ratio) | CPU s default / search (ratio) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name in args.tables.split(","):
            r = one_table(name, args.trials, Path(tmp), dials, args.max_train)
            print(
                f"| {r['table']} | {r['metric']} | {r['default']:.4f} | {r['search']:.4f} | {r['best_single']:.4f} | "
                f"{r['members']} | {r['stacks']} | {r['cost_ratio']:.2f} | {r['default_wall']:.1f} / "
                f"{r['search_wall']:.1f} "
                f"({r['search_wall'] / r['default_wall']:.1f}×) | {r['default_cpu']:.1f} / {r['search_cpu']:.1f} "
                f"({r['search_cpu'] / r['default_cpu']:.1f}×) |",
                flush=True,
            )


if __name__ == "__main__":
    main()
