"""The report's figures, each answering one question and drawn so it cannot mislead:

- differences.png: how much each variant gains or loses against the reference, paired by seed,
  with its 95% interval: a forest plot around zero, sorted by size. For an ablation it is the
  attribution: what each ingredient is worth. No bars with a cut axis.
- curves.png: the validation metric per epoch; small multiples when more than three variants
  (each in colour over the others in grey), so no line hides another; classical baselines drawn
  and labelled inside the axes; a variant that ran far longer than the rest is cut at their
  length and says so, instead of squeezing them into a corner.
- lr.png: the learning rate per epoch, only when some variant changes it during training.

Every figure is 1050 px wide (the report's column) with fonts readable at that size. Nothing is
drawn for what does not vary: a single variant gets no difference plot.
"""

from __future__ import annotations

import io
import math
from typing import Any

from .figure_layout import fix_margins
from .headline import LEVEL, is_ablation
from .result import ExperimentResult, lower_is_better, metric_words
from .stats import number as _num

DPI = 100
WIDTH = 10.5  # inches: 1050 px at DPI, the report's column width
SMALL_MULTIPLES_FROM = 4  # more variants than this minus one get one panel each
LONG_RUN = 1.5  # a variant that ran this many times longer than the next longest is cut at the others' length
GREEN, RED, GREY = "#1b7a36", "#b3261e", "#777777"
STYLES = ("-", "--", ":", "-.")
BASELINE_STYLES = ((0, (1, 1.5)), (0, (5, 2)), (0, (6, 2, 1, 2)))


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 11,
            "axes.titlesize": 12,
            "legend.fontsize": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt


def warm_up() -> None:
    """Import matplotlib ahead of the report: a compare does it while its runs train."""
    _pyplot()


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


# ---- differences -------------------------------------------------------------------------------


def differences(result: ExperimentResult) -> bytes | None:
    """The forest plot of paired differences to the reference; None with fewer than two finished variants."""
    metric, ref = result.metric, result.experiment.reference
    lower = lower_is_better(metric)
    rows = [r for r in result.summary if r["variant"] != ref and _num(r.get("diff_vs_reference")) is not None]
    if not rows:
        return None
    ablation = is_ablation(result)
    # a variant's gain: how much better than the reference (for an ablation: how much the ingredient is worth)
    sign = (1 if lower else -1) * (1 if ablation else -1)
    rows.sort(key=lambda r: sign * float(r["diff_vs_reference"]))
    plt = _pyplot()
    n_marks = len(_baseline_marks(result, 0.0))
    fig, ax = plt.subplots(figsize=(WIDTH, 1.6 + 0.42 * (len(rows) + n_marks)))
    xs: list[float] = []  # every x drawn, for the axis range
    for y, r in enumerate(rows):
        xs += _difference_row(ax, y, r, lower)
    ax.axvline(0, color="black", lw=1)
    centre = _num(next((r.get(f"{metric}_mean") for r in result.summary if r["variant"] == ref), None))
    labels = [r["variant"] for r in rows]
    for (value, label), style in zip(_baseline_marks(result, centre), BASELINE_STYLES):
        _baseline_row(ax, len(labels), value, style)  # baselines: one row each above the variants
        labels.append(f"{label} (baseline)")
        xs.append(value)
    lo_x, hi_x = min(xs + [0.0]), max(xs + [0.0])
    pad = 0.08 * (hi_x - lo_x or 1.0)
    ax.set_xlim(lo_x - pad, hi_x + 4.5 * pad)  # room on the right for the numbers
    ax.set_ylim(-0.7, len(labels) - 0.3)
    ax.set_yticks(list(range(len(labels))), labels)
    _difference_words(ax, result, lower, ablation)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", color="#e5e5e5")
    return _png(fig)


