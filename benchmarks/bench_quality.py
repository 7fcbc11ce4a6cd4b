"""Quality of trainwell's default on tables, beside scikit-learn's baselines on the same splits.

The default is what `trainwell train --data FILE --target COL` runs (the `tabular` preset, the
production recipe), trained through `trainwell.train`; every table but delivery goes through
the CSV path (written to a temporary folder), so column roles, blanks and categories are
handled exactly as for a user's file. Baselines: HistGradientBoosting and a linear/logistic
model, fitted on the same training rows with the same preprocessed inputs.

Main test metric: MAE for regression (lower is better), balanced accuracy for classification
(higher is better; plain accuracy flatters a model on the 10%-minority tables). Each cell is
the mean over seeds ± the half-width of a 95% t-interval; seconds are wall seconds per run on
whatever else the machine is doing.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_quality.py [--seeds 3] [--tables delivery,wine] \
        [--set model.hidden=[256]]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from trainwell.config import DataConfig, load_config, parse_override
from trainwell.data import load_data
from trainwell.inference import load_run
from trainwell.runner import train

T95 = {
    1: 12.71,
    2: 4.30,
    3: 3.18,
    4: 2.78,
    5: 2.57,
    6: 2.45,
    7: 2.36,
    8: 2.31,
    9: 2.26,
}  # two-sided t, by degrees of freedom


# ---- tables ----------------------------------------------------------------------------------


def generated_churn(n: int = 3000, seed: int = 1) -> pd.DataFrame:
    """Text columns (plan, region), blanks in two numeric columns and one text column, 10% churn."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro", "family"], n, p=[0.4, 0.3, 0.2, 0.1])
    region = rng.choice(["north", "south", "east", "west", "centre", "islands"], n)
    tenure = rng.integers(1, 72, n).astype(float)
    monthly = rng.lognormal(3.5, 0.5, n)
    calls = rng.poisson(1.5, n).astype(float)
    score = (
        0.7 * calls
        - 0.04 * tenure
        + 0.01 * monthly
        + (plan == "basic") * 0.8
        + (region == "islands") * 0.6
        + rng.logistic(0, 1, n)
    )
    label = np.where(score >= np.quantile(score, 0.9), "churn", "stay")
    df = pd.DataFrame(
        {
            "plan": plan,
            "region": region,
            "tenure": tenure,
            "monthly": monthly.round(2),
            "support_calls": calls,
            "status": label,
        }
    )
    for col, share in (("tenure", 0.12), ("monthly", 0.05), ("region", 0.08)):
        df.loc[rng.random(n) < share, col] = np.nan
    return df


def generated_loans(n: int = 3000, seed: int = 2) -> pd.DataFrame:
    """Text columns (job, home, purpose), blanks, a skewed income with outliers, 10% default."""
    rng = np.random.default_rng(seed)
    job = rng.choice(["clerk", "engineer", "nurse", "driver", "teacher", "owner", "student", "retired"], n)
    home = rng.choice(["rent", "own", "mortgage"], n)
    purpose = rng.choice(["car", "house", "study", "travel", "debt"], n)
    income = rng.lognormal(10.5, 0.6, n)
    income[rng.random(n) < 0.01] *= 50  # a few extreme incomes
    amount = rng.uniform(1_000, 40_000, n).round(-2)
    age = rng.integers(19, 75, n).astype(float)
    ratio = amount / income
    score = (
        2.5 * ratio
        - 0.02 * age
        + (job == "student") * 0.9
        + (purpose == "debt") * 0.7
        + (home == "rent") * 0.4
        + rng.logistic(0, 1, n)
    )
    label = np.where(score >= np.quantile(score, 0.9), "default", "repaid")
    df = pd.DataFrame(
        {
            "job": job,
            "home": home,
            "purpose": purpose,
            "income": income.round(0),
            "amount": amount,
            "age": age,
            "outcome": label,
        }
    )
    for col, share in (("income", 0.1), ("age", 0.05), ("job", 0.05)):
        df.loc[rng.random(n) < share, col] = np.nan
    return df


def sklearn_table(loader: Callable[..., Any], target: str) -> pd.DataFrame:
    bunch = loader(as_frame=True)
    return bunch.frame.rename(columns={"target": target})


def tables(folder: Path) -> dict[str, dict[str, Any]]:
    """name → overrides of the `data` section (a CSV written to `folder`, or a built-in set)."""
    from sklearn import datasets

    out: dict[str, dict[str, Any]] = {"delivery": {"name": "delivery"}}
    frames = {
        "diabetes": (sklearn_table(datasets.load_diabetes, "progression"), "progression", "regression"),
        "breast-cancer": (sklearn_table(datasets.load_breast_cancer, "malignant"), "malignant", "classification"),
        "wine": (sklearn_table(datasets.load_wine, "cultivar"), "cultivar", "classification"),
        "digits": (sklearn_table(datasets.load_digits, "digit"), "digit", "classification"),
        "gen-churn": (generated_churn(), "status", "auto"),
        "gen-loans": (generated_loans(), "outcome", "auto"),
    }
    for name, (df, target, task) in frames.items():
        path = folder / f"{name}.csv"
        df.to_csv(path, index=False)
        out[name] = {"name": "csv", "path": str(path), "target": target, "task": task}
    return out


