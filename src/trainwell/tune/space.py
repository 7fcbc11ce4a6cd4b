"""The searched space: dials around the default config, as data.

Each dial names the config field(s) it sets and the values it may take; every range is read
from the base config (the `tabular` preset unless told otherwise), so a changed default moves
the space with it. Layout dials (width, depth, batch size, numeric embeddings) take few values, because each
distinct layout is its own stack (planning.STACK_KEY); the other dials vary freely within a
stack. Dropout stays above zero so that every configuration of a layout shares one stack.

A search varies the in-stack dials and numeric embeddings (none or periodic) unless told otherwise
(`--dials`): two stacks. The embedding bought the most of any dial on the 17-table benchmark (churn,
chicago and deliveries); each further layout is one more stack (with width and depth too, attrition
took 7.9× the default's CPU time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import RunConfig
from ..errors import ConfigError
from ..planning import expected_epochs
from ..scaling import MAX_EMBEDDED_COLUMNS, auto_numeric_embedding

LOG, UNIFORM, CHOICE = "log", "uniform", "choice"
LAYOUT_DIALS = ("width", "depth", "batch_size", "numeric_embedding")  # each value is another stack
DEFAULT_LAYOUT_DIALS = ("numeric_embedding",)  # the layout dials searched when --dials names none
# in-stack dials searched only when named: members that smooth their labels score a worse validation log loss
# (digits: 0.3-1.0 against 0.02-0.07), so halving on the monitored loss stopped them all at the first rung and
# three quarters of a classification search (smoothing 0.05, 0.1, 0.2) bought nothing
NAMED_ONLY_DIALS = ("label_smoothing",)


@dataclass(frozen=True)
class Dial:
    name: str  # what the report calls it
    kind: str  # log (log-uniform between low and high), uniform, or choice (one of values)
    low: float = 0.0
    high: float = 0.0
    values: tuple[Any, ...] = ()
    why: str = ""  # one phrase for the documentation and the report

    def value(self, u: float) -> Any:
        """The dial's value at u in [0, 1) (one coordinate of a quasi-random point)."""
        u = min(max(u, 0.0), 1.0 - 1e-12)
        if self.kind == LOG:
            return float(self.low * (self.high / self.low) ** u)
        if self.kind == UNIFORM:
            return float(self.low + (self.high - self.low) * u)
        return self.values[int(u * len(self.values))]

    def describe(self) -> str:
        if self.kind == CHOICE:
            return "one of " + ", ".join(str(v) for v in self.values)
        scale = "log-uniform" if self.kind == LOG else "uniform"
        return f"{scale} in [{self.low:.3g}, {self.high:.3g}]"


def default_values(base: RunConfig) -> dict[str, Any]:
    """Each dial's value in the base config: the default the search starts from."""
    return {
        "lr": base.optim.lr,
        "weight_decay": base.optim.weight_decay,
        "dropout": base.model.dropout,
        "width": base.model.hidden[0],
        "depth": len(base.model.hidden),
        "batch_size": base.train.batch_size,
        "schedule": base.schedule.name,
        "label_smoothing": base.train.label_smoothing,
        "numeric_embedding": base.model.numeric_embedding,
    }


def space_around(base: RunConfig, task: str, train_rows: int, embeddable: int | None = None) -> list[Dial]:
    """Every dial that applies to this task, its range centred on the base config's value;
    batch sizes larger than the training rows are left out."""
    d = default_values(base)
    if isinstance(d["lr"], str):
        raise ConfigError('optim.lr = "auto" cannot be searched around; give a number as the default learning rate')
    wd = d["weight_decay"] or 0.01  # a default of 0 still gets a range around the usual 0.01
    dials = [
        Dial("lr", LOG, d["lr"] / 4, d["lr"] * 8, why="AdamW's step size"),
        Dial("weight_decay", LOG, wd / 100, wd * 10, why="decoupled weight decay"),
        Dial("dropout", UNIFORM, 0.02, 0.5, why="after each hidden activation"),
        Dial("width", CHOICE, values=(d["width"], 2 * d["width"]), why="units per hidden layer"),
        Dial("depth", CHOICE, values=(d["depth"], d["depth"] + 1), why="hidden layers"),
        *(
            [Dial("batch_size", CHOICE, values=_batches(d["batch_size"], train_rows), why="rows per step")]
            if isinstance(d["batch_size"], int)  # a batch size chosen from the table ("auto") is left to that rule
            else []
        ),
        Dial("schedule", CHOICE, values=_schedules(d["schedule"]), why="how the learning rate moves"),
        # on the benchmark, periodic embeddings helped the tables where boosting's thresholds win and hurt the signal
        # table (README): a choice for the data at hand, so the search may try the other side
        Dial(
            "numeric_embedding",
            CHOICE,
            values=_embeddings(d["numeric_embedding"], train_rows, embeddable),
            why="numeric columns' features",
        ),
    ]
    if task == "classification":
        dials.append(Dial("label_smoothing", CHOICE, values=(0.0, 0.05, 0.1, 0.2), why="cross-entropy smoothing"))
    return dials


