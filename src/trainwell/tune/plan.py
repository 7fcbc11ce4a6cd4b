"""A search's plan: its typed settings, the configurations drawn, the stacks they train in,
and the folder that holds it all (checked before anything is read or written)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import paths, rundir
from ..config import RunConfig
from ..data import DataBundle
from ..data.memory import NAME as MEMORY
from ..errors import ConfigError, TrainwellError, shown_path
from ..planning import estimate_cost, expected_epochs, group_key
from ..same_run import PRESENTATION_FIELDS, without
from .engine import SELECT_ON
from .sampler import draw
from .space import Dial, apply, default_values, restrict, space_around

PLAN, REPORT_MD, REPORT_HTML, TABLE = "search.json", "report.md", "report.html", "search.csv"
DEFAULT_DIR, RUNS_DIR, ENSEMBLE_DIR = "default", "runs", "ensemble"
MAX_TRIALS = 1024  # beyond this a search is better split into several
SEARCHABLE_DATA = ("csv", "delivery", MEMORY)
TIME_TRIALS = 64  # configurations planned when only a --time budget is given
# members per stack: one stack per layout for --search 32 (fewer stacks cost less on small tables, where a
# step's dispatch outweighs its arithmetic); planning.MAX_MEMBERS (16)
# keeps a compare's first results coming early, which a search, reporting at the end, does not need
STACK_MEMBERS = 40
# the chosen ensemble on the search's own validation rows and two more folds (folds.py); each fold costs about as
# much as the default run
DEFAULT_FOLDS, MAX_FOLDS = 3, 10


@dataclass
class SearchConfig:
    """How many configurations, drawn how, and which dials (None: every dial that applies);
    `seconds`: a training-time budget after which no further stack starts (None: none);
    `select_on`: where members early-stop and the ensemble is chosen (engine.validation_views)."""

    trials: int
    seed: int = 0
    dials: list[str] | None = None
    seconds: float | None = None
    select_on: str = "all"
    folds: int = DEFAULT_FOLDS  # the chosen ensemble trains on this many validation folds (folds.py), 1: none

    def validate(self) -> "SearchConfig":
        ok = self.seconds is None or (
            isinstance(self.seconds, (int, float))
            and not isinstance(self.seconds, bool)
            and 0 < self.seconds < math.inf
        )
        if not ok:
            raise ConfigError(f"--time {self.seconds!r} is not allowed: a number of seconds > 0")
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or not 1 <= self.trials <= MAX_TRIALS:
            raise ConfigError(
                f"search = {self.trials!r} is not allowed: a number of configurations from 1 to {MAX_TRIALS}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ConfigError(f"search seed = {self.seed!r} is not allowed: an integer >= 0 and < 2**32")
        if self.select_on not in SELECT_ON:
            raise ConfigError(f"select_on = {self.select_on!r} is not allowed: one of {', '.join(SELECT_ON)}")
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or not 1 <= self.folds <= MAX_FOLDS:
            raise ConfigError(f"search folds = {self.folds!r} is not allowed: an integer from 1 to {MAX_FOLDS}")
        if self.dials is not None and (not isinstance(self.dials, list) or not self.dials):
            raise ConfigError("the search space is empty: name at least one dial, or none to search them all")
        return self


@dataclass
class Plan:
    base: RunConfig  # the default: trained as it is, for the comparison and the cost ratio
    search: SearchConfig
    dials: list[Dial]
    values: list[dict[str, Any]]  # per candidate: its dial values (candidate 0 is the default's)
    configs: list[RunConfig]
    stacks: list[list[int]]  # candidate indices trained together, after the default run (alone)
    rungs: list[int] = field(default_factory=list)  # halving epochs, set once the default run has trained
    stale: int | None = None  # epochs without improvement after which a member stops, set with the rungs

    def fingerprint(self) -> dict[str, Any]:
        """What search.json records: a search continues only where this is unchanged."""
        return {
            "search": {k: v for k, v in asdict(self.search).items() if k != "seconds"},  # a budget may change
            "base": without(self.base.to_dict(), PRESENTATION_FIELDS),
            "configs": [without(c.to_dict(), PRESENTATION_FIELDS) for c in self.configs],
            "stacks": self.stacks,
        }


def check_base(base: RunConfig) -> None:
    """A search varies an MLP on a table: a CSV, delivery, or rows in memory (the scikit-learn estimators)."""
    if base.data.name not in SEARCHABLE_DATA or base.model.kind not in ("auto", "mlp"):
        raise ConfigError(
            f"--search trains MLPs on tables; this config cannot be searched (data.name = {base.data.name!r}, "
            f"model.kind = {base.model.kind!r}; allowed: data.name {', '.join(SEARCHABLE_DATA)} with "
            f"model.kind auto or mlp)"
        )


def check_table(data: DataBundle) -> None:
    if len(data.input_shape) != 1:
        raise ConfigError(
            f"--search trains MLPs on tables; these inputs have shape {list(data.input_shape)}, not rows of features"
        )


def make_plan(base: RunConfig, search: SearchConfig, task: str, train_rows: int, embeddable: int | None = None) -> Plan:
    """Candidate 0 is the default as one member; the others are Sobol points; stacks by layout."""
    search.validate()
    check_base(base)
    dials = restrict(space_around(base, task, train_rows, embeddable), search.dials, task)
    defaults = {d.name: None for d in dials}
    values = [defaults, *draw(dials, search.trials, search.seed)]
    configs = [
        apply(base, {k: v for k, v in vals.items() if v is not None}, f"{base.name}-c{i:02d}")
        for i, vals in enumerate(values)
    ]
    known = default_values(base)
    values[0] = {d.name: known[d.name] for d in dials}
    return Plan(base, search, dials, values, configs, stacks_of(base, configs))


def stacks_of(base: RunConfig, configs: list[RunConfig]) -> list[list[int]]:
    """Candidates by layout, the default's layout first, at most STACK_MEMBERS members a stack."""
    groups: dict[tuple, list[int]] = {group_key(base): []}
    for i, cfg in enumerate(configs):
        groups.setdefault(group_key(cfg), []).append(i)
    stacks = []
    for g in groups.values():
        count = math.ceil(len(g) / STACK_MEMBERS)  # as few stacks as the limit allows, of even sizes
        bounds = [round(k * len(g) / count) for k in range(count + 1)]
        stacks += [g[a:b] for a, b in zip(bounds, bounds[1:])]
    return stacks


