"""Presets for images: the CIFAR-10 lesson's two runs, and digits for the CPU."""

from __future__ import annotations

from typing import Any

from .preset_registry import preset


def _cifar_upgraded() -> dict[str, Any]:
    return {
        "name": "cifar10-upgraded",
        "data": {"name": "cifar10", "path": "data", "val_size": 5000},
        "model": {"kind": "cnn", "channels": [64, 128, 256], "conv_dropout": 0.15, "head_width": 512, "dropout": 0.5},
        "optim": {"name": "adamw", "lr": 3e-3, "weight_decay": 5e-2},
        "schedule": {"name": "onecycle", "max_lr": 3e-3, "warmup_fraction": 0.3},
        "train": {
            "max_epochs": 30,
            "batch_size": 128,
            "clip_norm": 1.0,
            "patience": 7,
            "monitor": "val_accuracy",
            "eval_batch_size": 512,
        },
    }


@preset(
    "cifar10-upgraded",
    "the CIFAR-10 lesson's upgraded run: BatchNorm, Dropout2d, AdamW, onecycle, clipping (~87%); data.path = folder",
)
def cifar10_upgraded() -> dict[str, Any]:
    return _cifar_upgraded()


@preset("cifar10-baseline", "the CIFAR-10 lesson's plain network: no BatchNorm or dropout, Adam, constant lr (~73%)")
def cifar10_baseline() -> dict[str, Any]:
    cfg = _cifar_upgraded()
    cfg["name"] = "cifar10-baseline"
    cfg["model"] = {**cfg["model"], "kind": "cnn-plain"}
    cfg["optim"] = {"name": "adam", "lr": 1e-3, "weight_decay": 0.0}
    cfg["schedule"] = {"name": "none"}
    cfg["train"] = {**cfg["train"], "clip_norm": None}
    return cfg


@preset(
    "digits-cnn", "scikit-learn's 8×8 digits with a small upgraded CNN: seconds on the CPU, about 98-99% test accuracy"
)
def digits_cnn() -> dict[str, Any]:
    return {
        "name": "digits-cnn",
        "data": {"name": "digits"},
        "model": {"kind": "cnn", "channels": [32, 64, 128], "conv_dropout": 0.1, "head_width": 128, "dropout": 0.3},
        "optim": {"name": "adamw", "lr": 3e-3, "weight_decay": 5e-2},
        "schedule": {"name": "onecycle", "warmup_fraction": 0.3},
        "train": {"max_epochs": 30, "batch_size": 64, "clip_norm": 1.0, "patience": 15, "monitor": "val_accuracy"},
    }
