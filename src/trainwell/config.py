"""Typed configuration, in one import: the sections (sections.py), the whole run config
(run_config.py) and composing one from presets, files and overrides (compose.py).

Every default lives in sections.py and nowhere else; nothing trains before a config has passed
`RunConfig.validate()`, and every entry point builds its config with `compose`.
"""

from __future__ import annotations

from .compose import compose, compose_raw, load_config
from .layers import apply_overrides, merge, parse_override, read_config_file, read_yaml
from .run_config import RUN_NAME_MAX, RunConfig, dump_yaml
from .sections import (
    ACTIVATIONS,
    AMP_MODES,
    AUTO,
    BACKENDS,
    CLASS_WEIGHTS,
    INT_LIMIT,
    LOGGERS,
    MODES,
    NORMS,
    NUMPY_SEED_LIMIT,
    SCALINGS,
    SECTION_TYPES,
    SECTIONS,
    SEED_LIMIT,
    TASKS,
    DataConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
)

__all__ = [
    "ACTIVATIONS",
    "AMP_MODES",
    "AUTO",
    "BACKENDS",
    "CLASS_WEIGHTS",
    "INT_LIMIT",
    "LOGGERS",
    "MODES",
    "NORMS",
    "NUMPY_SEED_LIMIT",
    "RUN_NAME_MAX",
    "SCALINGS",
    "SECTION_TYPES",
    "SECTIONS",
    "SEED_LIMIT",
    "TASKS",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "ScheduleConfig",
    "TrainConfig",
    "apply_overrides",
    "compose",
    "compose_raw",
    "dump_yaml",
    "load_config",
    "merge",
    "parse_override",
    "read_config_file",
    "read_yaml",
]
