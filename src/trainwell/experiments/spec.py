"""An experiment: a base config, its variants (named, a grid, or both) and the seeds to run.

An experiment file is YAML:

    name: optimizers
    base:                       # what every variant starts from
      preset: delivery-production   # optional: a built-in config preset
      config: base.yaml             # optional: a config file (relative to this file)
      set: {train.max_epochs: 100}  # optional: dotted overrides
      model: {hidden: [64, 32]}     # optional: config sections, merged field by field
    variants:                   # named variants: overrides, dotted or as sections
      sgd: {optim.name: sgd, optim.lr: 0.01}
      adam: {optim: {name: adam}}
    grid:                       # and/or a grid: every combination of these values
      model.dropout: [0.0, 0.3]
    seeds: 3                    # a count (seeds 0..N-1) or a list of seeds
    reference: sgd              # variant the others are compared with (default: the first)
    metric: rmse                # what ranks them: any metric trainwell computes (default: metric_names.default_metric)

`expand` turns it into one validated RunConfig per (variant, seed) before anything trains,
so an unknown field or a bad value in any variant fails with one line up front.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compose import compose, compose_raw
from ..errors import ConfigError, shown, shown_name
from ..layers import read_yaml
from ..metric_names import metric_problem
from ..run_config import RUN_NAME_MAX, RunConfig
from ..sections import SECTIONS, SEED_LIMIT

DEFAULT_SEEDS = 3  # seeds per variant when an experiment names none: the fewest that give an interval
TOP_KEYS = ("name", "description", "base", "variants", "grid", "seeds", "reference", "stack", "metric")
BASE_KEYS = ("preset", "config", "set", "name", *SECTIONS)
MAX_SEEDS = 1000  # seeds per variant: far more than any interval needs, few enough to plan instantly
MAX_VARIANTS = 1000  # variants (named × grid points) per experiment
NAME_MAX = 200  # characters of an experiment's or a variant's folder name (file systems allow 255 bytes)


@dataclass
class Experiment:
    name: str
    base: dict[str, Any]  # raw config dict every variant starts from
    variants: dict[
        str, dict[str, Any]
    ]  # variant name → dotted overrides (in order; the first is the default reference)
    seeds: list[int]
    reference: str
    description: str = ""
    stack: bool = True  # allow training same-shape runs together as one vectorised model (see trainwell.planning)
    source: str = ""  # file or preset it came from, for reports
    metric: str | None = None  # test_<name> the variants are ranked by (None: metric_names.default_metric)

    def with_seeds(self, n: int) -> "Experiment":
        if not 1 <= n <= MAX_SEEDS:
            raise ConfigError(f"--seeds {shown(n)} is not allowed: an integer from 1 to {MAX_SEEDS}")
        return dataclasses.replace(self, seeds=list(range(n)))

    def with_metric(self, name: str | None) -> "Experiment":
        """The experiment ranked by `name` (bare, e.g. roc_auc, or test_roc_auc); None keeps its own."""
        return self if name is None else dataclasses.replace(self, metric=check_metric(name, "--metric"))


def check_metric(name: Any, where: str) -> str:
    """test_<name> for a metric trainwell computes, or a one-line ConfigError (the task is checked once the data is
    read)."""
    problem = metric_problem(name) if isinstance(name, str) else "a metric name"
    if problem:
        raise ConfigError(f"{where} = {shown(name)} is not allowed: {problem}")
    return "test_" + name.removeprefix("test_")


@dataclass
class Run:
    """One planned run: a variant at a seed, with its validated config."""

    experiment: str
    variant: str
    seed: int
    config: RunConfig = field(repr=False)

    @property
    def key(self) -> str:
        return f"{slug(self.variant)}/seed-{self.seed}"


def slug(text: str) -> str:
    """A file-system-safe form of a variant name (letters, digits, '.', '-', '_', '=')."""
    out = re.sub(r"[^A-Za-z0-9._=-]+", "-", text).strip("-")
    return out or "variant"


def flatten(overrides: Any, where: str) -> dict[str, Any]:
    """{optim: {name: sgd}} and {optim.name: sgd} both become {"optim.name": "sgd"}."""
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise ConfigError(
            f"{where} must be a mapping of fields to values, e.g. {{optim.name: sgd}}; got {shown(overrides)}"
        )
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        key = str(key)
        if key in SECTIONS and isinstance(value, dict):
            for name, v in value.items():
                out[f"{key}.{name}"] = v
        elif key == "name" or "." in key:
            out[key] = value
        else:
            raise ConfigError(
                f"{where}: {shown(key, 40)} is not a field; use SECTION.FIELD with SECTION one of {', '.join(SECTIONS)}"
            )
    return out


def _base_config(raw: Any, folder: Path | None) -> dict[str, Any]:
    """The raw config dict every variant starts from: the base's layers composed, not yet checked."""
    if raw is None:
        return {}
    if isinstance(raw, str):  # shorthand: base: delivery-production
        raw = {"preset": raw}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"experiment base must be a preset name or a mapping ({', '.join(BASE_KEYS)}); got {shown(raw)}"
        )
    unknown = sorted((k for k in raw if k not in BASE_KEYS), key=str)
    if unknown:
        raise ConfigError(f"unknown key base.{shown_name(unknown[0])}; allowed: {', '.join(BASE_KEYS)}")
    path = Path(raw["config"]) if raw.get("config") else None
    if path is not None and folder is not None and not path.is_absolute():
        path = folder / path  # relative to the experiment file
    start = compose_raw(preset=raw.get("preset") or None, file=path)
    sections = {k: v for k, v in raw.items() if k in SECTIONS or k == "name"}
    for key, value in sections.items():
        if key != "name" and not isinstance(value, dict):
            raise ConfigError(f"base.{key} must be a mapping of fields, not {shown(value)}")
    return compose_raw(base=start, sections=sections, sets=flatten(raw.get("set"), "base.set"))


