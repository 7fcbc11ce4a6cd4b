"""Advice read from a run's recorded history: regularisation is a dial, and the curves say which
way to turn it.

Every rule is a pure function of the history rows (dicts with epoch, train_loss, val_loss,
lr, grad_norm_mean, clipped_fraction, ...) and a little context from the config, and returns
an Advice with the numbers behind it, or None. Nothing here needs a model.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

Row = dict[str, Any]

MIN_EPOCHS = 5  # fewer epochs than this say nothing about trends
GAP_GROWTH = 0.10  # the train–val gap grew by more than this share of the best validation loss
VAL_RISE = 0.05  # ... and validation loss ended this share above its best
STALL_DROP = 0.10  # training loss fell by less than this share from the first epoch to its lowest
HELD_BACK = 2.0  # training loss (regularisation on) over this many times the validation loss (off); the recipe's Dropout 0.2 with BatchNorm alone gives ~1.6
CLIP_FACTOR = 10.0  # median pre-clip gradient norm this many times clip_norm: lr too high
LATE_BEST = 0.2  # best epoch earlier than the last by this share of the epochs run (and MIN_EPOCHS)

# kinds, so summaries can count them
REGULARISE_MORE, REGULARISE_LESS, LR_TOO_HIGH, EARLY_STOPPING, NOT_FINITE = (
    "regularise more", "regularise less", "learning rate too high", "early stopping", "non-finite loss",
)


@dataclass(frozen=True)
class Advice:
    kind: str
    message: str
    numbers: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """What the rules need from the run's config and end."""

    clip_norm: float | None = None
    max_epochs: int | None = None
    early_stopping: bool = False
    patience: int = 0
    stop_reason: str | None = None


def _best(history: Sequence[Row]) -> Row:
    return min(history, key=lambda r: r["val_loss"])


def growing_gap(history: Sequence[Row], ctx: Context = Context()) -> Advice | None:
    """Validation loss rose from its best while training loss kept falling: overfitting."""
    if len(history) < MIN_EPOCHS:
        return None
    best, last = _best(history), history[-1]
    gap_best, gap_last = best["val_loss"] - best["train_loss"], last["val_loss"] - last["train_loss"]
    grew = gap_last - gap_best > GAP_GROWTH * best["val_loss"]
    rose = last["val_loss"] > best["val_loss"] * (1 + VAL_RISE)
    if not (grew and rose and last["train_loss"] < best["train_loss"]):
        return None
    return Advice(
        REGULARISE_MORE,
        f"validation loss rose from {best['val_loss']:.4g} (epoch {best['epoch']}) to {last['val_loss']:.4g} (epoch {last['epoch']}) "
        f"while training loss fell from {best['train_loss']:.4g} to {last['train_loss']:.4g}; the gap grew from {gap_best:.3g} to {gap_last:.3g}: "
        "regularise more (dropout, weight decay) or stop earlier",
        {"best_epoch": best["epoch"], "gap_at_best": gap_best, "gap_at_end": gap_last},
    )


def stalled_training(history: Sequence[Row], ctx: Context = Context()) -> Advice | None:
    """Training loss that barely falls, or stays far above validation loss: too much regularisation or too small a step."""
    if len(history) < MIN_EPOCHS:
        return None
    first = history[0]["train_loss"]
    lowest = min(r["train_loss"] for r in history)
    last = history[-1]
    if first > 0 and (first - lowest) / first < STALL_DROP:
        return Advice(
            REGULARISE_LESS,
            f"training loss fell only {100 * (first - lowest) / first:.1f}% over {len(history)} epochs ({first:.4g} → {lowest:.4g}): "
            "regularise less or raise the learning rate",
            {"first_train_loss": first, "lowest_train_loss": lowest},
        )
    if last["val_loss"] > 0 and last["train_loss"] > HELD_BACK * last["val_loss"]:
        ratio = last["train_loss"] / last["val_loss"]
        return Advice(
            REGULARISE_LESS,
            f"at the last epoch the training loss ({last['train_loss']:.4g}, regularisation on) is {ratio:.1f}× the validation loss "
            f"({last['val_loss']:.4g}, regularisation off): regularisation holds training back; regularise less",
            {"train_loss": last["train_loss"], "val_loss": last["val_loss"], "ratio": ratio},
        )
    return None