def _difference_row(ax: Any, y: int, r: dict[str, Any], lower: bool) -> list[float]:
    """One variant's difference and interval at height y; returns the x values it drew."""
    d, lo, hi = float(r["diff_vs_reference"]), _num(r.get("diff_ci_low")), _num(r.get("diff_ci_high"))
    colour = GREY if not r.get("diff_significant") else (GREEN if (d < 0) == lower else RED)
    xs = []
    if lo is not None and hi is not None:
        ax.plot([lo, hi], [y, y], color=colour, lw=2.2, solid_capstyle="butt")
        xs += [lo, hi]
    ax.plot([d], [y], "o", color=colour, ms=7)
    xs.append(d)
    note = f"{d:+.3g}" + (
        f"  [{lo:+.2g}, {hi:+.2g}]" if lo is not None and hi is not None else "  (one seed: no interval)"
    )
    ax.annotate(
        note,
        (max(d, hi if hi is not None else d), y),
        xytext=(6, 0),
        textcoords="offset points",
        va="center",
        fontsize=9,
        color=colour,
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
    )  # readable where it crosses a baseline
    return xs


def _baseline_row(ax: Any, y: int, value: float, style: Any) -> None:
    ax.axvline(value, color=GREY, lw=1, ls=style)
    ax.plot([value], [y], "D", color=GREY, ms=6)
    ax.annotate(
        f"{value:+.3g}", (value, y), xytext=(6, 0), textcoords="offset points", va="center", fontsize=9, color=GREY
    )


def _difference_words(ax: Any, result: ExperimentResult, lower: bool, ablation: bool) -> None:
    """The forest plot's title and x label: what a row shows and which side is better."""
    ref, words = result.experiment.reference, metric_words(result.metric)
    better_side = "left" if lower else "right"
    if ablation:
        ax.set_title(
            f"What each ingredient is worth, {words}, {'lower' if lower else 'higher'} is better\n"
            f"(each row: the {ref} with one ingredient taken away, minus the {ref})"
        )
        ax.set_xlabel(
            f"change in {words} when the ingredient is removed (paired by seed, {LEVEL} interval)\n"
            f"{'right' if lower else 'left'} of 0: the ingredient helps"
        )
    else:
        ax.set_title(
            f"{result.experiment.name}: each variant against {ref}, {words}, {'lower' if lower else 'higher'} is better"
        )
        ax.set_xlabel(
            f"{words} of the variant minus {ref} (paired by seed, {LEVEL} interval)\n{better_side} of 0: "
            f"better than {ref}"
        )


def _baseline_marks(result: ExperimentResult, centre: float | None) -> list[tuple[float, str]]:
    """Classical baselines at their distance from the reference's mean, merged where they coincide."""
    if centre is None:
        return []
    marks = [
        (float(b[result.metric]) - centre, short_name(b))
        for b in result.baselines
        if _num(b.get(result.metric)) is not None
    ]
    return _merge(marks)


def short_name(baseline: dict[str, Any]) -> str:
    """A baseline's name as a plot label: 'noise floor' for the generating function."""
    name = str(baseline["model"])
    return "noise floor" if baseline.get("floor") or "noise floor" in name else name


def _merge(marks: list[tuple[float, str]], tolerance: float = 1e-3, joiner: str = " = ") -> list[tuple[float, str]]:
    """Marks within `tolerance` (relative to their spread) share one line and one label: 'a = b'."""
    out: list[tuple[float, str]] = []
    spread = max((abs(v) for v, _ in marks), default=1.0) or 1.0
    for value, label in sorted(marks):
        if out and abs(value - out[-1][0]) <= tolerance * spread:
            out[-1] = (out[-1][0], f"{out[-1][1]}{joiner}{label}")
        else:
            out.append((value, label))
    return out


# ---- curves ------------------------------------------------------------------------------------


