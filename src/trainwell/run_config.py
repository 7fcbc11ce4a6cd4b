"""The whole config of a run: its five sections and its name, read from a raw mapping.

`RunConfig.from_dict` refuses unknown keys, wrong types and out-of-range values with one line
naming the field, the value given and what is allowed, and checks the names of the data set,
model, optimizer and schedule against their registries; nothing trains before a config has
passed `validate()`. Composing a config (presets, files, --set) is compose.py's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

import yaml

from .errors import ConfigError, shown, shown_name
from .sections import (
    INT_LIMIT,
    SECTION_TYPES,
    SECTIONS,
    DataConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
)

RUN_NAME_MAX = 200  # characters: room for "-YYYYmmdd-HHMMSS-k" within a 255-byte folder name


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = "run"  # label used for run directories and reports

    def validate(self) -> "RunConfig":
        for section in SECTIONS:
            getattr(self, section).validate()
        # names checked against their registries, imported here to keep `import trainwell.config` free of
        # torch and pandas: the command line imports it (through distributed.py) before it answers --help
        from .data import DATASETS
        from .models import MODELS
        from .optim import OPTIMIZERS
        from .schedules import SCHEDULES

        DATASETS.get(self.data.name)
        OPTIMIZERS.get(self.optim.name)
        SCHEDULES.get(self.schedule.name)
        if self.model.kind != "auto":
            MODELS.get(self.model.kind)
        return self

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for section in SECTIONS:
            out[section] = dataclasses.asdict(getattr(self, section))
        return out

    @classmethod
    def from_dict(cls, raw: Any) -> "RunConfig":
        if not isinstance(raw, dict):
            raise ConfigError(
                f"a config must be a mapping of sections ({', '.join(SECTIONS)}), not {type(raw).__name__}"
            )
        unknown = sorted((k for k in raw if k not in SECTIONS and k != "name"), key=str)
        if unknown:
            raise ConfigError(f"unknown config section {shown(unknown[0], 40)}; allowed: name, {', '.join(SECTIONS)}")
        name = raw.get("name", cls.name if isinstance(cls.name, str) else "run")
        if (
            not isinstance(name, str)
            or not name
            or len(name) > RUN_NAME_MAX
            or "\0" in name
            or "/" in name
            or name in (".", "..")
        ):
            raise ConfigError(
                f"name = {shown(name)} is not allowed: a run name of 1 to {RUN_NAME_MAX} characters without '/' or NUL"
            )
        parts = {s: _section_from_dict(SECTION_TYPES[s], raw.get(s) or {}) for s in SECTIONS}
        return cls(name=name, **parts).validate()


def _section_from_dict(kind: type, raw: Any) -> Any:
    section = kind.SECTION
    if not isinstance(raw, dict):
        raise ConfigError(f"config section {section!r} must be a mapping of fields, not {shown(raw)}")
    hints = typing.get_type_hints(kind)
    names = [f.name for f in dataclasses.fields(kind)]
    values = {}
    for key, value in raw.items():
        if key not in names:
            raise ConfigError(f"unknown field {section}.{shown_name(key)}; allowed: {', '.join(names)}")
        values[key] = _coerce(f"{section}.{key}", value, hints[key])
    return kind(**values)


def _coerce(where: str, value: Any, hint: Any) -> Any:
    """Check `value` against a type hint; ints are accepted where floats are expected."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        for option in inner[1:]:  # e.g. `float | str` (a number or "auto"): the first type that fits wins
            with contextlib.suppress(ConfigError):
                return _coerce(where, value, inner[0])
            with contextlib.suppress(ConfigError):
                return _coerce(where, value, option)
        return _coerce(where, value, inner[0])
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where} = {shown(value)} is not allowed: a list of {item.__name__}")
        return [_coerce(where, v, item) for v in value]
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not -INT_LIMIT < value < INT_LIMIT:
            raise ConfigError(f"{where} = {shown(value)} is not allowed: an integer between -2**63 and 2**63")
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        if isinstance(value, bool):  # YAML 1.1 reads off/on/no/yes as booleans: `--set train.amp=off` means "off"
            value = "on" if value else "off"
        ok = isinstance(value, str)
    else:  # pragma: no cover - every field uses one of the types above
        raise TypeError(f"unsupported config type {hint!r}")
    if not ok:
        raise ConfigError(f"{where} = {shown(value)} is not allowed: a value of type {hint.__name__}")
    return value


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
