"""trainwell: train PyTorch networks with the modern production recipe, and measure what each
ingredient is worth."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Names resolved on first use, so `import trainwell.cli` (and `trainwell --help`) does not pay
# for importing torch and pandas (~2-4 s) before it can say anything.
_LAZY = {
    "RunConfig": "config",
    "load_config": "config",
    "TrainwellError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "CheckpointError": "errors",
    "evaluate_run": "inference",
    "predict_run": "inference",
    "RunResult": "runner",
    "train": "runner",
    "fit": "api",
    "load_weights": "api",
    "register_model": "api",
    "resume": "api",
    "lr_find": "lr_find",
    "check": "checks",
    "search": "tune",
    "SearchResult": "tune",
}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trainwell' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