def clipping_too_often(history: Sequence[Row], ctx: Context = Context()) -> Advice | None:
    """Pre-clip gradient norms routinely far above the clip threshold: the learning rate is too high."""
    if not ctx.clip_norm or not history:
        return None
    median = statistics.median(r["grad_norm_mean"] for r in history)
    if median <= CLIP_FACTOR * ctx.clip_norm:
        return None
    clipped = statistics.median(r.get("clipped_fraction", 0.0) for r in history)
    return Advice(
        LR_TOO_HIGH,
        f"the median pre-clip gradient norm is {median:.3g}, {median / ctx.clip_norm:.0f}× the clip threshold {ctx.clip_norm:g} "
        f"({100 * clipped:.0f}% of steps clipped): the learning rate is too high, or something upstream is unstable",
        {"median_grad_norm": median, "clip_norm": ctx.clip_norm, "clipped_fraction": clipped},
    )


def early_stopping_value(history: Sequence[Row], ctx: Context = Context()) -> Advice | None:
    """The best epoch came long before the last: what early stopping saved, or would save."""
    if len(history) < MIN_EPOCHS:
        return None
    best, last = _best(history)["epoch"], history[-1]["epoch"]
    late = last - best
    if late < max(MIN_EPOCHS, LATE_BEST * last):
        return None
    if ctx.stop_reason == "early_stop" and ctx.max_epochs:
        saved = ctx.max_epochs - last
        return Advice(
            EARLY_STOPPING,
            f"best epoch {best}; early stopping ended the run at epoch {last} of {ctx.max_epochs} and saved {saved} epochs",
            {"best_epoch": best, "epochs_run": last, "epochs_saved": saved},
        )
    would = max(0, late - (ctx.patience or 0))
    if would == 0:
        return None
    return Advice(
        EARLY_STOPPING,
        f"best epoch {best} of {last}: the last {late} epochs did not improve validation loss; "
        f"early stopping (patience {ctx.patience}) would have saved {would} epochs",
        {"best_epoch": best, "epochs_run": last, "epochs_saved": would},
    )


RULES: list[Callable[[Sequence[Row], Context], Advice | None]] = [growing_gap, stalled_training, clipping_too_often, early_stopping_value]


def advise(history: Sequence[Row], ctx: Context = Context(), error: str | None = None) -> list[Advice]:
    """Every rule's advice for one run, in a fixed order."""
    out: list[Advice] = []
    if ctx.stop_reason == "not_finite":
        out.append(Advice(NOT_FINITE, f"{error or 'the loss became non-finite'}: lower the learning rate or clip gradients"))
    rows = [r for r in history if _finite_row(r)]
    out += [a for rule in RULES if (a := rule(rows, ctx)) is not None]
    return out


def _finite_row(r: Row) -> bool:
    try:
        return all(float(r[k]) == float(r[k]) and abs(float(r[k])) != float("inf") for k in ("train_loss", "val_loss"))
    except (KeyError, TypeError, ValueError):
        return False


def context_from_config(cfg: Any, stop_reason: str | None) -> Context:
    """A Context from a RunConfig (or its dict form)."""
    train = cfg["train"] if isinstance(cfg, dict) else cfg.to_dict()["train"]
    return Context(
        clip_norm=train.get("clip_norm"),
        max_epochs=train.get("max_epochs"),
        early_stopping=bool(train.get("early_stopping")),
        patience=int(train.get("patience") or 0),
        stop_reason=stop_reason,
    )


def summarise(per_run: Sequence[list[Advice]]) -> list[str]:
    """One line per kind of advice over a variant's runs: how many runs it fired for, and the first example."""
    by_kind: dict[str, list[Advice]] = defaultdict(list)
    for advices in per_run:
        for a in advices:
            by_kind[a.kind].append(a)
    lines = []
    for kind, items in by_kind.items():
        extra = ""
        if kind == EARLY_STOPPING:
            saved = [a.numbers.get("epochs_saved", 0) for a in items]
            extra = f" (median {statistics.median(saved):g} epochs saved)"
        lines.append(f"{kind}: {len(items)} of {len(per_run)} runs{extra}; e.g. {items[0].message}")
    return lines


def for_result(result: Any) -> list[str]:
    """Advice messages for a finished trainwell.runner.RunResult (what `trainwell train` prints)."""
    if result.config is None or result.stop_reason == "interrupted":
        return []
    advices = advise(result.history, context_from_config(result.config, result.stop_reason), result.metrics.get("error"))
    return [f"{a.kind}: {a.message}" for a in advices]
