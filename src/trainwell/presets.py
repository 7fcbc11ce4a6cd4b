"""Named configs. Each preset is a function returning a raw config dict (fields that differ
from the defaults in config.py only), so every default still lives in one place."""

from __future__ import annotations

from typing import Any

from . import image_presets  # noqa: F401  (registers the image presets)
from .preset_registry import DESCRIPTIONS, PRESETS, describe, preset


@preset(
    "delivery-production",
    "the tabular lesson's production recipe on delivery: AdamW, BatchNorm, Dropout 0.2, plateau, early stopping",
)
def delivery_production() -> dict[str, Any]:
    return {
        "name": "delivery-production",
        "data": {"name": "delivery", "n": 3000},
        "model": {"kind": "mlp", "hidden": [128, 64, 32], "norm": "batch", "dropout": 0.2},
        "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01},
        "schedule": {"name": "plateau", "patience": 10, "factor": 0.5},
        # ema_decay is trainwell's addition to the tabular lesson's recipe: evaluating a moving average of
        # the weights lowers test MAE by ~0.035 minutes over seeds (see the closing note of the core issue)
        "train": {
            "batch_size": 64,
            "max_epochs": 200,
            "early_stopping": True,
            "patience": 20,
            "monitor": "val_loss",
            "ema_decay": 0.99,
        },
    }


@preset("delivery-quick", "a few-second run on delivery: the production recipe for at most 30 epochs")
def delivery_quick() -> dict[str, Any]:
    cfg = delivery_production()
    cfg["name"] = "delivery-quick"
    cfg["train"] = {**cfg["train"], "max_epochs": 30, "patience": 8}
    return cfg


