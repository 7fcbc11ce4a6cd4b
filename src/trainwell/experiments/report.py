"""What a compare writes besides the run directories: summary.csv, report.md and a
self-contained report.html (tables, advice and plots embedded as base64 PNG).

The summary has one row per variant: mean, std and 95% Student-t interval over seeds of the
test metric, epochs and wall seconds, and the paired difference to the reference variant
over the seeds both finished.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import rundir
from .spec import Experiment
from .stats import CONFIDENCE, estimate, paired_difference

PLOTS = ("curves.png", "lr.png", "test_metric.png")
PLOT_DPI = 90  # small files: the HTML embeds them


@dataclass
class ExperimentResult:
    experiment: Experiment
    out: Path
    rows: list[dict[str, Any]]  # results.csv, in plan order
    metric: str  # "test_mae" or "test_accuracy"
    summary: list[dict[str, Any]] = field(default_factory=list)
    baselines: list[dict[str, Any]] = field(default_factory=list)
    advice: dict[str, list[str]] = field(default_factory=dict)  # variant → summary lines
    run_advice: dict[tuple[str, int], list[str]] = field(default_factory=dict)  # (variant, seed) → messages
    histories: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    complete: bool = True
    seconds: float = 0.0

    @property
    def lower_is_better(self) -> bool:
        return self.metric != "test_accuracy"

    @property
    def failed(self) -> int:
        return sum(r["status"] != "ok" for r in self.rows)


def metric_of(rows: list[dict[str, Any]]) -> str:
    return "test_accuracy" if any(r.get("test_accuracy") is not None for r in rows) else "test_mae"


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def summary_rows(exp: Experiment, rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    ok = [r for r in rows if r["status"] == "ok"]
    ref = {r["seed"]: _num(r.get(metric)) for r in ok if r["variant"] == exp.reference}
    out = []
    for variant in exp.variants:
        mine = [r for r in ok if r["variant"] == variant]
        row: dict[str, Any] = {"variant": variant, "runs": sum(r["variant"] == variant for r in rows), "ok": len(mine)}
        for key, col in ((metric, metric), ("epochs", "epochs"), ("wall_seconds", "wall_seconds")):
            e = estimate([_num(r.get(key)) for r in mine if _num(r.get(key)) is not None])
            row.update({f"{col}_mean": e.mean, f"{col}_std": e.std, f"{col}_ci_low": e.low, f"{col}_ci_high": e.high})
        if variant != exp.reference:
            d = paired_difference({r["seed"]: _num(r.get(metric)) for r in mine}, ref)
            row.update(diff_vs_reference=d.mean, diff_ci_low=d.low, diff_ci_high=d.high, paired_seeds=d.n, diff_significant=d.excludes_zero())
        else:
            row.update(diff_vs_reference=None, diff_ci_low=None, diff_ci_high=None, paired_seeds=None, diff_significant=None)
        out.append(row)
    return out


def write_summary(path: Path, summary: list[dict[str, Any]]) -> None:
    import pandas as pd

    rundir.write_text_atomic(path, pd.DataFrame(summary).to_csv(index=False, float_format="%.6g"))


# ---- text --------------------------------------------------------------------------------------


def _f(v: Any, digits: int = 4) -> str:
    x = _num(v)
    return "–" if x is None else f"{x:.{digits}g}"


def _ci(row: dict[str, Any], col: str, digits: int = 4) -> str:
    lo, hi = _num(row.get(f"{col}_ci_low")), _num(row.get(f"{col}_ci_high"))
    return "–" if lo is None or hi is None else f"[{lo:.{digits}g}, {hi:.{digits}g}]"


def _diff(row: dict[str, Any], lower_better: bool) -> str:
    d = _num(row.get("diff_vs_reference"))
    if row.get("diff_vs_reference") is None:
        return "reference"
    if d is None:
        return "–"
    lo, hi = _num(row.get("diff_ci_low")), _num(row.get("diff_ci_high"))
    interval = f" [{lo:+.3g}, {hi:+.3g}]" if lo is not None and hi is not None else " (one seed: no interval)"
    verdict = ""
    if row.get("diff_significant"):
        verdict = " better" if (d < 0) == lower_better else " worse"
    return f"{d:+.3g}{interval}{verdict}"


def table_lines(result: ExperimentResult) -> list[list[str]]:
    m = result.metric
    head = ["variant", "ok/runs", f"{m} mean ± std", f"{int(CONFIDENCE * 100)}% CI", f"Δ vs {result.experiment.reference} (paired)", "epochs", "wall s"]
    body = [
        [
            r["variant"], f"{r['ok']}/{r['runs']}", f"{_f(r[f'{m}_mean'])} ± {_f(r[f'{m}_std'], 2)}", _ci(r, m),
            _diff(r, result.lower_is_better), _f(r["epochs_mean"], 3), _f(r["wall_seconds_mean"], 3),
        ]
        for r in result.summary
    ]
    return [head, *body]


def text_table(lines: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines)


def _md_table(lines: list[list[str]]) -> str:
    esc = lambda c: c.replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(map(esc, lines[0])) + " |", "|" + "---|" * len(lines[0])]
    out += ["| " + " | ".join(map(esc, row)) + " |" for row in lines[1:]]
    return "\n".join(out)


def baseline_lines(result: ExperimentResult) -> list[list[str]]:
    return [["baseline (same split)", result.metric], *[[b["model"], _f(b.get(result.metric))] for b in result.baselines]]


def failures(result: ExperimentResult) -> list[str]:
    return [f"{r['variant']} seed {r['seed']}: {r['status']}: {r['error']}" for r in result.rows if r["status"] != "ok"]


def engine_note(result: ExperimentResult) -> str:
    stacked = sum((r.get("stacked_with") or 1) > 1 for r in result.rows)
    if not stacked:
        return ""
    return (
        f" {stacked} of {len(result.rows)} runs were trained together with other runs of the same shape as one vectorised model; "
        "their wall seconds are the stack's time shared among its running members."
    )


def markdown(result: ExperimentResult, heading: str = "#") -> str:
    exp = result.experiment
    parts = [f"{heading} {exp.name}", ""]
    if exp.description:
        parts += [exp.description, ""]
    parts += [
        f"{len(exp.variants)} variants × {len(exp.seeds)} seeds ({', '.join(map(str, exp.seeds))}); reference: {exp.reference}; "
        f"{'lower' if result.lower_is_better else 'higher'} {result.metric} is better. "
        f"Intervals are {int(CONFIDENCE * 100)}% Student-t over seeds; Δ is paired by seed." + engine_note(result),
        "",
        _md_table(table_lines(result)),
        "",
    ]
    if not result.complete:
        parts += ["**Incomplete**: the compare was interrupted; run the same command again to finish it.", ""]
    if result.baselines:
        parts += [_md_table(baseline_lines(result)), ""]
    if failures(result):
        parts += ["Failed runs:", "", *[f"- {f}" for f in failures(result)], ""]
    parts += [f"{heading}# Advice", ""]
    for variant in exp.variants:
        lines = result.advice.get(variant) or ["nothing to flag"]
        parts += [f"- **{variant}**: " + lines[0], *[f"  - {line}" for line in lines[1:]]]
    parts += ["", f"{heading}# Plots", ""] + [f"![{p}]({_rel(result, p)})" for p in PLOTS if (result.out / "plots" / p).exists()]
    return "\n".join(parts) + "\n"


def _rel(result: ExperimentResult, plot: str) -> str:
    return f"plots/{plot}"


# ---- plots -------------------------------------------------------------------------------------


def _curve_stats(histories: list[list[dict[str, Any]]], key: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """Per epoch: mean, min and max over the seeds that reached it."""
    by_epoch: dict[int, list[float]] = {}
    for h in histories:
        for row in h:
            v = _num(row.get(key))
            if v is not None:
                by_epoch.setdefault(int(row["epoch"]), []).append(v)
    epochs = sorted(by_epoch)
    return epochs, [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs], [min(by_epoch[e]) for e in epochs], [max(by_epoch[e]) for e in epochs]


def make_plots(result: ExperimentResult) -> dict[str, bytes]:
    """PNG bytes of the three plots, also written under OUT/plots/."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exp, metric = result.experiment, result.metric
    val_key = metric.replace("test_", "val_")
    colors = plt.get_cmap("tab10")
    pngs: dict[str, bytes] = {}

    def save(fig: Any, name: str) -> None:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=PLOT_DPI)
        plt.close(fig)
        pngs[name] = buf.getvalue()

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, variant in enumerate(exp.variants):
        hs = [h for (v, _), h in result.histories.items() if v == variant and h]
        if not hs:
            continue
        e, mean, lo, hi = _curve_stats(hs, val_key)
        if not e:
            continue
        ax.plot(e, mean, color=colors(i % 10), label=variant, lw=1.4)
        ax.fill_between(e, lo, hi, color=colors(i % 10), alpha=0.18, lw=0)
    styles = [":", "--", "-."]
    for j, b in enumerate(result.baselines):
        if _num(b.get(metric)) is not None:
            ax.axhline(b[metric], color="grey", ls=styles[j % 3], lw=1, label=f"{b['model']} (test)")
    ax.set(xlabel="epoch", ylabel=val_key, title=f"{exp.name}: {val_key} per variant (mean, band: min–max over seeds)")
    if result.lower_is_better:
        _clip_y(ax, result)
    _legend(ax)
    save(fig, "curves.png")

    fig, ax = plt.subplots(figsize=(8, 3.5))
    for i, variant in enumerate(exp.variants):
        hs = [h for (v, _), h in result.histories.items() if v == variant and h]
        if hs:
            e, mean, _, _ = _curve_stats(hs, "lr")
            ax.plot(e, mean, color=colors(i % 10), label=variant, lw=1.4)
    ax.set(xlabel="epoch", ylabel="learning rate", title="learning rate per variant (mean over seeds)")
    ax.set_yscale("log")
    _legend(ax)
    save(fig, "lr.png")

    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.45 * len(exp.variants)))
    names = list(exp.variants)
    means = [_num(r[f"{metric}_mean"]) for r in result.summary]
    errs = [(_num(r[f"{metric}_ci_high"]) or m or 0) - (m or 0) if m is not None else 0 for r, m in zip(result.summary, means)]
    ys = list(range(len(names)))[::-1]
    ax.barh(ys, [m or 0 for m in means], xerr=errs, color=[colors(i % 10) for i in range(len(names))], alpha=0.8, capsize=4)
    ax.set_yticks(ys, names)
    for b in result.baselines:
        if _num(b.get(metric)) is not None:
            ax.axvline(b[metric], color="grey", ls=":", lw=1)
    finite = [m for m in means if m is not None] + [b[metric] for b in result.baselines if _num(b.get(metric)) is not None]
    if finite and result.lower_is_better:
        ax.set_xlim(min(finite) * 0.9, max((m or 0) + e for m, e in zip(means, errs)) * 1.05 if any(means) else None)
    ax.set(xlabel=f"{metric} (mean, {int(CONFIDENCE * 100)}% CI over seeds; dotted: baselines)", title=f"{exp.name}: {metric}")
    save(fig, "test_metric.png")

    folder = result.out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in pngs.items():
        (folder / name).write_bytes(data)
    return pngs


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _clip_y(ax: Any, result: ExperimentResult) -> None:
    """Early epochs of a regression dwarf the rest: show from the lowest value to 1.5× the worst final mean."""
    finals = [f for f in (_num(r[f"{result.metric}_mean"]) for r in result.summary) if f is not None]
    lows = finals + [b[result.metric] for b in result.baselines if _num(b.get(result.metric)) is not None]
    if finals:
        ax.set_ylim(0.97 * min(lows), 1.5 * max(finals))


