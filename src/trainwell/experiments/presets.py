"""Built-in experiments: each comparison of the tabular lesson and the CIFAR-10 lesson on its own
data and settings, and the ablation of the production recipe.

The lessons' scripts train for a fixed number of epochs with no early stopping and score the last
weights; the comparison presets do the same (train.early_stopping false, restore_best false)
so their numbers mean what the lessons' numbers mean. The recipe and the ablation keep early
stopping: it is one of the recipe's ingredients. Each preset returns a raw experiment mapping
(the shape of an experiment file), parsed by spec.parse_experiment.
"""

from __future__ import annotations

from typing import Any, Callable

from ..registry import Registry

EXPERIMENTS: Registry[Callable[[], dict[str, Any]]] = Registry("experiment preset")
DESCRIPTIONS: dict[str, str] = {}

# the tabular comparisons and the ablation: what `trainwell demo` runs
DEMO = ("optimizers", "batchnorm", "dropout", "schedules", "recipe", "ablation")

# the lessons' training loop: fixed epochs, last weights scored
SEED_LOOP = {"early_stopping": False, "restore_best": False}


def experiment(name: str, description: str) -> Callable[[Callable[[], dict[str, Any]]], Callable[[], dict[str, Any]]]:
    def add(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        DESCRIPTIONS[name] = description
        return EXPERIMENTS.register(name)(fn)

    return add


def _delivery(n: int = 3000) -> dict[str, Any]:
    return {"name": "delivery", "n": n}


@experiment("optimizers", "SGD, SGD+momentum, Adam and AdamW on a 64-32 MLP, 100 epochs (as in the tabular lesson)")
def optimizers() -> dict[str, Any]:
    return {
        "name": "optimizers",
        "description": DESCRIPTIONS["optimizers"],
        "base": {
            "data": _delivery(),
            "model": {"kind": "mlp", "hidden": [64, 32], "norm": "none", "dropout": 0.0},
            "schedule": {"name": "none"},
            "train": {"max_epochs": 100, "batch_size": 64, **SEED_LOOP},
        },
        "variants": {
            "sgd": {"optim.name": "sgd", "optim.lr": 0.01, "optim.momentum": 0.0, "optim.weight_decay": 0.0},
            "sgd-momentum": {"optim.name": "sgd", "optim.lr": 0.01, "optim.momentum": 0.9, "optim.weight_decay": 0.0},
            "adam": {"optim.name": "adam", "optim.lr": 1e-3, "optim.weight_decay": 0.0},
            "adamw": {"optim.name": "adamw", "optim.lr": 1e-3, "optim.weight_decay": 0.01},
        },
    }


@experiment("batchnorm", "a 128-64-32 MLP without and with BatchNorm, Adam 1e-3, 100 epochs (as in the tabular lesson)")
def batchnorm() -> dict[str, Any]:
    return {
        "name": "batchnorm",
        "description": DESCRIPTIONS["batchnorm"],
        "base": {
            "data": _delivery(),
            "model": {"kind": "mlp", "hidden": [128, 64, 32], "dropout": 0.0},
            "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
            "schedule": {"name": "none"},
            "train": {"max_epochs": 100, "batch_size": 64, **SEED_LOOP},
        },
        "variants": {"without": {"model.norm": "none"}, "with": {"model.norm": "batch"}},
    }


@experiment(
    "dropout", "dropout 0-0.7 on a 256-256-128-64 MLP with 1,000 rows, Adam 1e-3, 150 epochs (as in the tabular lesson)"
)
def dropout() -> dict[str, Any]:
    return {
        "name": "dropout",
        "description": DESCRIPTIONS["dropout"],
        "base": {
            "data": _delivery(1000),
            "model": {"kind": "mlp", "hidden": [256, 256, 128, 64], "norm": "none"},
            "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
            "schedule": {"name": "none"},
            "train": {"max_epochs": 150, "batch_size": 32, **SEED_LOOP},
        },
        "grid": {"model.dropout": [0.0, 0.1, 0.3, 0.5, 0.7]},
    }


@experiment(
    "schedules",
    "no schedule, step, cosine, plateau and one-cycle on a 64-32 MLP with BatchNorm and Dropout 0.2, Adam 0.01 "
    "(as in the tabular lesson)",
)
def schedules() -> dict[str, Any]:
    return {
        "name": "schedules",
        "description": DESCRIPTIONS["schedules"],
        "base": {
            "data": _delivery(),
            "model": {"kind": "mlp", "hidden": [64, 32], "norm": "batch", "dropout": 0.2},
            "optim": {"name": "adam", "lr": 0.01, "weight_decay": 0.0},
            "train": {"max_epochs": 100, "batch_size": 64, **SEED_LOOP},
        },
        "variants": {
            "none": {"schedule.name": "none"},
            "step": {"schedule.name": "step", "schedule.step_size": 30, "schedule.gamma": 0.1},
            "cosine": {"schedule.name": "cosine", "schedule.t_max": 100, "schedule.eta_min": 1e-6},
            "plateau": {"schedule.name": "plateau", "schedule.patience": 8, "schedule.factor": 0.5},
            "onecycle": {"schedule.name": "onecycle", "schedule.max_lr": 0.01},
        },
    }


@experiment(
    "recipe", "the production recipe (preset delivery-production) with early stopping, against classical baselines"
)
def recipe() -> dict[str, Any]:
    return {
        "name": "recipe",
        "description": DESCRIPTIONS["recipe"],
        "base": {"preset": "delivery-production"},
        "variants": {"recipe": {}},
    }


# each ablation variant takes one ingredient away from the full recipe
ABLATIONS: dict[str, dict[str, Any]] = {
    "full recipe": {},
    "adam with L2": {"optim.name": "adam"},  # the same weight_decay, added to the gradient instead of decoupled
    "no batchnorm": {"model.norm": "none"},
    "no dropout": {"model.dropout": 0.0},
    "constant lr": {"schedule.name": "none"},
    "no clipping": {"train.clip_norm": None},
    "no early stopping": {"train.early_stopping": False, "train.restore_best": False},
    "decay on every parameter": {"optim.decay_norm_and_bias": True},
}


@experiment(
    "ablation", "the full recipe (delivery-production + clipping at 1.0) with one ingredient taken away at a time"
)
def ablation() -> dict[str, Any]:
    return {
        "name": "ablation",
        "description": DESCRIPTIONS["ablation"],
        "base": {"preset": "delivery-production", "set": {"train.clip_norm": 1.0}},
        "variants": dict(ABLATIONS),
    }


@experiment(
    "cnn-upgrade",
    "the plain CNN (Adam, constant lr) against the upgraded one (AdamW, one-cycle, clipping, early stopping), "
    "as in the CIFAR-10 lesson: on digits, or on CIFAR-10 with --data-path FOLDER",
)
def cnn_upgrade() -> dict[str, Any]:
    # the CIFAR-10 lesson's settings: batch 128, 30 epochs; upgraded: AdamW wd 5e-2, one-cycle to 3e-3, clip 1.0,
    # patience 7
    return {
        "name": "cnn-upgrade",
        "description": DESCRIPTIONS["cnn-upgrade"],
        "base": {"data": {"name": "digits"}, "train": {"max_epochs": 30, "batch_size": 128, "monitor": "val_accuracy"}},
        "variants": {
            "plain": {
                "model.kind": "cnn-plain",
                "optim.name": "adam",
                "optim.lr": 1e-3,
                "optim.weight_decay": 0.0,
                "schedule.name": "none",
                "train.clip_norm": None,
                **{f"train.{k}": v for k, v in SEED_LOOP.items()},
            },
            "upgraded": {
                "model.kind": "cnn",
                "optim.name": "adamw",
                "optim.lr": 3e-3,
                "optim.weight_decay": 5e-2,
                "schedule.name": "onecycle",
                "schedule.max_lr": 3e-3,
                "train.clip_norm": 1.0,
                "train.early_stopping": True,
                "train.patience": 7,
                "train.restore_best": True,
            },
        },
    }


def preset_experiment(name: str, data_path: str | None = None) -> dict[str, Any]:
    """The raw mapping of a built-in experiment; cnn-upgrade moves to CIFAR-10 when a folder is given."""
    raw = EXPERIMENTS.get(name)()
    if name == "cnn-upgrade" and data_path:  # a layer of the base, composed with the rest (compose.py)
        raw["base"]["set"] = {**raw["base"].get("set", {}), "data.name": "cifar10", "data.path": data_path}
    return raw


def describe() -> list[tuple[str, str]]:
    return [(name, DESCRIPTIONS.get(name, "")) for name in EXPERIMENTS.names()]