@preset(
    "tabular",
    "trainwell's default for your own table: the production recipe with two layers of 256, an ensemble of 5 "
    "and balanced labels over calibrated probabilities; give --data FILE --target COLUMN",
)
def tabular() -> dict[str, Any]:
    """What `trainwell train --data FILE --target COLUMN` starts from when no preset or config is
    given. Chosen on benchmarks/bench_tables.py (17 tables, error as a ratio to LightGBM's, 3,000
    training rows): two layers of 256 instead of one lower the geometric mean from 0.970 to 0.884
    (signal 0.67 → 0.29, churn 1.86 → 1.33; chicago 1.26 → 1.28) for 1.43× the CPU time; a third
    layer bought nothing more (README, "How good the default is").
    An ensemble of 5 seeds; classes train unweighted and the label decision is balanced (class_weights
    "decision", calibration.py)."""
    cfg = delivery_production()
    cfg["name"] = "tabular"
    cfg["model"] = {**cfg["model"], "hidden": [256, 256]}
    # a raw table can hold rows far from the rest; clipping at 5 (|g| is ~1-3 on typical tables) only catches such
    # spikes
    # classes: trained unweighted, the label decision balanced (calibration.py). Balanced class weights in training
    # (the preset's "auto" before) cost churn and hpc_data their AUC: over 3 seeds at 3,000 rows 1.03 → 0.79 and
    # 1.13 → 1.01× LightGBM's error, log loss 1.24 → 0.97 and 1.11 → 1.01× without them (README)
    cfg["train"] = {**cfg["train"], "clip_norm": 5.0, "members": 5, "class_weights": "decision"}
    # scaled with the table (scaling.py): batch at least 128 (optim.lr is read at batch 64 and scaled by
    # √2), 256 from 4,096 training rows (over 32 steps a pass at 128: at the benchmark's full size six tables went
    # 40% faster for the same geometric mean, 0.777, signal's CPU 0.39 → 0.33-0.35× RealMLP-TD's), one validation per
    # pass up to 50,000 rows; a 200,000-row table trains at batch 512 and validates 5 times per pass, within a
    # 4,000-step budget; smaller tables within 60 passes or 1,200 steps, whichever is more (signal at full size
    # 98 → 60 epochs: 1 − AUC 0.170 → 0.175× LightGBM's for ~0.6× the CPU; the other 16 tables stop before it)
    cfg["train"].update(batch_size="auto", max_steps="auto", val_every="auto", auto_batch_min=128)
    # periodic numeric embeddings above 50,000 training rows (scaling.py: flights-shaped table 1.077× → 1.037×
    # LightGBM's RMSE) and on smaller tables with at most 44 numeric columns to embed (17-table benchmark at 3,000
    # rows, one seed: error ratio 0.821 → 0.801, worst 1.35 → 1.12; churn 1.28 → 1.03, hpc_data 1.35 → 1.11,
    # deliveries 0.96 → 0.89; on every table, signal 0.28 → 0.89 and digits 0.17 → 0.25). One learned value per
    # column, frequencies drawn at sigma 1 cycle per scaled unit: on churn and hpc_data over 3 seeds, width 3 at
    # sigma 0.1 (RealMLP's) scored 0.97 and 1.31, width 1 at sigma 0.5 0.92 and 1.21, at 1.0 0.95 and 1.13, at 2.0
    # 0.96 and 1.18 (results/screen-pbld-*.json, README)
    cfg["model"].update(numeric_embedding="auto", numeric_width=1, numeric_sigma=1.0)
    # day of week and month of a date also one-hot (chicago's daily ridership: RMSE 2.587 → 2.310 over 3 seeds,
    # 1.28× → 1.14× LightGBM's; with the weekday as a number only, the largest weekday misses were days whose
    # lagged columns held a holiday two weeks back); no other benchmark table has dates
    cfg["data"] = {**cfg["data"], "date_onehot": True}
    # Time (bench_tables.py, 17 tables at 3,000 training rows, one seed, CPU seconds; results/screen-time*.json):
    # batch 128, patience 15 (plateau 7) and BatchNorm statistics re-estimated on 1,024 rows instead of 4,096 cut
    # the suite's CPU time from 252 s to 146 s (0.58×; CPU ≤ 1/3 of RealMLP-TD's on 12 of 15 tables, was 7) for
    # an error ratio of 0.884 against 0.875 (signal 0.290 → 0.306, digits 0.348 → 0.368, taxi 0.942 → 0.969).
    # Batch 256 was faster but lost more on the tables that need many steps (0.888 with patience 15, 0.894 with
    # 10: signal 0.34-0.35); 3 members instead of 5 took 102 s (14 of 15 within 1/3) for 0.885 (README).
    # Patience 10 (plateau 5) since validation reads the log loss without label smoothing (losses.py): the same
    # 17 tables, one seed, error ratio 0.804 → 0.799, log loss 0.857 → 0.859, 11 of 17 tables unchanged (their best
    # epoch came first), hpc_data 60 → 44 epochs (results/screen-patience10.json against screen-unsmoothed.json)
    cfg["train"].update(patience=10, bn_recalibration_samples=1024)
    cfg["schedule"] = {**cfg["schedule"], "patience": 5}
    # optim.lr 3e-3 (4.24e-3 at batch 128) with label smoothing 0.1 for classes (its unsureness undone by a
    # temperature below 1, calibration.py): 17 tables at 3,000 rows, one seed, error ratio 0.872 → 0.821 (digits
    # 0.35 → 0.17, signal 0.32 → 0.28; churn 1.32 → 1.24 and hpc_data 1.37 → 1.37 over 3 seeds), log loss 0.909 →
    # 0.916, the same epochs over the suite (618 → 624). Either alone was worse: lr 3e-3 0.871 (churn 1.37 over 3
    # seeds), smoothing at 1e-3 0.828 but signal 84 → 125 epochs and digits 76 → 178 (results/screen-*.json, README)
    cfg["optim"] = {**cfg["optim"], "lr": 3e-3}
    # last.pt and best.pt written at most every 10 s, as compare and search do (a killed process loses at most that;
    # Ctrl-C and the end always write): the signal table's CPU time 25.0-25.7 → 19.2-20.5 s, the same predictions
    cfg["train"]["checkpoint_seconds"] = 10.0
    cfg["train"]["label_smoothing"] = 0.1
    return cfg


__all__ = ["DESCRIPTIONS", "PRESETS", "describe", "preset"]
