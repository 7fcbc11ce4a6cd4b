"""What a many-level text column costs per epoch, beside an all-numeric table of the same width.

Two generated tables of 10,000 rows train with the `tabular` preset for a fixed number of
epochs (no early stopping), one thread: (a) 10 numbers and a 300-level text column, which
trainwell embeds (39 wide: the MLP sees 49 inputs); (b) 49 numbers. Target: (a) costs at most
2× what (b) costs per epoch, and both train on the vectorised path (`engine` in metrics.json).
CPU seconds are reported because wall seconds follow whatever else the machine is doing.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_embeddings.py [--rows 10000] [--epochs 4]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trainwell.config import load_config
from trainwell.runner import train


def tables(rows: int, levels: int, numbers: int, wide: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    shop = rng.integers(0, levels, rows)
    effect = rng.normal(0, 1, levels)
    x = rng.normal(0, 1, (rows, wide))
    y = x[:, :numbers].sum(1) * 0.3 + effect[shop] + rng.normal(0, 0.5, rows)
    embedded = pd.DataFrame(x[:, :numbers], columns=[f"x{i}" for i in range(numbers)]).assign(
        shop=[f"shop{s}" for s in shop], y=y
    )
    numeric = pd.DataFrame(x, columns=[f"x{i}" for i in range(wide)]).assign(y=y)
    return {"300-level text column": embedded, "all numeric": numeric}


def cost(frame: pd.DataFrame, folder: Path, name: str, epochs: int) -> dict[str, float | str]:
    path = folder / f"{name.replace(' ', '-')}.csv"
    frame.to_csv(path, index=False)
    overrides = {
        "data.name": "csv",
        "data.path": str(path),
        "data.target": "y",
        "train.max_epochs": epochs,
        "train.early_stopping": False,
        "train.threads": 1,
        "train.quiet": True,
    }
    cfg = load_config(preset="tabular", overrides=overrides)
    start = time.process_time()
    with contextlib.redirect_stderr(io.StringIO()):
        result = train(cfg, out=folder / f"run-{path.stem}")
    return {
        "cpu_per_epoch": (time.process_time() - start) / epochs,
        "wall_per_epoch": result.metrics["wall_seconds"] / result.metrics["members"] / epochs,
        "engine": result.metrics["engine"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        frames = tables(args.rows, levels=300, numbers=10, wide=49)
        results = {name: cost(frame, Path(tmp), name, args.epochs) for name, frame in frames.items()}
    for name, r in results.items():
        print(
            f"{name:<24} {r['cpu_per_epoch']:6.2f} CPU s/epoch ({r['wall_per_epoch']:.2f} wall s per member), "
            f"{r['engine']} path"
        )
    ratio = results["300-level text column"]["cpu_per_epoch"] / results["all numeric"]["cpu_per_epoch"]
    print(f"text column / all numeric: {ratio:.2f}x per epoch (target: at most 2x)")


if __name__ == "__main__":
    main()
