"""Whole-process wall time: `trainwell train --preset delivery-production --seed 42 --quiet`
against the tabular lesson's production script run as a process of its own.

The reference below is our own rewrite of what that script does, step for step: generate the
3,000 delivery rows, split 80/20 and then 85/15 with scikit-learn, standardise, build the
128-64-32 BatchNorm/Dropout MLP, AdamW 1e-3 with weight decay 0.01 through torch.optim,
ReduceLROnPlateau(patience 10, factor 0.5), a DataLoader of batch 64, early stopping with
patience 20 on the validation loss keeping a deep copy of the best weights, then the test MAE
with scikit-learn. Both processes run one after the other, alternating, several rounds; the
ratio is of medians. Target: trainwell at least 2x faster as a whole process.

    .venv/bin/python benchmarks/bench_process.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REFERENCE = r"""
import copy
import numpy as np
import torch
import torch.nn as nn
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import train_test_split

np.random.seed(42)
torch.manual_seed(42)
n = 3000
distance = np.abs(np.random.normal(4.0, 2.0, n)).clip(0.5, 15)
traffic = np.random.randint(1, 11, n).astype(float)
prep = np.abs(np.random.normal(15, 5, n)).clip(5, 35)
value = np.abs(np.random.normal(350, 150, n)).clip(50, 1200)
minutes = (8.6 + 7.3 * distance + 0.8 * prep + 1.5 * traffic + np.random.normal(0, 4, n)).clip(10, 120)
X, y = np.column_stack([distance, traffic, prep, value]), minutes.reshape(-1, 1)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=42)
X_fit, X_val, y_fit, y_val = train_test_split(X_tr, y_tr, test_size=0.15, random_state=42)
xm, xs = X_fit.mean(0), X_fit.std(0) + 1e-8
ym, ys = y_fit.mean(), y_fit.std() + 1e-8
tx = lambda a: torch.tensor((a - xm) / xs, dtype=torch.float32)
ty = lambda a: torch.tensor((a - ym) / ys, dtype=torch.float32)
layers, width = [], 4
for h in (128, 64, 32):
    layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(0.2)]
    width = h
model = nn.Sequential(*layers, nn.Linear(width, 1))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", patience=10, factor=0.5)
loss_fn = nn.MSELoss()
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(tx(X_fit), ty(y_fit)), batch_size=64, shuffle=True)
best, best_state, bad = float("inf"), copy.deepcopy(model.state_dict()), 0
for epoch in range(200):
    model.train()
    for xb, yb in loader:
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        loss_fn(model(tx(X_fit)), ty(y_fit)).item()
        val = loss_fn(model(tx(X_val)), ty(y_val)).item()
    sched.step(val)
    if val < best:
        best, best_state, bad = val, copy.deepcopy(model.state_dict()), 0
    else:
        bad += 1
        if bad >= 20:
            break
model.load_state_dict(best_state)
model.eval()
with torch.no_grad():
    pred = model(tx(X_te)).numpy() * ys + ym
print(f"test MAE {mean_absolute_error(y_te, pred):.3f} after {epoch + 1} epochs")
"""


def timed(cmd: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    trainwell = str(Path(sys.executable).with_name("trainwell"))
    ref_times, tw_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "reference_production.py"
        script.write_text(REFERENCE)
        for r in range(args.rounds):
            t_ref, ref_out = timed([sys.executable, str(script)])
            out = Path(tmp) / f"run{r}"
            t_tw, _ = timed(
                [trainwell, "train", "--preset", "delivery-production", "--seed", "42", "--quiet", "--out", str(out)]
            )
            ref_times.append(t_ref)
            tw_times.append(t_tw)
            mae = __import__("json").loads((out / "metrics.json").read_text())["test_mae"]
            print(
                f"round {r + 1}: reference {t_ref:.2f} s ({ref_out}), trainwell {t_tw:.2f} s (test MAE {mae:.3f})",
                flush=True,
            )
    ref_s, tw_s = statistics.median(ref_times), statistics.median(tw_times)
    print(f"reference process : {ref_s:6.2f} s (median of {args.rounds})")
    print(f"trainwell process : {tw_s:6.2f} s (median of {args.rounds})")
    print(
        f"speed-up          : {ref_s / tw_s:.2f}x as whole processes (target >= 2x); load average "
        f"{os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
