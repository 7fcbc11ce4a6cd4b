"""Composing a run's config: the one way every entry point builds a RunConfig.

Layers apply in this order, each over the last: a starting config (`base`), a named preset, a
YAML file, config sections merged field by field, dotted `--set` overrides, and last the fields
a resume may change; the result is validated once, at the end. Raw layers are merged without
checks (`compose_raw`) so that an error names the field wherever it was set.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .layers import apply_overrides, merge, read_config_file
from .presets import PRESETS
from .run_config import RunConfig
from .same_run import RESUMABLE_FIELDS
from .sections import FILELESS_DATA, GENERATOR_FIELDS, DataConfig

Layer = Mapping[str, Any]
SEARCH = "search"  # a config may ask for a search around itself: `search: 32` (trainwell train, trainwell.search)


def compose_raw(
    preset: str | None = None,
    file: str | Path | None = None,
    sections: Layer | None = None,
    sets: Layer | None = None,
    base: RunConfig | Layer | None = None,
) -> dict[str, Any]:
    """The raw config dict the layers make, not yet checked (see `compose`)."""
    raw: dict[str, Any] = base.to_dict() if isinstance(base, RunConfig) else copy.deepcopy(dict(base or {}))
    if preset:
        layer = PRESETS.get(preset)()
        raw = file_means_file(merge(raw, layer), layer.get("data"))
    if file is not None:
        layer = read_config_file(file)
        raw = file_means_file(merge(raw, layer), layer.get("data"))
    if sections:
        raw = file_means_file(merge(raw, dict(sections)), dict(sections).get("data"))
    data_sets = {k.partition(".")[2]: v for k, v in (sets or {}).items() if k.startswith("data.")}
    return file_means_file(apply_overrides(raw, dict(sets or {})), data_sets)


def file_means_file(raw: dict[str, Any], layer_data: Any) -> dict[str, Any]:
    """The one rule for data across layers: a data path a layer gives (a file, a variant,
    --data-path, compare --data) means that file for the run, whatever built-in data the layers
    below named (a preset's generated delivery, say): data.name becomes csv and the generator's
    fields go. A layer that names a built-in data set beside its own path is left for
    DataConfig.validate to refuse in one line."""
    if not isinstance(layer_data, Mapping) or layer_data.get("path") is None or "name" in layer_data:
        return raw
    data = raw.get("data")
    if not isinstance(data, dict) or data.get("name", DataConfig.name) not in FILELESS_DATA:
        return raw
    kept = {k: v for k, v in data.items() if k not in GENERATOR_FIELDS}
    return {**raw, "data": {**kept, "name": "csv"}}


def compose(
    preset: str | None = None,
    file: str | Path | None = None,
    sections: Layer | None = None,
    sets: Layer | None = None,
    resume_overrides: Layer | None = None,
    base: RunConfig | Layer | None = None,
    quiet: bool | None = None,
) -> RunConfig:
    """A validated RunConfig from its layers: base → preset → file → sections (merged field by
    field) → `sets` (dotted keys, e.g. {"train.max_epochs": 50}) → `resume_overrides` (only the
    fields a resume may change, see same_run.py) → `quiet` (train.quiet, when not None: the caller's
    display wins over the config's). Raises ConfigError naming the first problem."""
    raw = compose_raw(preset, file, sections, sets, base)
    if resume_overrides:
        for key in resume_overrides:
            if key not in RESUMABLE_FIELDS:
                raise ConfigError(
                    f"--set {key} cannot change on resume; fields that may change: {', '.join(RESUMABLE_FIELDS)}"
                )
        raw = apply_overrides(raw, dict(resume_overrides))
    if quiet is not None:
        raw = apply_overrides(raw, {"train.quiet": bool(quiet)})
    return RunConfig.from_dict(raw)


def compose_search(
    preset: str | None = None,
    file: str | Path | None = None,
    sets: Layer | None = None,
) -> tuple[RunConfig, Any]:
    """`compose` for a command that may search: a top-level `search: N` in the preset or file is
    taken out and returned beside the RunConfig (None when no layer asks for a search; checked by
    the search itself)."""
    raw = compose_raw(preset, file, sets=sets)
    trials = raw.pop(SEARCH, None)
    return RunConfig.from_dict(raw), trials


def load_config(
    path: str | Path | None = None, preset: str | None = None, overrides: dict[str, Any] | None = None
) -> RunConfig:
    """Build a validated RunConfig: preset (if any), then the YAML file (if any), then overrides."""
    return compose(preset=preset, file=path, sets=overrides)
