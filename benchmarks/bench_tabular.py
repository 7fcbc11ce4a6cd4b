"""Seconds per epoch: the tabular lesson's hand-written loop against trainwell, same data and recipe.

(a) reference: the tabular lesson's production loop as it is written — a DataLoader over a
    TensorDataset (batch 64, shuffle), AdamW, ReduceLROnPlateau, and after each epoch the
    train and validation losses in eval mode; torch's default thread count.
(b) trainwell: delivery-production with early stopping off, so both run the same epochs;
    an epoch is timed from one epoch's last.pt to the next, so checkpoint writes count.

Both run in this one process, alternating, and the ratio is of medians over the rounds.
Target: trainwell at least 3x faster per epoch, with a test MAE no worse.

    .venv/bin/python benchmarks/bench_tabular.py [--epochs 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch import nn

from trainwell.config import load_config
from trainwell.data import load_data
from trainwell.runner import train


def reference_epochs(epochs: int, seed: int, threads: int) -> tuple[float, float]:
    """(seconds per epoch, test MAE of the last weights) for the seed-style loop."""
    torch.set_num_threads(threads)
    cfg = load_config(preset="delivery-production")
    data = load_data(cfg.data)
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    dims = [4, 128, 64, 32]
    for a, b in zip(dims, dims[1:]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU(), nn.Dropout(0.2)]
    model = nn.Sequential(*layers, nn.Linear(32, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", patience=10, factor=0.5)
    loss_fn = nn.MSELoss()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data.x_train, data.y_train), batch_size=64, shuffle=True
    )
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            loss_fn(model(data.x_train), data.y_train).item()
            val = loss_fn(model(data.x_val), data.y_val).item()
        sched.step(val)
    per_epoch = (time.perf_counter() - start) / epochs
    with torch.no_grad():
        mae = (model(data.x_test) - data.y_test).abs().mean().item() * data.target_std
    return per_epoch, mae


def trainwell_epochs(epochs: int, seed: int) -> tuple[float, float]:
    overrides = {
        "train.seed": seed,
        "train.max_epochs": epochs,
        "train.early_stopping": False,
        "train.restore_best": False,
    }
    cfg = load_config(preset="delivery-production", overrides=overrides)
    stamps: list[float] = []  # when each epoch's last.pt was written: epochs timed with their checkpoint I/O

    def emit(event: str, **payload: object) -> None:
        if event == "checkpoint" and payload["step"] == 0:
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        result = train(cfg, out=f"{tmp}/run", quiet=True, emit=emit)
    per_epoch = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    return per_epoch, result.metrics["test_mae"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    default_threads = torch.get_num_threads()
    ref, tw = [], []
    for r in range(args.rounds):
        ref.append(reference_epochs(args.epochs, seed=r, threads=default_threads))
        tw.append(trainwell_epochs(args.epochs, seed=r))
        print(
            f"round {r + 1}: reference {ref[-1][0] * 1e3:.1f} ms/epoch (MAE {ref[-1][1]:.3f}), trainwell "
            f"{tw[-1][0] * 1e3:.1f} ms/epoch (MAE {tw[-1][1]:.3f})",
            flush=True,
        )
    ref_s = statistics.median(s for s, _ in ref)
    tw_s = statistics.median(s for s, _ in tw)
    print(
        f"reference loop : {ref_s * 1e3:7.1f} ms/epoch  test MAE {statistics.mean(m for _, m in ref):.3f} "
        f"(mean of {args.rounds})"
    )
    print(
        f"trainwell      : {tw_s * 1e3:7.1f} ms/epoch  test MAE {statistics.mean(m for _, m in tw):.3f} (mean "
        f"of {args.rounds})"
    )
    print(f"speed-up       : {ref_s / tw_s:.2f}x per epoch (target >= 3x)")


if __name__ == "__main__":
    main()