def curve_stats(
    histories: list[list[dict[str, Any]]], key: str
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Per epoch: mean, min and max over the seeds that reached it."""
    by_epoch: dict[int, list[float]] = {}
    for h in histories:
        for row in h:
            v = _num(row.get(key))
            if v is not None:
                by_epoch.setdefault(int(row["epoch"]), []).append(v)
    epochs = sorted(by_epoch)
    return (
        epochs,
        [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs],
        [min(by_epoch[e]) for e in epochs],
        [max(by_epoch[e]) for e in epochs],
    )


def _series(result: ExperimentResult, key: str) -> dict[str, tuple[list[int], list[float], list[float], list[float]]]:
    out = {}
    for variant in result.experiment.variants:
        hs = [h for (v, _), h in result.histories.items() if v == variant and h]
        stats = curve_stats(hs, key) if hs else ([], [], [], [])
        if stats[0]:
            out[variant] = stats
    return out


def _epoch_limit(series: dict[str, Any]) -> tuple[int | None, str | None]:
    """(last epoch to show, the variant that is cut) when one variant ran far longer than every other."""
    ends = sorted(((s[0][-1], v) for v, s in series.items()), reverse=True)
    if len(ends) < 2 or ends[0][0] <= LONG_RUN * ends[1][0]:
        return None, None
    return int(math.ceil(ends[1][0] * 1.1)), ends[0][1]


def _y_range(series: dict[str, Any], values: list[float], lower: bool) -> tuple[float, float]:
    """From the best value reached to as far again beyond the worst final one: early epochs of a
    regression would otherwise flatten everything else; baselines always inside."""
    finals = [s[1][-1] for s in series.values()] + values
    bests = [min(s[1]) if lower else max(s[1]) for s in series.values()] + values
    if lower:
        lo, hi = min(bests), max(finals)
        span = (hi - lo) or abs(hi) * 0.05 or 1.0
        return lo - 0.08 * span, hi + span
    lo, hi = min(finals), max(bests)
    span = (hi - lo) or abs(hi) * 0.05 or 1.0
    return lo - span, hi + 0.08 * span


def curves(result: ExperimentResult) -> bytes | None:
    metric = result.metric
    key = metric.replace("test_", "val_")
    series = _series(result, key)
    if not series:
        key, series = "val_loss", _series(result, "val_loss")
    if not series:
        return None
    lower = lower_is_better(metric) if key != "val_loss" else True
    baselines = (
        [
            (float(b[metric]), f"{short_name(b)} {float(b[metric]):.4g}")
            for b in result.baselines
            if _num(b.get(metric)) is not None
        ]
        if key != "val_loss"
        else []
    )
    marks = _merge(baselines, tolerance=2e-3, joiner=" ≈ ")  # lines this close are one line on the plot
    words = metric_words(key.replace("val_", "test_")).replace("test", "validation")
    title = f"{result.experiment.name}: {words} per epoch (line: mean over seeds; band: min to max)"
    return _panels(series, title, _y_range(series, [v for v, _ in marks], lower), marks=marks)


def _panels(
    series: dict[str, Any],
    title: str,
    y_range: tuple[float, float] | None,
    marks: list[tuple[float, str]] = (),
    log: bool = False,
    ylabel: str = "",
) -> bytes:  # type: ignore[assignment]
    """One panel with a line style per variant, or from SMALL_MULTIPLES_FROM variants one panel each
    (the others in grey behind), sharing axes; horizontal marks drawn in every panel, labelled once."""
    limit, cut = _epoch_limit(series)
    plt = _pyplot()
    colours = plt.get_cmap("tab10")
    names = list(series)
    many = len(names) >= SMALL_MULTIPLES_FROM
    cols = min(4, math.ceil(len(names) / math.ceil(len(names) / 4))) if many else 1
    rows = math.ceil(len(names) / cols) if many else 1
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(WIDTH, (2.6 * rows + 0.9) if many else 4.8),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    flat = list(axes.flat)
    for i, name in enumerate(names):
        ax = flat[i] if many else flat[0]
        e, mean, lo, hi = series[name]
        if many:
            for other in names:
                if other != name:
                    ax.plot(series[other][0], series[other][1], color="#c8c8c8", lw=0.9)
            ax.set_title(name + (f"\n(ran to epoch {e[-1]}, cut here)" if name == cut else ""), fontsize=11)
        label = name + (f" (ran to epoch {e[-1]}, cut)" if name == cut else "")
        ax.plot(e, mean, color=colours(i % 10), ls="-" if many else STYLES[i % len(STYLES)], lw=1.8, label=label)
        ax.fill_between(e, lo, hi, color=colours(i % 10), alpha=0.15, lw=0)
    visible = flat[: len(names) if many else 1]
    handles = _panel_axes(visible, len(names), cols, many, marks, log, y_range, limit)
    if ylabel:
        for ax in visible[::cols]:
            ax.set_ylabel(ylabel)
    for ax in flat[len(visible) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=12)
    legend = many and bool(handles)
    if legend:  # the baselines, labelled once for every panel
        fig.legend(handles=handles, loc="lower center", ncols=min(3, len(handles)), frameon=False)
    elif not many:
        flat[0].legend(loc="best")
    title_lines = (2 if cut else 1) if many else 0
    fix_margins(fig, rows, cols, title_lines, legend, bool(ylabel))
    return _png(fig)


def _panel_axes(
    visible: list[Any],
    n: int,
    cols: int,
    many: bool,
    marks: list[tuple[float, str]],
    log: bool,
    y_range: tuple[float, float] | None,
    limit: int | None,
) -> list[Any]:
    """Axes, scales and baseline marks of each panel shown; returns the last panel's mark handles."""
    from matplotlib.ticker import NullLocator

    handles = []
    for i, ax in enumerate(visible):
        if i + cols >= n or not many:  # nothing below it: its x axis is labelled
            ax.set_xlabel("epoch")
        handles = [
            ax.axhline(value, color=GREY, lw=1.1, ls=style, label=f"{label} (test)")
            for (value, label), style in zip(marks, BASELINE_STYLES)
        ]
        if log:
            ax.set_yscale("log")
            ax.yaxis.set_minor_locator(NullLocator())  # a tick per decade is enough; minor ones cost a second
        if y_range:
            ax.set_ylim(*y_range)
        if limit:
            ax.set_xlim(0, limit)
        ax.grid(color="#eeeeee")
        ax.tick_params(labelbottom=True)
    return handles


# ---- learning rate -----------------------------------------------------------------------------


def learning_rates(result: ExperimentResult) -> bytes | None:
    """Only when some variant's learning rate changes during training; identical schedules share one line."""
    series = _series(result, "lr")
    if not any(max(s[1]) > min(s[1]) * (1 + 1e-9) for s in series.values()):
        return None
    groups: dict[tuple[float, ...], list[str]] = {}
    for name, s in series.items():
        groups.setdefault(tuple(round(v, 12) for v in s[1]), []).append(name)
    shared = {", ".join(names): series[names[0]] for names in groups.values()}
    limit, _ = _epoch_limit(shared)
    shown = [v for s in shared.values() for e, v in zip(s[0], s[1]) if limit is None or e <= limit]
    y_range = (min(shown) / 1.5, max(shown) * 1.5)  # log axis: what is shown, with a margin
    title = f"{result.experiment.name}: learning rate per epoch "
    title += "(mean over seeds; variants with the same schedule share a line)"
    return _panels(shared, title, y_range, log=True, ylabel="learning rate")


FIGURES = {"differences.png": differences, "curves.png": curves, "lr.png": learning_rates}


def make_figures(result: ExperimentResult) -> dict[str, bytes]:
    """PNG bytes of each figure that has something to show, also written under OUT/plots/ (stale ones removed)."""
    pngs = {name: data for name, draw in FIGURES.items() if (data := draw(result)) is not None}
    folder = result.out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*FIGURES, "test_metric.png"):  # test_metric.png: the bar chart of earlier versions
        if name not in pngs and (folder / name).exists():
            (folder / name).unlink()
    for name, data in pngs.items():
        (folder / name).write_bytes(data)
    return pngs
