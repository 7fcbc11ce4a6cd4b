"""Advice read from a run's recorded history: regularisation is a dial, and the curves say which
way to turn it.

Every rule is a pure function of the history rows (dicts with epoch, train_loss, val_loss,
lr, grad_norm_mean, clipped_fraction, ...) and a little context from the config, and returns
an Advice with the numbers behind it, or None. Nothing here needs a model.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Sequence

from . import stop_reasons
from .early_stopping import replayed
from .metric_names import mode_of


def median(values: Iterable[float]) -> float:
    """The median (statistics.median without importing the statistics module: ~0.1 s at start-up)."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        raise ValueError("median of no values")
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


Row = dict[str, Any]

MIN_EPOCHS = 5  # fewer epochs than this say nothing about trends
GAP_GROWTH = 0.10  # the train–val gap grew by more than this share of the best validation loss
VAL_RISE = 0.05  # ... and validation loss ended this share above its best
STALL_DROP = 0.10  # training loss fell by less than this share from the first epoch to its lowest
HELD_BACK = 2.0  # train loss (regularisation on) ÷ val loss (off) above this; Dropout 0.2 + BatchNorm give ~1.6
CLIP_FACTOR = 10.0  # median pre-clip gradient norm this many times clip_norm: lr too high
LATE_BEST = 0.2  # best epoch earlier than the last by this share of the epochs run (and MIN_EPOCHS)

# kinds, so summaries can count them
REGULARISE_MORE, REGULARISE_LESS, LR_TOO_HIGH, EARLY_STOPPING, NOT_FINITE = (
    "regularise more",
    "regularise less",
    "learning rate too high",
    "early stopping",
    "non-finite loss",
)
KEEP = "keep the regularisation"  # a sweep showed both directions scoring worse


def plural(n: float, word: str) -> str:
    """'1 epoch', '3 epochs', '1.5 epochs'."""
    return f"{n:g} {word}{'' if n == 1 else 's'}"


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
    monitor: str = "val_loss"  # what early stopping watched, and in which direction
    mode: str = "min"
    # classification's label smoothing: it lifts the training loss and not the validation loss (losses.py), so a
    # training loss above validation then measures the smoothing, not regularisation holding training back
    label_smoothing: float = 0.0


def _best(history: Sequence[Row]) -> Row:
    return min(history, key=lambda r: r["val_loss"])


def _best_monitored(history: Sequence[Row], ctx: Context) -> int:
    """The best epoch by the run's own rule (its monitor and mode), as metrics.json gives it."""
    best = replayed(list(history), ctx.monitor, ctx.mode).best_epoch
    return best if best is not None else _best(history)["epoch"]


def growing_gap(history: Sequence[Row], ctx: Context = Context()) -> Advice | None:
    """Validation loss rose from its best while training loss kept falling: overfitting."""
    if len(history) < MIN_EPOCHS:
        return None
    best, last = _best(history), history[-1]
    gap_best, gap_last = best["val_loss"] - best["train_loss"], last["val_loss"] - last["train_loss"]
    grew = gap_last - gap_best > GAP_GROWTH * best["val_loss"]
    rose = last["val_loss"] > best["val_loss"] * (1 + VAL_RISE)
    # training loss above validation loss is regularisation at work, not overfitting: the other rule speaks then
    # (unless label smoothing lifts the training loss: then only the gap's growth and the rise count)
    below = last["train_loss"] < last["val_loss"] or ctx.label_smoothing > 0
    if not (grew and rose and last["train_loss"] < best["train_loss"] and below):
        return None
    return Advice(
        REGULARISE_MORE,
        f"validation loss rose from {best['val_loss']:.4g} (epoch {best['epoch']}) to {last['val_loss']:.4g} "
        f"(epoch {last['epoch']}) while training loss fell from {best['train_loss']:.4g} to "
        f"{last['train_loss']:.4g}; the gap grew from {gap_best:.3g} to {gap_last:.3g}: regularise more (dropout, "
        f"weight decay) or stop earlier (rule: the gap grew by over {GAP_GROWTH:.0%} of the best validation loss "
        f"and validation loss ended over {VAL_RISE:.0%} above its best)",
        {"best_epoch": best["epoch"], "gap_at_best": gap_best, "gap_at_end": gap_last},
    )