def check_budget(base: RunConfig, search: SearchConfig, train_rows: int) -> None:
    """A --time budget must allow at least one epoch of the default run (planning's rough estimate)."""
    if search.seconds is None:
        return
    epoch = estimate_cost([base], train_rows) / expected_epochs(base)
    if search.seconds < epoch:
        raise ConfigError(
            f"--time {search.seconds:g} is too small: one epoch of the default run takes about {epoch:.2g} s here; "
            "give more seconds"
        )


def default_out(base: RunConfig, trials: int) -> Path:
    """runs/NAME-searchN: fixed, so running the same command again continues the search."""
    return paths.check_text(Path("runs") / f"{base.name}-search{trials}", "--out")


def check_out(out: Path) -> None:
    """Before anything is read: a folder that is new, empty, or an earlier search (checked against the plan later)."""
    paths.check_text(out, "--out")
    paths.check_folder_can_exist(out, "--out")
    if out.is_dir() and any(out.iterdir()) and not (out / PLAN).exists():
        raise TrainwellError(f"--out {shown_path(out)} holds other files and no search; give an empty or new folder")


def claim_out(out: Path, plan: Plan) -> bool:
    """Write search.json, or check it against an earlier one; True when continuing an earlier search."""
    record = json.dumps(plan.fingerprint(), sort_keys=True)
    path = out / PLAN
    if path.exists():
        try:
            earlier = json.dumps(json.loads(path.read_text(encoding="utf-8")), sort_keys=True)
        except (OSError, ValueError):
            earlier = None
        if earlier != record:
            raise TrainwellError(
                f"--out {shown_path(out)} holds a different search (another config, count, seed or dials); "
                "give another --out"
            )
        return True
    paths.prepare_dir(out, "--out")
    rundir.write_text_atomic(path, record)
    return False
