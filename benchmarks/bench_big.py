"""Big tables: trainwell's default on a 300,000-row table shaped like the flights table.

Prints, on the same rows (big_table.py writes a seeded 80/20 split; each method holds out its
own validation rows from train):
(1) `trainwell train --data train.csv --target arr_delay` as a whole process, as a user runs it:
    wall seconds to the end (early stop), the seconds until the first progress line after the
    start lines, test RMSE, peak memory (the child's max RSS), the stop reason and epochs;
(2) LightGBM with early stopping: test RMSE and fit seconds, the same threads;
(3) the per-row cost of the default net at the default batch, one thread, CPU seconds of this
    process (a loaded machine inflates them far less than wall seconds; the load average is
    printed beside), for the table and for a numeric table as wide as the MLP's input, in
    ROUNDS (5) interleaved rounds in one process: trainwell's stack trains 6 epochs on 40,000
    rows; each epoch after the first is timed from one last.pt to the next, so it counts what a
    user's epoch does (the steps with dropout, the optimizer and the weight average, the
    validation pass on 2,000 rows, the checkpoint write); between epochs, off that clock, a plain
    PyTorch loop (the same model, torch.optim.AdamW, MSE, the same batch; no validation, no
    checkpoints) runs about 60,000 rows and a one-thread float32 matmul rate is measured. Each
    round's ratio is the epoch's rows/s per member over the mean of the plain stretches before and
    after it, and its share of the arithmetic limit (training FLOPs per row, 6 x the multiply-adds
    of the linear layers: 2 forward, 4 backward, over the mean of the matmul rates before and
    after it); printed as median [min-max] over the rounds.
Targets (issue 20): RMSE within 5% of LightGBM's in <= 5 minutes, peak memory <= 2 GB, progress
within 2 s of the start of training, rows/s >= 2x the plain loop and >= 40% of the limit.

    .venv/bin/python benchmarks/bench_big.py [--rows 300000] [--threads 2] [--cap 900]
        [--set train.max_epochs=2 ...]   # overrides passed to trainwell train (e.g. to cap today's default)
        [--skip train,lightgbm,rows]    # parts to leave out
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from big_table import TARGET, write_flights_like

CATEGORIES = ["carrier", "tailnum", "origin", "dest"]
CLOCK = time.process_time  # the per-row section runs one thread: CPU seconds are its work


def run_trainwell(train: Path, test: Path, threads: int, sets: list[str], cap_s: float) -> dict:
    """The CLI as a child process; stderr lines time-stamped as they arrive; SIGINT at the cap."""
    out = Path(tempfile.mkdtemp(prefix="bench-big-")) / "run"
    cmd = [sys.executable, "-m", "trainwell", "train", "--data", str(train), "--target", TARGET, "--out", str(out)]
    for s in [f"data.test_path={test}", f"train.threads={threads}", *sets]:
        cmd += ["--set", s]
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    lines: list[tuple[float, str]] = []

    def read() -> None:
        for line in child.stderr:
            lines.append((time.perf_counter() - start, line.rstrip("\n")))
            print(f"  [{lines[-1][0]:7.1f}s] {lines[-1][1][:150]}", flush=True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        child.wait(timeout=cap_s)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGINT)
        child.wait()
    wall = time.perf_counter() - start
    reader.join(timeout=5)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    metrics_path = out / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    if not metrics and (out / "best.pt").exists():  # stopped at the cap: the best weights so far, on the test rows
        shown = subprocess.run(
            [sys.executable, "-m", "trainwell", "evaluate", str(out), "--data", str(test)],
            capture_output=True,
            text=True,
        )
        metrics = {**json.loads(shown.stdout[shown.stdout.index("{") :]), "stop_reason": "the cap (best so far)"}
    return {"wall": wall, "peak_mb": peak_mb, "metrics": metrics, "lines": lines, "rc": child.returncode}


def first_progress(lines: list[tuple[float, str]]) -> tuple[float | None, float | None]:
    """(seconds at the last start line, seconds at the first progress line after it)."""
    first = next((i for i, (_, text) in enumerate(lines) if text.strip().startswith(("epoch", "step"))), None)
    if not first:
        return None, None
    return lines[first - 1][0], lines[first][0]


def lightgbm_frame(df: pd.DataFrame, categories: dict[str, pd.Index] | None) -> pd.DataFrame:
    x = df.drop(columns=[TARGET, "rownames", "year"]).copy()
    when = pd.to_datetime(x.pop("time_hour"))
    x["day_of_year"], x["day_of_week"] = when.dt.day_of_year, when.dt.day_of_week
    for c in CATEGORIES:
        known = None if categories is None else categories[c]
        x[c] = pd.Categorical(x[c] if known is None else x[c].where(x[c].isin(known)), categories=known)
    return x


def run_lightgbm(train: Path, test: Path, threads: int, seed: int = 0) -> dict:
    import lightgbm as lgb

    tr, te = pd.read_csv(train), pd.read_csv(test)
    start = time.perf_counter()
    x = lightgbm_frame(tr, None)
    x_test = lightgbm_frame(te, {c: x[c].cat.categories for c in CATEGORIES})
    is_val = np.random.default_rng(seed).random(len(x)) < 0.15  # as trainwell: 15% of train for validation
    model = lgb.LGBMRegressor(n_estimators=5000, learning_rate=0.05, num_leaves=63, n_jobs=threads, verbose=-1)
    model.fit(
        x[~is_val],
        tr[TARGET][~is_val],
        eval_X=x[is_val],
        eval_y=tr[TARGET][is_val],
        callbacks=[lgb.early_stopping(100, verbose=False)],
    )
    seconds = time.perf_counter() - start
    rmse = float(np.sqrt(np.mean((model.predict(x_test) - te[TARGET].to_numpy()) ** 2)))
    return {"rmse": rmse, "seconds": seconds, "trees": model.best_iteration_}


def matmul_rate(size: int = 1024, repeats: int = 20) -> float:
    """float32 FLOP/s of one thread on a square matmul (the best of a few tries)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(3):
        start = CLOCK()
        for _ in range(repeats):
            torch.mm(a, b)
        best = min(best, (CLOCK() - start) / repeats)
    return 2 * size**3 / best