# ---- HTML --------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}
.better{color:#176c2b;font-weight:600}.worse{color:#a8261b;font-weight:600}.note{color:#555;font-size:13px}
section{border-top:2px solid #ddd;margin-top:2em}details{margin:.3em 0}
"""


def _html_table(lines: list[list[str]]) -> str:
    def cell(c: str) -> str:
        cls = ' class="better"' if c.endswith(" better") else ' class="worse"' if c.endswith(" worse") else ""
        return f"<td{cls}>{html.escape(c)}</td>"

    head = "".join(f"<th>{html.escape(c)}</th>" for c in lines[0])
    body = "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in lines[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def html_section(result: ExperimentResult, pngs: dict[str, bytes]) -> str:
    exp = result.experiment
    parts = [f'<section id="{html.escape(exp.name)}"><h2>{html.escape(exp.name)}</h2>']
    if exp.description:
        parts.append(f"<p>{html.escape(exp.description)}</p>")
    parts.append(
        f'<p class="note">{len(exp.variants)} variants × {len(exp.seeds)} seeds; reference: {html.escape(exp.reference)}; '
        f"{'lower' if result.lower_is_better else 'higher'} {result.metric} is better. Intervals: {int(CONFIDENCE * 100)}% Student-t over seeds; "
        f"Δ is the paired difference to the reference over the seeds both finished.{html.escape(engine_note(result))}</p>"
    )
    if not result.complete:
        parts.append("<p><b>Incomplete</b>: the compare was interrupted; run the same command again to finish it.</p>")
    parts.append(_html_table(table_lines(result)))
    if result.baselines:
        parts.append(_html_table(baseline_lines(result)))
    if failures(result):
        parts.append("<p>Failed runs:</p><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in failures(result)) + "</ul>")
    parts.append("<h3>Advice</h3><ul>")
    for variant in exp.variants:
        lines = result.advice.get(variant) or ["nothing to flag"]
        runs = [(s, result.run_advice.get((variant, s), [])) for s in exp.seeds]
        detail = "".join(f"<li>seed {s}: {html.escape('; '.join(msgs) or 'nothing to flag')}</li>" for s, msgs in runs)
        parts.append(
            f"<li><b>{html.escape(variant)}</b>: " + "<br>".join(html.escape(x) for x in lines)
            + f"<details><summary>per run</summary><ul>{detail}</ul></details></li>"
        )
    parts.append("</ul>")
    for name in PLOTS:
        if name in pngs:
            parts.append(f'<img alt="{name}" src="data:image/png;base64,{base64.b64encode(pngs[name]).decode()}">')
    parts.append("</section>")
    return "\n".join(parts)


def html_page(title: str, sections: list[str], intro: str = "") -> str:
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{CSS}</style></head>'
        f"<body><h1>{html.escape(title)}</h1>{intro}{''.join(sections)}</body></html>\n"
    )


def write_report(result: ExperimentResult) -> dict[str, bytes]:
    """summary.csv, report.md, report.html and plots/ in the experiment's folder."""
    write_summary(result.out / "summary.csv", result.summary)
    pngs = make_plots(result)
    rundir.write_text_atomic(result.out / "report.md", markdown(result))
    page = html_page(f"trainwell compare: {result.experiment.name}", [html_section(result, pngs)])
    rundir.write_text_atomic(result.out / "report.html", page)
    return pngs
