"""What a compare writes besides the run directories: summary.csv, report.md and a
self-contained report.html (headline, tables, advice and figures embedded as base64 PNG).

The summary has one row per variant: mean, std and 95% Student-t interval over seeds of the
test metric, epochs and wall seconds, and the paired difference to the reference variant
over the seeds both finished.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from .. import rundir
from .figures import FIGURES, make_figures
from .headline import headline
from .result import ExperimentResult, metric_words
from .spec import Experiment
from .stats import CONFIDENCE, estimate, paired_difference
from .stats import number as _num

PLOTS = tuple(FIGURES)  # in the order a reader needs them: differences first


def metric_of(rows: list[dict[str, Any]]) -> str:
    return "test_accuracy" if any(r.get("test_accuracy") is not None for r in rows) else "test_mae"


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
            row.update(
                diff_vs_reference=d.mean,
                diff_ci_low=d.low,
                diff_ci_high=d.high,
                paired_seeds=d.n,
                diff_significant=d.excludes_zero(),
                diff_std=d.std,
            )
        else:
            row.update(
                diff_vs_reference=None,
                diff_ci_low=None,
                diff_ci_high=None,
                paired_seeds=None,
                diff_significant=None,
                diff_std=None,
            )
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
    """The summary table: variants with at least one finished run; no Δ column when nothing is compared."""
    m, exp = result.metric, result.experiment
    compared = len(exp.variants) > 1
    head = ["variant", "ok/runs", f"{metric_words(m)} mean ± std", f"{int(CONFIDENCE * 100)}% CI"]
    head += [f"Δ vs {exp.reference} (paired)"] if compared else []
    head += ["epochs", "wall s"]
    body = []
    for r in result.summary:
        if not r["ok"] and not any(row["variant"] == r["variant"] and row["status"] == "failed" for row in result.rows):
            continue  # not run yet: named in the incomplete note instead of a row of dashes
        cells = [r["variant"], f"{r['ok']}/{r['runs']}", f"{_f(r[f'{m}_mean'])} ± {_f(r[f'{m}_std'], 2)}", _ci(r, m)]
        cells += [_diff(r, result.lower_is_better)] if compared else []
        body.append(cells + [_f(r["epochs_mean"], 3), _f(r["wall_seconds_mean"], 3)])
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
    """Each baseline's score on the compare's metric, and how its classes were weighted (as the networks')."""
    weighted = any("class_weights" in b for b in result.baselines)
    head = ["baseline (same split)", metric_words(result.metric)] + (["class weights"] if weighted else [])
    rows = [
        [b["model"], _f(b.get(result.metric))] + ([str(b.get("class_weights", "none"))] if weighted else [])
        for b in result.baselines
    ]
    return [head, *rows]


def failures(result: ExperimentResult) -> list[str]:
    return [
        f"{r['variant']} seed {r['seed']}: {r['status']}: {r['error']}" for r in result.rows if r["status"] == "failed"
    ]


def missing_note(result: ExperimentResult) -> str:
    """'' for a complete compare; otherwise which runs are missing and that the report leaves them out."""
    missing = result.missing
    if not missing:
        return ""
    seeds: dict[str, list[str]] = {}
    for r in missing:
        seeds.setdefault(r["variant"], []).append(str(r["seed"]))
    named = "; ".join(f"{v} (seed{'s' if len(s) > 1 else ''} {', '.join(s)})" for v, s in seeds.items())
    done = len(result.rows) - len(missing)
    return (
        f"Incomplete: the compare was interrupted and {done} of {len(result.rows)} runs finished; this report "
        f"uses only those. "
        f"Not run yet: {named}. Run the same command again to finish them."
    )


def no_advice(result: ExperimentResult, variant: str) -> str:
    """What the advice list says of a variant without advice: nothing to flag only when a run of
    it finished (advice is read from finished runs' histories)."""
    if any(r["variant"] == variant and r["status"] in ("ok", "failed") for r in result.rows):
        return "nothing to flag"
    return "no finished run yet, so no advice"


def engine_note(result: ExperimentResult) -> str:
    stacked = sum((r.get("stacked_with") or 1) > 1 for r in result.rows)
    if not stacked:
        return ""
    return (
        f" {stacked} of {len(result.rows)} runs were trained together with other runs of the same shape as one "
        f"vectorised model; "
        "their wall seconds are the stack's time shared among its running members."
    )


def method_note(result: ExperimentResult) -> str:
    exp = result.experiment
    n_var, n_seed = len(exp.variants), len(exp.seeds)
    seeds = ", ".join(map(str, exp.seeds))
    what = f"{n_var} variant{'s' if n_var != 1 else ''} × {n_seed} seed{'s' if n_seed != 1 else ''} ({seeds})"
    compared = f"; reference: {exp.reference}" if n_var > 1 else ""
    paired = "; Δ is the paired difference to the reference over the seeds both finished" if n_var > 1 else ""
    return (
        f"{data_note(result)}{what}{compared}; {'lower' if result.lower_is_better else 'higher'} "
        f"{metric_words(result.metric)} is better. "
        f"Intervals are {int(CONFIDENCE * 100)}% Student-t over seeds{paired}.{engine_note(result)}"
    )


def data_note(result: ExperimentResult) -> str:
    """'Data: churn.csv, 400 rows (...), target churn, classification; classes weighted balanced (the baselines
    too). '"""
    d = result.data
    if not d:
        return ""
    split = "/".join(map(str, d["split"]))
    weights = ""
    if d["task"] == "classification":
        baselines = " (the baselines too)" if result.baselines else ""
        weights = f"; classes weighted {d['class_weights']} in training{baselines}"
    return (
        f"Data: {d['source']}, {d['rows']:,} rows ({split} train/validation/test), target {d['target']}, "
        f"{d['task']}{weights}. "
    )


def markdown(result: ExperimentResult, heading: str = "#", plots: str = "plots") -> str:
    exp = result.experiment
    parts = [f"{heading} {exp.name}", ""]
    if exp.description:
        parts += [exp.description, ""]
    if missing_note(result):  # before the headline: the reader must know it speaks of part of the runs
        parts += [f"**{missing_note(result)}**", ""]
    parts += ["**In short:** " + " ".join(headline(result)), ""]
    parts += [method_note(result), "", _md_table(table_lines(result)), ""]
    if result.baselines:
        parts += [_md_table(baseline_lines(result)), ""]
    if failures(result):
        parts += ["Failed runs:", "", *[f"- {f}" for f in failures(result)], ""]
    parts += [f"{heading}# Advice", ""]
    for variant in exp.variants:
        lines = result.advice.get(variant) or [no_advice(result, variant)]
        parts += [f"- **{variant}**: " + lines[0], *[f"  - {line}" for line in lines[1:]]]
    shown = [p for p in PLOTS if (result.out / "plots" / p).exists()]
    if shown:
        parts += ["", f"{heading}# Figures", ""] + [f"![{p}]({plots}/{p})" for p in shown]
    return "\n".join(parts) + "\n"


# ---- HTML --------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}img{max-width:100%;height:auto;display:block;margin:1em 0}
.better{color:#176c2b;font-weight:600}.worse{color:#a8261b;font-weight:600}.note{color:#555;font-size:13px}
.headline{background:#f5f8ff;border-left:4px solid #3b6fd8;padding:.6em 1em;font-size:16px;margin:1em 0}
.incomplete{background:#fff6e5;border-left:4px solid #d89a1b;padding:.6em 1em}
section{border-top:2px solid #ddd;margin-top:2em}details{margin:.3em 0}li{overflow-wrap:anywhere}
"""


def html_table(lines: list[list[str]]) -> str:
    def cell(c: str) -> str:
        cls = ' class="better"' if c.endswith(" better") else ' class="worse"' if c.endswith(" worse") else ""
        return f"<td{cls}>{html.escape(c)}</td>"

    head = "".join(f"<th>{html.escape(c)}</th>" for c in lines[0])
    body = "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in lines[1:])
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def html_headline(result: ExperimentResult) -> str:
    return f'<p class="headline"><b>In short:</b> {html.escape(" ".join(headline(result)))}</p>'


FIGURE_WORDS = {
    "differences.png": "each variant's paired difference to the reference with its 95% interval",
    "curves.png": "validation metric per epoch for each variant, with the classical baselines",
    "lr.png": "learning rate per epoch",
}


def html_section(result: ExperimentResult, pngs: dict[str, bytes]) -> str:
    exp = result.experiment
    parts = [f'<section id="{html.escape(exp.name)}"><h2>{html.escape(exp.name)}</h2>']
    if exp.description:
        parts.append(f"<p>{html.escape(exp.description)}</p>")
    if missing_note(result):  # before the headline: the reader must know it speaks of part of the runs
        parts.append(f'<p class="incomplete">{html.escape(missing_note(result))}</p>')
    parts.append(html_headline(result))
    parts.append(f'<p class="note">{html.escape(method_note(result))}</p>')
    parts.append(html_table(table_lines(result)))
    if result.baselines:
        parts.append(html_table(baseline_lines(result)))
    if failures(result):
        parts.append(
            "<p>Failed runs:</p><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in failures(result)) + "</ul>"
        )
    for name in PLOTS:
        if name in pngs:
            parts.append(
                f'<img alt="{html.escape(FIGURE_WORDS.get(name, name))}" '
                f'src="data:image/png;base64,{base64.b64encode(pngs[name]).decode()}">'
            )
    parts.append(_html_advice(result))
    parts.append("</section>")
    return "\n".join(parts)


def _html_advice(result: ExperimentResult) -> str:
    exp = result.experiment
    items = []
    for variant in exp.variants:
        lines = result.advice.get(variant) or [no_advice(result, variant)]
        runs = [(s, result.run_advice.get((variant, s))) for s in exp.seeds]
        detail = "".join(
            f"<li>seed {s}: {html.escape('; '.join(msgs) or 'nothing to flag')}</li>"
            for s, msgs in runs
            if msgs is not None
        )
        more = f"<details><summary>per run</summary><ul>{detail}</ul></details>" if detail else ""
        items.append(
            f"<li><b>{html.escape(variant)}</b>: " + "<br>".join(html.escape(x) for x in lines) + more + "</li>"
        )
    return "<h3>Advice</h3><ul>" + "".join(items) + "</ul>"


def html_page(title: str, sections: list[str], intro: str = "") -> str:
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, '
        f'initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{intro}{''.join(sections)}</body></html>\n"
    )


def write_report(result: ExperimentResult) -> dict[str, bytes]:
    """summary.csv, report.md, report.html and plots/ in the experiment's folder."""
    write_summary(result.out / "summary.csv", result.summary)
    pngs = make_figures(result)
    rundir.write_text_atomic(result.out / "report.md", markdown(result))
    page = html_page(f"trainwell compare: {result.experiment.name}", [html_section(result, pngs)])
    rundir.write_text_atomic(result.out / "report.html", page)
    return pngs