def stalled_training(history: Sequence[Row], ctx: Context = Context()) -> Advice | None:
    """Training loss that barely falls or stays far above validation loss: too much regularisation or too small a
    step."""
    if len(history) < MIN_EPOCHS:
        return None
    first = history[0]["train_loss"]
    lowest = min(r["train_loss"] for r in history)
    last = history[-1]
    if first > 0 and (first - lowest) / first < STALL_DROP:
        return Advice(
            REGULARISE_LESS,
            _stall_message(first, lowest, len(history), raise_lr=True),
            {"first_train_loss": first, "lowest_train_loss": lowest, "epochs": len(history)},
        )
    if ctx.label_smoothing == 0 and last["val_loss"] > 0 and last["train_loss"] > HELD_BACK * last["val_loss"]:
        ratio = last["train_loss"] / last["val_loss"]
        return Advice(
            REGULARISE_LESS,
            f"at the last epoch the training loss ({last['train_loss']:.4g}, regularisation on) is {ratio:.1f}× "
            f"the validation loss ({last['val_loss']:.4g}, regularisation off): regularisation holds training back; "
            "regularise less "
            f"(rule: over {HELD_BACK:g}×; Dropout 0.2 with BatchNorm alone gives about 1.6×)",
            {"train_loss": last["train_loss"], "val_loss": last["val_loss"], "ratio": ratio},
        )
    return None


def _stall_message(first: float, lowest: float, epochs: int, raise_lr: bool) -> str:
    return (
        f"training loss fell only {100 * (first - lowest) / first:.1f}% over {plural(epochs, 'epoch')} "
        f"({first:.4g} → {lowest:.4g}): regularise less{' or raise the learning rate' if raise_lr else ''} "
        f"(rule: training loss fell by less than {STALL_DROP:.0%})"
    )


def clipping_too_often(history: Sequence[Row], ctx: Context = Context()) -> Advice | None:
    """Pre-clip gradient norms routinely far above the clip threshold: the learning rate is too high."""
    if not ctx.clip_norm or not history:
        return None
    norm = median(r["grad_norm_mean"] for r in history)
    if norm <= CLIP_FACTOR * ctx.clip_norm:
        return None
    clipped = median(r.get("clipped_fraction", 0.0) for r in history)
    return Advice(
        LR_TOO_HIGH,
        f"the median pre-clip gradient norm is {norm:.3g}, {norm / ctx.clip_norm:.0f}× the clip threshold "
        f"{ctx.clip_norm:g} ({100 * clipped:.0f}% of steps clipped): the learning rate is too high, "
        "or something upstream is unstable "
        f"(rule: median over {CLIP_FACTOR:g}× the threshold)",
        {"median_grad_norm": norm, "clip_norm": ctx.clip_norm, "clipped_fraction": clipped},
    )


def early_stopping_value(history: Sequence[Row], ctx: Context = Context()) -> Advice | None:
    """The best epoch came long before the last: what early stopping saved, or would save."""
    if len(history) < MIN_EPOCHS:
        return None
    best, last = _best_monitored(history, ctx), history[-1]["epoch"]
    late = last - best
    if late < max(MIN_EPOCHS, LATE_BEST * last):
        return None
    if ctx.stop_reason == "early_stop" and ctx.max_epochs:
        saved = ctx.max_epochs - last
        return Advice(
            EARLY_STOPPING,
            f"best epoch {best}; early stopping ended the run at epoch {last} of {ctx.max_epochs} and saved "
            f"{plural(saved, 'epoch')}",
            {"best_epoch": best, "epochs_run": last, "epochs_saved": saved, "stopped": 1.0},
        )
    would = max(0, late - (ctx.patience or 0))
    if would == 0:
        return None
    return Advice(
        EARLY_STOPPING,
        f"best epoch {best} of {last}: the last {plural(late, 'epoch')} did not improve "
        f"{'validation loss' if ctx.monitor == 'val_loss' else ctx.monitor}; "
        f"early stopping (patience {ctx.patience}) would have saved {plural(would, 'epoch')} "
        f"(rule: best epoch at least {MIN_EPOCHS} and {LATE_BEST:.0%} of the epochs before the last)",
        {"best_epoch": best, "epochs_run": last, "epochs_saved": would},
    )


RULES: list[Callable[[Sequence[Row], Context], Advice | None]] = [
    growing_gap,
    stalled_training,
    clipping_too_often,
    early_stopping_value,
]


def advise(history: Sequence[Row], ctx: Context = Context(), error: str | None = None) -> list[Advice]:
    """Every rule's advice for one run, in a fixed order."""
    out: list[Advice] = []
    if ctx.stop_reason == stop_reasons.NOT_FINITE:
        out.append(
            Advice(NOT_FINITE, f"{error or 'the loss became non-finite'}: lower the learning rate or clip gradients")
        )
    rows = [r for r in history if _finite_row(r)]
    out += [a for rule in RULES if (a := rule(rows, ctx)) is not None]
    return reconcile(out)


