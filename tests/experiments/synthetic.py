"""Synthetic ExperimentResults built from numbers alone: rows as results.csv holds them, the
summary computed from those rows, and made-up histories, so report tests need no training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainwell.experiments.report import ExperimentResult, summary_rows
from trainwell.experiments.spec import Experiment


def result_from(
    out: Path,
    values: dict[str, list[float | None]],
    metric: str = "test_mae",
    baselines: list[dict[str, Any]] | None = None,
    name: str = "toy",
    reference: str | None = None,
) -> ExperimentResult:
    """One row per (variant, seed); a value of None is a run the compare never finished."""
    seeds = max(len(v) for v in values.values())
    exp = Experiment(name, {}, {v: {} for v in values}, list(range(seeds)), reference or next(iter(values)))
    rows = []
    for variant, xs in values.items():
        for seed, x in enumerate(xs):
            row: dict[str, Any] = {
                "experiment": name,
                "variant": variant,
                "seed": seed,
                "status": "ok" if x is not None else "interrupted",
            }
            # extra metrics as newer engines write them: the report must use the main one and ignore the rest
            row.update(
                {
                    metric: x,
                    "test_rmse": None if x is None else 1.3 * x,
                    "test_r2": 0.5,
                    "test_loss": x,
                    "epochs": 10,
                    "best_epoch": 7,
                }
            )
            row.update(
                stop_reason="max_epochs",
                wall_seconds=1.5,
                engine="single",
                error="" if x is not None else "not run",
                run_dir=f"runs/{variant}/seed-{seed}",
            )
            rows.append(row)
    result = ExperimentResult(exp, out, rows, metric, complete=all(r["status"] == "ok" for r in rows))
    result.summary = summary_rows(exp, rows, metric)
    result.baselines = list(baselines or [])
    return result


def add_histories(result: ExperimentResult, epochs: dict[str, int], lr_decay: bool = True) -> None:
    """Falling validation curves, one per finished run; `epochs` per variant (a long one to test the cut)."""
    for r in result.rows:
        if r["status"] != "ok":
            continue
        n, final = epochs.get(r["variant"], 20), float(r[result.metric])
        result.histories[(r["variant"], r["seed"])] = [
            {
                "epoch": e,
                "train_loss": 1.0 / e,
                "val_loss": 1.0 / e + 0.1,
                "val_mae": final * (1 + 2.0 / e) + 0.01 * r["seed"],
                "lr": 1e-2 * (0.95**e if lr_decay else 1.0),
                "grad_norm_mean": 1.0,
            }
            for e in range(1, n + 1)
        ]