def linear_macs(model: nn.Module) -> int:
    """Multiply-adds per row of the net's matrix products: its Linear layers, the embedding
    lookups (one per output value) and a periodic numeric embedding's per-column Linear (m → width)."""
    from trainwell.numembed import PeriodicEmbedding

    return (
        sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))
        + sum(m.embedding_dim for m in model.modules() if isinstance(m, nn.Embedding))
        + sum(m.n * m.m * m.width for m in model.modules() if isinstance(m, PeriodicEmbedding))
    )


ROUNDS = 5  # trainwell epochs measured per table, each bracketed by plain-loop stretches


@dataclasses.dataclass
class Rounds:
    """Per-row rates of one table, interleaved in this process: a plain stretch (and a matmul
    rate) before and after each timed trainwell epoch, so slow drift in the machine's load hits
    both sides of every ratio alike."""

    trainwell: list[float] = dataclasses.field(default_factory=list)  # rows/s per member, one per epoch
    plain: list[float] = dataclasses.field(default_factory=list)  # rows/s, one per stretch (ROUNDS + 1)
    matmul: list[float] = dataclasses.field(default_factory=list)  # FLOP/s, measured beside each stretch

    def ratios(self) -> list[float]:
        """Each epoch's rate over the mean of the plain stretches just before and after it."""
        return [t / ((a + b) / 2) for t, a, b in zip(self.trainwell, self.plain, self.plain[1:])]

    def of_limit(self, flops_per_row: float) -> list[float]:
        """Each epoch's rate over the matmul limit of the rates measured just before and after it."""
        return [t * flops_per_row / ((a + b) / 2) for t, a, b in zip(self.trainwell, self.matmul, self.matmul[1:])]