# ---- metrics ---------------------------------------------------------------------------------


def main_metric(task: str, y_true: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    if task == "regression":
        return float(np.abs(y_true - pred).mean())
    return float(balanced_accuracy_score(y_true, pred))


def network_score(run_dir: Path, bundle: Any) -> float:
    _, model, _ = load_run(run_dir)
    with torch.no_grad():
        out = model(bundle.x_test)
    if bundle.task == "regression":
        scale = lambda a: a.numpy().ravel() * bundle.target_std + bundle.target_mean  # noqa: E731
        return main_metric("regression", scale(bundle.y_test), scale(out))
    return main_metric("classification", bundle.y_test.numpy(), out.argmax(1).numpy())


def baseline_scores(bundle: Any, seed: int) -> dict[str, tuple[float, float]]:
    """{model: (metric, seconds)} on the bundle's own training and test rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression

    x_tr, x_te = bundle.x_train.numpy().astype(np.float64), bundle.x_test.numpy().astype(np.float64)
    if bundle.task == "regression":
        y_tr = bundle.y_train.numpy().ravel() * bundle.target_std + bundle.target_mean
        y_te = bundle.y_test.numpy().ravel() * bundle.target_std + bundle.target_mean
        models = {"gradient boosting": HistGradientBoostingRegressor(random_state=seed), "linear": LinearRegression()}
    else:
        y_tr, y_te = bundle.y_train.numpy(), bundle.y_test.numpy()
        models = {
            "gradient boosting": HistGradientBoostingClassifier(random_state=seed),
            "linear": LogisticRegression(max_iter=5000),
        }
    out = {}
    for name, model in models.items():
        start = time.perf_counter()
        pred = model.fit(x_tr, y_tr).predict(x_te)
        out[name] = (main_metric(bundle.task, y_te, pred), time.perf_counter() - start)
    return out


def interval(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))


# ---- the benchmark ---------------------------------------------------------------------------


def run_table(name: str, data: dict[str, Any], seeds: int, out: Path, recipe: dict[str, Any]) -> dict[str, Any]:
    with contextlib.redirect_stderr(io.StringIO()):
        bundle = load_data(DataConfig(**data))
    scores: dict[str, list[float]] = {"trainwell": [], "gradient boosting": [], "linear": []}
    seconds: dict[str, list[float]] = {k: [] for k in scores}
    for seed in range(seeds):
        overrides = recipe | {f"data.{k}": v for k, v in data.items()} | {"train.seed": seed, "name": name}
        cfg = load_config(preset="tabular", overrides=overrides)
        with contextlib.redirect_stderr(io.StringIO()):
            result = train(cfg, out=out / f"{name}-{seed}", quiet=True)
        scores["trainwell"].append(network_score(result.run_dir, bundle))
        seconds["trainwell"].append(result.metrics["wall_seconds"])
        for model, (metric, secs) in baseline_scores(bundle, seed).items():
            scores[model].append(metric)
            seconds[model].append(secs)
        print(
            f"  {name} seed {seed}: trainwell {scores['trainwell'][-1]:.4f} in {seconds['trainwell'][-1]:.1f}s",
            file=sys.stderr,
            flush=True,
        )
    return {"task": bundle.task, "scores": scores, "seconds": seconds}


def verdict(task: str, scores: dict[str, list[float]]) -> str:
    """Whether the default is no worse than the better baseline, within the default's interval."""
    lower_is_better = task == "regression"
    better = min if lower_is_better else max
    best_name = better(("gradient boosting", "linear"), key=lambda m: statistics.fmean(scores[m]))
    best = statistics.fmean(scores[best_name])
    mean, half = interval(scores["trainwell"])
    half = 0.0 if math.isnan(half) else half
    ok = (mean - half <= best) if lower_is_better else (mean + half >= best)
    return f"{'yes' if ok else 'NO'} (vs {best_name})"


def print_table(results: dict[str, dict[str, Any]]) -> None:
    cell = lambda v: "{:.4f} ± {:.4f}".format(*interval(v))  # noqa: E731
    secs = lambda v: f"{statistics.fmean(v):.1f}"  # noqa: E731
    header = (
        f"{'table':<14} {'metric':<8} {'trainwell default':>19} {'grad. boosting':>19} {'linear/logistic':>19}  "
        f"{'seconds (tw/gb/lin)':>20}  default no worse?"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        s, t = r["scores"], r["seconds"]
        metric = "MAE" if r["task"] == "regression" else "bal.acc"
        timing = f"{secs(t['trainwell'])}/{secs(t['gradient boosting'])}/{secs(t['linear'])}"
        print(
            f"{name:<14} {metric:<8} {cell(s['trainwell']):>19} {cell(s['gradient boosting']):>19} "
            f"{cell(s['linear']):>19}  {timing:>20}  {verdict(r['task'], s)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tables", help="comma-separated subset (default: all)")
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="change the default's recipe, e.g. model.hidden=[256] (repeatable)",
    )
    args = parser.parse_args()
    recipe = dict(parse_override(p) for p in args.set or [])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        available = tables(folder)
        chosen = args.tables.split(",") if args.tables else list(available)
        results = {name: run_table(name, available[name], args.seeds, folder / "runs", recipe) for name in chosen}
    print_table(results)


if __name__ == "__main__":
    main()