def reconcile(advices: list[Advice]) -> list[Advice]:
    """The rules read together, so one run never gets opposite advice:
    - "regularise less" beats "regularise more": training loss that stays above validation loss, or
      will not fall, is regularisation holding training back, whatever validation loss did;
    - with the learning rate too high, "regularise less" no longer suggests raising it."""
    kinds = {a.kind for a in advices}
    out = [a for a in advices if not (a.kind == REGULARISE_MORE and REGULARISE_LESS in kinds)]
    if LR_TOO_HIGH in kinds:
        out = [
            replace(
                a,
                message=_stall_message(
                    a.numbers["first_train_loss"],
                    a.numbers["lowest_train_loss"],
                    int(a.numbers["epochs"]),
                    raise_lr=False,
                ),
            )
            if a.kind == REGULARISE_LESS and "epochs" in a.numbers
            else a
            for a in out
        ]
    return out


def _finite_row(r: Row) -> bool:
    try:
        return all(float(r[k]) == float(r[k]) and abs(float(r[k])) != float("inf") for k in ("train_loss", "val_loss"))
    except (KeyError, TypeError, ValueError):
        return False


def context_from_config(cfg: Any, stop_reason: str | None) -> Context:
    """A Context from a RunConfig (or its dict form)."""
    train = cfg["train"] if isinstance(cfg, dict) else cfg.to_dict()["train"]
    monitor = train.get("monitor") or "val_loss"
    return Context(
        clip_norm=train.get("clip_norm"),
        max_epochs=train.get("max_epochs"),
        early_stopping=bool(train.get("early_stopping")),
        patience=int(train.get("patience") or 0),
        stop_reason=stop_reason,
        monitor=monitor,
        mode=train.get("mode") if train.get("mode") in ("min", "max") else mode_of(monitor),
        label_smoothing=float(train.get("label_smoothing") or 0.0),
    )


def summarise(per_run: Sequence[list[Advice]]) -> list[str]:
    """One line per kind of advice over a variant's runs: how many runs it fired for, and the first
    example; runs that disagree on the direction of regularisation get one line saying so."""
    by_kind = _by_kind(per_run)
    lines = []
    for kind, items in by_kind.items():
        extra = ""
        if kind == EARLY_STOPPING:
            saved = [a.numbers.get("epochs_saved", 0) for a in items]
            extra = f" (median {plural(round(median(saved)), 'epoch')} saved)"
        lines.append(f"{kind}: {len(items)} of {plural(len(per_run), 'run')}{extra}; e.g. {items[0].message}")
    if REGULARISE_MORE in by_kind and REGULARISE_LESS in by_kind:
        more, less = len(by_kind[REGULARISE_MORE]), len(by_kind[REGULARISE_LESS])
        lines.insert(
            0,
            f"regularisation: the runs disagree (more in {more}, less in {less} of "
            f"{plural(len(per_run), 'run')}); the curves do not settle which way",
        )
    return lines


def brief(per_run: Sequence[list[Advice]]) -> str:
    """At most one terminal line for a variant: the kinds of advice and in how many runs; '' when none."""
    by_kind = _by_kind(per_run)
    if REGULARISE_MORE in by_kind and REGULARISE_LESS in by_kind:
        more, less = len(by_kind.pop(REGULARISE_MORE)), len(by_kind.pop(REGULARISE_LESS))
        disagree = f"regularisation unclear (more in {more} of {len(per_run)}, less in {less} of {len(per_run)})"
    else:
        disagree = ""
    parts = [disagree] if disagree else []
    for kind, items in by_kind.items():
        if kind == EARLY_STOPPING:
            saved = round(median(a.numbers.get("epochs_saved", 0) for a in items))
            did = all(a.numbers.get("stopped") for a in items)
            kind = f"early stopping {'saved' if did else 'would save'} {plural(saved, 'epoch')}"
        parts.append(f"{kind} ({len(items)} of {len(per_run)})")
    return ", ".join(parts)


def _by_kind(per_run: Sequence[list[Advice]]) -> dict[str, list[Advice]]:
    by_kind: dict[str, list[Advice]] = defaultdict(list)
    for advices in per_run:
        for a in advices:
            by_kind[a.kind].append(a)
    return dict(by_kind)


def for_result(result: Any) -> list[str]:
    """Advice messages for a finished trainwell.runner.RunResult (what `trainwell train` prints)."""
    if result.config is None or result.stop_reason == stop_reasons.INTERRUPTED:
        return []
    advices = advise(
        result.history, context_from_config(result.config, result.stop_reason), result.metrics.get("error")
    )
    return [f"{a.kind}: {a.message}" for a in advices]