def plain_loop(model: nn.Module, data, batch: int, lr: float) -> Callable[[int], float]:
    """A hand-written loop: random batches by index, torch.optim.AdamW (its defaults but lr), MSE;
    no validation, no checkpoints. Returns run(steps) -> CPU seconds of that many steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    x, y, n = data.x_train, data.y_train, len(data.x_train)
    model.train()

    def run(count: int) -> float:
        start = CLOCK()
        for _ in range(count):
            idx = torch.randint(0, n, (batch,))
            opt.zero_grad()
            nn.functional.mse_loss(model(data.inputs(x[idx])), y[idx]).backward()
            opt.step()
        return CLOCK() - start

    run(5)  # warm-up: the optimizer's state and the allocator's first blocks
    return run


def trainwell_rounds(data, sets: dict, rows: int, embedding: str, plain: Callable[[int], float]) -> tuple:
    """Trainwell's stack on `rows` training rows, one thread, the whole table's default batch and
    numeric embedding (`embedding`), for ROUNDS + 1 epochs. An epoch is timed from one last.pt to
    the next, so it counts what a user's epoch does: the training steps (batching, dropout masks,
    the optimizer, the weight average), the validation pass on 2,000 rows and the checkpoint
    write. After each epoch's checkpoint (the first is a warm-up) a plain stretch and a matmul rate
    are measured outside the epoch's clock. Returns (Rounds, members, batch, engine)."""
    from trainwell.config import load_config
    from trainwell.runner import train
    from trainwell.scaling import auto_batch_size

    sub = dataclasses.replace(data, x_train=data.x_train[:rows], y_train=data.y_train[:rows])
    sub.x_val, sub.y_val = data.x_val[:2000], data.y_val[:2000]
    overrides = {
        "train.batch_size": auto_batch_size(len(data.x_train)),  # the whole table's default batch
        **sets,
        "model.numeric_embedding": embedding,  # resolved from sets by the caller; the numeric twin's is none
        "train.val_every": 1.0,
        "train.max_epochs": ROUNDS + 1,
        "train.early_stopping": False,
        "train.restore_best": False,
        "train.threads": 1,
        "train.curves": False,
        "train.checkpoint_seconds": 0.0,  # a checkpoint at every epoch end: the epoch's clock (the preset's is 10 s)
    }
    cfg = load_config(preset="tabular", overrides=overrides)
    batch, seen = cfg.train.batch_size, Rounds()
    steps = max(30, 60_000 // batch)  # about 60,000 rows a stretch: 1.5-3 s, near an epoch's 2-5 s
    resumed: list[float] = []  # when each epoch's clock started again after the plain stretch

    def emit(event: str, **payload: object) -> None:
        if event != "checkpoint" or payload.get("step") != 0:
            return
        if resumed:
            seen.trainwell.append(cfg.train.members * rows / (CLOCK() - resumed[-1]))
        seen.plain.append(steps * batch / plain(steps))
        seen.matmul.append(matmul_rate(repeats=5))
        resumed.append(CLOCK())

    with tempfile.TemporaryDirectory() as tmp:
        result = train(cfg, out=f"{tmp}/run", quiet=True, emit=emit, data=sub)
    return seen, cfg.train.members, batch, result.metrics["engine"]


def spread(values: list[float], fmt: str) -> str:
    """median [min-max] of a few values."""
    return f"{format(float(np.median(values)), fmt)} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def numeric_twin(data, width: int):
    """The same rows as a numeric table of the model's input width (no embedded codes): the
    network trainwell builds for it is the default net without its embedding tables."""
    g = torch.Generator().manual_seed(0)
    x = {k: torch.randn(len(getattr(data, k)), width, generator=g) for k in ("x_train", "x_val", "x_test")}
    twin = dataclasses.replace(data, **x, input_shape=(width,), spec={}, prepare=None)
    return twin


def rows_per_second(train: Path, sets: dict, rows: int) -> None:
    from trainwell.config import load_config
    from trainwell.data import load_data
    from trainwell.data.preprocess import numeric_columns
    from trainwell.models import build_model
    from trainwell.scaling import auto_batch_size, auto_numeric_embedding

    torch.set_num_threads(1)
    cfg = load_config(preset="tabular", overrides={"data.name": "csv", "data.path": str(train), "data.target": TARGET})
    data = load_data(cfg.data)
    # "auto" as train() resolves it for the whole table (periodic on 300k rows), not for the `rows` measured on
    embedding = auto_numeric_embedding(str(sets.get("model.numeric_embedding", "auto")), len(data.x_train))
    cfg.model.numeric_embedding = embedding
    numeric = numeric_columns(data.spec)  # the columns a numeric embedding reads, as build.build_models passes them
    net = build_model(
        cfg.model, data.input_shape, data.n_outputs, data.default_model, data.spec.get("embedded"), numeric
    )
    width = next(m for m in net.modules() if isinstance(m, nn.Linear)).in_features
    rate = matmul_rate()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"per-row cost, 1 thread, CPU seconds (load average {load}); one-thread float32 matmul rate "
        f"{rate / 1e9:.1f} GFLOP/s"
    )
    print(f"  numeric embedding: {embedding} (the default for the whole table's {len(data.x_train):,} training rows)")
    for label, table, embeds in (
        ("the table (embeddings)", data, embedding),
        (f"a numeric table {width} wide", numeric_twin(data, width), "none"),  # the MLP behind the embeddings
    ):
        torch.manual_seed(0)
        embedded, numeric = table.spec.get("embedded"), numeric_columns(table.spec)
        net_cfg = dataclasses.replace(cfg.model, numeric_embedding=embeds)
        net = build_model(net_cfg, table.input_shape, table.n_outputs, "mlp", embedded, numeric)
        batch = int(sets.get("train.batch_size", auto_batch_size(len(data.x_train))))
        seen, members, batch, engine = trainwell_rounds(table, sets, rows, embeds, plain_loop(net, table, batch, 1e-3))
        flops = 6 * linear_macs(net)
        print(
            f"  {label}, batch {batch}, {engine} path, {members} members, median [min-max] of {ROUNDS} rounds:\n"
            f"    trainwell {spread(seen.trainwell, ',.0f')} rows/s per member; "
            f"plain loop {spread(seen.plain, ',.0f')}; matmul {spread([r / 1e9 for r in seen.matmul], '.0f')} GFLOP/s\n"
            f"    ratio {spread(seen.ratios(), '.2f')}x (target >= 2x); "
            f"of the matmul limit ({linear_macs(net):,} multiply-adds/row) {spread(seen.of_limit(flops), '.0%')} "
            "(target >= 40%)",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300_000)
    # one thread each by default: on a shared machine two OpenMP threads can run 20x slower than one
    # (LightGBM on 20,000 rows: 3.5 s with one thread, 78 s with two, load average 8 on 2 cores)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cap", type=float, default=900.0, help="seconds before trainwell is interrupted")
    ap.add_argument("--set", action="append", default=[], help="SECTION.FIELD=VALUE for trainwell train")
    ap.add_argument("--skip", default="", help="comma-separated: train, lightgbm, rows")
    ap.add_argument("--rate-rows", type=int, default=40_000, help="training rows for the rows/s measurement")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    train, test = write_flights_like(args.rows)
    print(f"table: {train} and {test} ({args.rows:,} rows in all)", flush=True)
    if "train" not in skip:
        r = run_trainwell(train, test, args.threads, args.set, args.cap)
        began, shown = first_progress(r["lines"])
        m = r["metrics"]
        print(f"trainwell  wall {r['wall']:.1f} s (exit {r['rc']})  peak memory {r['peak_mb']:.0f} MB")
        print(
            f"           test RMSE {m.get('test_rmse', float('nan')):.3f}  stop {m.get('stop_reason')}  "
            f"epochs {m.get('epochs_run')}  training {m.get('wall_seconds', float('nan')):.1f} s  engine "
            f"{m.get('engine')}"
        )
        if began is not None and shown is not None:
            print(f"           first progress line {shown - began:.1f} s after the start lines")
    if "lightgbm" not in skip:
        g = run_lightgbm(train, test, args.threads)
        print(
            f"LightGBM   test RMSE {g['rmse']:.3f}  fit {g['seconds']:.1f} s  ({g['trees']} trees, "
            f"{args.threads} threads)"
        )
    if "rows" not in skip:
        sets = dict(s.split("=", 1) for s in args.set)
        rows_per_second(train, {k: _value(v) for k, v in sets.items()}, args.rate_rows)


def _value(text: str) -> object:
    import yaml

    return yaml.safe_load(text)


if __name__ == "__main__":
    main()