def _batches(default: int, train_rows: int) -> tuple[int, ...]:
    return (default, 4 * default) if 4 * default <= train_rows else (default,)


def _embeddings(default: str, train_rows: int, embeddable: int | None) -> tuple[str, ...]:
    """The default's own setting (auto kept as auto, so that its configurations share the default's
    stack) and the other side of what it resolves to on this table (its rows and `embeddable` columns), but
    no periodic side where the preset leaves a table out for having too many columns to embed."""
    resolved = auto_numeric_embedding(default, train_rows, embeddable)
    if resolved == "none" and embeddable is not None and embeddable > MAX_EMBEDDED_COLUMNS:
        # too many columns for the preset's embeddings (scaling.py): they are the costliest stack (caravan's 85
        # columns: the search 3.5x the default's CPU) and bought nothing on the wide tables (caravan, digits, signal)
        return (default,)
    return (default, "periodic") if resolved == "none" else (default, "none")


def _schedules(default: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys((default, "cosine", "none")))


def restrict(dials: list[Dial], names: list[str] | None, task: str) -> list[Dial]:
    """The dials named (when names is None: every one that varies within a stack but NAMED_ONLY_DIALS,
    and DEFAULT_LAYOUT_DIALS); an unknown name or an empty result is bad input."""
    if names is None:
        named_only = [n for n in (*LAYOUT_DIALS, *NAMED_ONLY_DIALS) if n not in DEFAULT_LAYOUT_DIALS]
        return [d for d in dials if d.name not in named_only]
    known = {d.name for d in dials}
    every = ("lr", "weight_decay", "dropout", *LAYOUT_DIALS, "schedule", "label_smoothing")
    for n in names:
        if n not in every:
            raise ConfigError(f"search dial {n!r} is unknown; allowed: {', '.join(every)}")
    kept = [d for d in dials if d.name in names]
    if not kept:
        dropped = ", ".join(n for n in names if n not in known) or "none"
        raise ConfigError(
            f"the search space is empty: no dial applies to this {task} task (named: {dropped}); "
            f"name at least one of {', '.join(sorted(known))}"
        )
    return kept


def apply(base: RunConfig, values: dict[str, Any], name: str) -> RunConfig:
    """The base config with these dial values set: one member of the search (one seed, no ensemble)."""
    raw = base.to_dict()
    raw["name"] = name
    raw["train"]["members"] = 1  # the search's ensemble is chosen from its members, not seeds
    raw["train"]["curves"] = False  # the report covers the members; a plot each would cost ~0.3 s
    for dial, value in values.items():
        if dial == "lr":
            raw["optim"]["lr"] = value
        elif dial == "weight_decay":
            raw["optim"]["weight_decay"] = value
        elif dial == "dropout":
            raw["model"]["dropout"] = value
        elif dial == "label_smoothing":
            raw["train"]["label_smoothing"] = value
        elif dial == "batch_size":
            raw["train"]["batch_size"] = value
        elif dial == "schedule":
            raw["schedule"] = _schedule(base, value)
        elif dial == "numeric_embedding":
            raw["model"]["numeric_embedding"] = value
    width = values.get("width", base.model.hidden[0])
    depth = values.get("depth", len(base.model.hidden))
    if "width" in values or "depth" in values:
        raw["model"]["hidden"] = [int(width)] * int(depth)
    return RunConfig.from_dict(raw)


def _schedule(base: RunConfig, name: str) -> dict[str, Any]:
    """The base schedule when it is the one named; cosine spans the epochs early stopping usually allows."""
    if name == base.schedule.name:
        return base.to_dict()["schedule"]
    if name == "cosine":  # decays within the epochs a run usually trains (about three patiences), not max_epochs
        return {"name": "cosine", "t_max": max(1, expected_epochs(base)), "eta_min": 0.0}
    return {"name": name}