def _value_name(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "-".join(_value_name(v) for v in value)
    return str(value).lower() if isinstance(value, bool) or value is None else str(value)


def _grid(raw: Any) -> dict[str, dict[str, Any]]:
    """Every combination of the grid's values, named like "dropout=0.3,lr=0.01"."""
    grid = flatten(raw, "grid")
    points = 1
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"grid.{shown_name(key)} must be a non-empty list of values, e.g. [0.0, 0.3]; got {shown(values)}"
            )
        points *= len(values)
    if points > MAX_VARIANTS:
        raise ConfigError(f"the grid has {points:,} points; an experiment may have at most {MAX_VARIANTS:,} variants")
    keys = list(grid)
    short = [k.split(".")[-1] for k in keys]
    if len(set(short)) < len(short):  # two sections share a field name: keep the section
        short = keys
    out: dict[str, dict[str, Any]] = {}
    for combo in itertools.product(*(grid[k] for k in keys)):
        name = ",".join(f"{s}={_value_name(v)}" for s, v in zip(short, combo))
        out[name] = dict(zip(keys, combo))
    return out


def _seeds(raw: Any) -> list[int]:
    allowed = f"a count from 1 to {MAX_SEEDS} or a list of at most {MAX_SEEDS} distinct integers >= 0 and < 2**63"
    if raw is None:
        return list(range(DEFAULT_SEEDS))
    if isinstance(raw, int) and not isinstance(raw, bool):
        if not 1 <= raw <= MAX_SEEDS:
            raise ConfigError(f"seeds = {shown(raw)} is not allowed: {allowed}")
        return list(range(raw))
    if (
        isinstance(raw, list)
        and 0 < len(raw) <= MAX_SEEDS
        and len(set(map(repr, raw))) == len(raw)
        and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < SEED_LIMIT for s in raw)
    ):
        return list(raw)
    raise ConfigError(f"seeds = {shown(raw)} is not allowed: {allowed}")


def parse_experiment(raw: Any, source: str = "", folder: Path | None = None) -> Experiment:
    """An Experiment from a raw mapping (as read from YAML); checks its shape, not yet its configs."""
    if not isinstance(raw, dict):
        raise ConfigError(f"an experiment must be a mapping with keys {', '.join(TOP_KEYS)}; got {type(raw).__name__}")
    unknown = sorted((k for k in raw if k not in TOP_KEYS), key=str)
    if unknown:
        raise ConfigError(f"unknown experiment key {shown(unknown[0], 40)}; allowed: {', '.join(TOP_KEYS)}")
    name = raw.get("name") or (Path(source).stem if source else "experiment")
    if not isinstance(name, str) or len(slug(name)) > NAME_MAX:
        raise ConfigError(f"experiment name = {shown(name)} is not allowed: a string of at most {NAME_MAX} characters")
    named_raw = raw.get("variants") or {}
    if not isinstance(named_raw, dict):
        raise ConfigError(f"experiment variants must be a mapping of variant name → overrides; got {shown(named_raw)}")
    named = {str(k): flatten(v, f"variants.{shown_name(k)}") for k, v in named_raw.items()}
    grid = _grid(raw.get("grid")) if raw.get("grid") else {}
    if max(len(named), 1) * max(len(grid), 1) > MAX_VARIANTS:
        raise ConfigError(
            f"the experiment has {max(len(named), 1) * max(len(grid), 1):,} variants; the limit is {MAX_VARIANTS:,}"
        )
    if named and grid:  # both: every named variant at every grid point
        variants = {f"{n}/{g}": {**nv, **gv} for n, nv in named.items() for g, gv in grid.items()}
    else:
        variants = named or grid or {"base": {}}
    longest = max(variants, key=lambda v: len(slug(v)))
    if len(slug(longest)) > NAME_MAX:
        raise ConfigError(
            f"variant {shown(longest)} has a {len(slug(longest))}-character folder name; the limit is "
            f"{NAME_MAX}: shorten it"
        )
    reference = raw.get("reference", next(iter(variants)))
    if not isinstance(reference, str) or reference not in variants:
        raise ConfigError(
            f"reference = {shown(reference)} is not a variant; variants: {shown(', '.join(variants), 100)}"
        )
    stack = raw.get("stack", True)
    if not isinstance(stack, bool):
        raise ConfigError(f"stack = {shown(stack)} is not allowed: true or false")
    slugs = [slug(v) for v in variants]
    if len(set(slugs)) < len(slugs):
        raise ConfigError("two variant names map to the same folder name; rename one of them")
    return Experiment(
        name=name,
        base=_base_config(raw.get("base"), folder),
        variants=variants,
        seeds=_seeds(raw.get("seeds")),
        reference=str(reference),
        description=str(raw.get("description") or ""),
        stack=stack,
        source=source,
        metric=check_metric(raw["metric"], "metric") if raw.get("metric") is not None else None,
    )


def load_experiment(path: str | Path) -> Experiment:
    p = Path(path)
    return parse_experiment(read_yaml(p), source=str(p), folder=p.parent)


def expand(exp: Experiment, overrides: dict[str, Any] | None = None) -> list[Run]:
    """One validated Run per (variant, seed), variants in order; `overrides` apply to every run
    (after the variant, so a command-line --set wins). Raises ConfigError before any run starts."""
    runs: list[Run] = []
    for variant, changes in exp.variants.items():
        raw = compose_raw(base=exp.base, sets={**changes, **(overrides or {})})
        for seed in exp.seeds:
            name = f"{slug(exp.name)}-{slug(variant)}"[:RUN_NAME_MAX]  # a label; folders use the variant's slug
            try:
                cfg = compose(base=raw, sets={"train.seed": seed, "train.quiet": True, "name": name})
            except ConfigError as exc:
                raise ConfigError(f"experiment {shown(exp.name, 40)}, variant {shown(variant, 40)}: {exc}") from None
            runs.append(Run(exp.name, variant, seed, cfg))
    return runs
