"""What a search found, in words and tables: which dials mattered, the chosen ensemble beside
the default, and what it cost.

A dial's effect is the spread of the best validation values among configurations sharing a
value of it (continuous dials in three bins of equal count): a dial whose best value barely
moves whatever its setting did not matter on this data, within the search's noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Any

from ..experiments.report import html_page, html_table
from .selection import BAGS
from .space import CHOICE, Dial

BINS = 3  # continuous dials: low, middle and high thirds of the values drawn
SMALL_SELECTION = 200  # choosing rows below which the report warns that the choice is noisy


@dataclass
class DialEffect:
    dial: str
    best_by_value: list[tuple[str, float, int]]  # (value or range, best validation value, configurations)
    spread: float  # best minus worst of best_by_value, in the monitored metric's units


def _label(dial: Dial, lo: float, hi: float) -> str:
    return f"{lo:.3g}–{hi:.3g}"


def dial_effects(
    dials: list[Dial], values: list[dict[str, Any]], scores: list[float | None], mode: str
) -> list[DialEffect]:
    """Per dial, the best score among the configurations in each of its values (or bins), largest spread first."""
    pick = max if mode == "max" else min
    finished = [(v, s) for v, s in zip(values, scores) if s is not None and math.isfinite(s)]
    effects = []
    for dial in dials:
        groups: dict[str, list[float]] = {}
        if dial.kind == CHOICE:
            for v, s in finished:
                groups.setdefault(str(v[dial.name]), []).append(s)
        else:
            ordered = sorted(finished, key=lambda vs: vs[0][dial.name])
            size = math.ceil(len(ordered) / BINS) if ordered else 1
            for k in range(0, len(ordered), size):
                part = ordered[k : k + size]
                label = _label(dial, part[0][0][dial.name], part[-1][0][dial.name])
                groups[label] = [s for _, s in part]
        rows = [(label, pick(ss), len(ss)) for label, ss in groups.items()]
        spread = abs(max(r[1] for r in rows) - min(r[1] for r in rows)) if len(rows) > 1 else 0.0
        effects.append(DialEffect(dial.name, rows, spread))
    return sorted(effects, key=lambda e: -e.spread)


def effects_table(effects: list[DialEffect], metric: str) -> list[list[str]]:
    name = metric.removeprefix("val_")
    rows = [["dial", f"spread of best {name}", "best value per setting (configurations)"]]
    for e in effects:
        cells = "; ".join(f"{label}: {best:.4g} ({n})" for label, best, n in e.best_by_value)
        rows.append([e.dial, f"{e.spread:.4g}", cells])
    return rows


def headline(summary: dict[str, Any]) -> str:
    """One sentence in the style of compare's headline: the result, against the default, at its cost."""
    main, ens, default = summary["main_metric"], summary.get("ensemble_test"), summary.get("default_test")
    if ens is None or default is None:
        return f"The search finished {summary['finished']} of {summary['trials']} configurations; no ensemble yet."
    higher = summary["main_higher_is_better"]
    change = (ens - default) / abs(default) * 100 if default else 0.0
    verdict = "better" if (change > 0) == higher else "worse"
    top = summary["top_dials"][:2]
    mattered = (
        f"{' and '.join(top)} mattered most on this data"
        if top
        else "no dial moved the best validation value by more than 1% on this data"
    )
    n_folds = summary.get("folds") or 1
    saved = summary.get("saved_members")
    on_folds = f" ({saved} saved: the default's seeds on {n_folds} validation folds)" if n_folds > 1 and saved else ""
    return (
        f"The searched ensemble of {summary['ensemble_size']} members{on_folds} scores test {main} {ens:.4g} "
        f"against the default's {default:.4g} ({f'{abs(change):.1f}% {verdict}' if change else 'the same'}), at "
        f"{summary['cost_ratio']:.1f}× "
        f"the default run's training time; {mattered}."
    )


Block = tuple[str, Any]  # ("h2" | "p" | "ul" | "table", text, items or rows): one part of the report


def blocks(summary: dict[str, Any], effects: list[DialEffect], chosen: list[str]) -> list[Block]:
    """The report's parts, rendered as markdown (report.md) and HTML (report.html)."""
    metric = summary["monitor"]
    return [
        ("headline", headline(summary)),
        (
            "ul",
            [
                f"{summary['trials']} configurations ({summary['finished']} finished) in {summary['stacks']} "
                f"stack{'s' if summary['stacks'] != 1 else ''}; "
                f"successive halving at epochs {summary['rungs'] or 'none (too few epochs)'}",
                f"members early-stopped on {summary['stop_half']}; the ensemble was chosen on {summary['select_half']} "
                f"(Caruana's greedy selection with replacement, {metric}, bagged over {BAGS} random halves of those "
                "rows, from every finished configuration and the default's seeds, starting from the default's "
                "ensemble: never worse than it on all of them; a classification's log loss is scored at the best "
                "temperature, as the saved ensemble's is fitted)",
                _held_out_line(summary),
                *_folds_line(summary),
                f"training time: {summary['search_seconds'] + summary['default_seconds']:.1f} s in all, of which "
                f"the default run (trained first, alone) {summary['default_seconds']:.1f} s "
                f"(cost ratio {summary['cost_ratio']:.2f})",
            ],
        ),
        ("h2", "Which settings mattered"),
        (
            "p",
            f"Best validation {metric.removeprefix('val_')} (on the early-stopping rows) among the configurations "
            "with each value; halved configurations count with the value they had reached.",
        ),
        ("table", effects_table(effects, metric)),
        *(("p", note) for note in _small_selection_note(summary)),
        ("h2", "The chosen ensemble and the default"),
        (
            "table",
            [
                ["model", f"test {summary['main_metric']}", f"{metric} where chosen"],
                ["searched ensemble", _num(summary.get("ensemble_test")), _num(summary.get("ensemble_select"))],
                ["best single configuration", _num(summary.get("single_test")), _num(summary.get("single_select"))],
                [
                    f"default ({summary['default_name']})",
                    _num(summary.get("default_test")),
                    _num(summary.get("default_select")),
                ],
            ],
        ),
        ("p", "Members (weight = times picked):"),
        ("ul", chosen),
    ]


def render_markdown(title: str, parts: list[Block]) -> str:
    lines = [f"# {title}", ""]
    for kind, body in parts:
        if kind in ("p", "headline"):
            lines += [body, ""]
        elif kind == "h2":
            lines += [f"## {body}", ""]
        elif kind == "ul":
            lines += [*(f"- {item}" for item in body), ""]
        else:
            lines += ["| " + " | ".join(body[0]) + " |", "|" + "---|" * len(body[0])]
            lines += ["| " + " | ".join(row) + " |" for row in body[1:]] + [""]
    return "\n".join(lines)


def render_html(title: str, parts: list[Block]) -> str:
    """The same parts as a page in compare's style (its CSS, tables and headline box)."""
    out = []
    for kind, body in parts:
        if kind == "headline":
            out.append(f'<p class="headline"><b>In short:</b> {escape(body)}</p>')
        elif kind == "p":
            out.append(f"<p>{escape(body)}</p>")
        elif kind == "h2":
            out.append(f"<h2>{escape(body)}</h2>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{escape(item)}</li>" for item in body) + "</ul>")
        else:
            out.append(html_table(body))
    return html_page(title, ["<section>" + "".join(out) + "</section>"])


def _held_out_line(summary: dict[str, Any]) -> str:
    """Whether the additions to the default's ensemble held up on the rows each bag left out."""
    gain = summary.get("held_out_gain")
    if gain is None:
        return "the additions were not checked on held-out rows (not chosen yet)"
    if gain > 0:
        return (
            f"on the half of the rows each bag left out, its additions to the default's ensemble scored {gain:.4g} "
            f"better ({summary['monitor']}, on average), so they were kept"
        )
    return (
        f"on the half of the rows each bag left out, its additions to the default's ensemble scored {-gain:.4g} "
        f"worse ({summary['monitor']}, on average), so they were dropped: the default's ensemble is kept"
    )


def _folds_line(summary: dict[str, Any]) -> list[str]:
    """What the other validation folds added to the chosen ensemble (folds.py)."""
    n = summary.get("folds") or 1
    if n == 1:
        return []
    return [
        f"the default run then trained again on {n - 1} more validation fold{'s' if n > 2 else ''} (another block "
        "of the training rows held out for early stopping each time, the rows above trained on; "
        f"{summary['fold_seeds']} of its seeds each); the saved ensemble is the choice on all {n} folds "
        f"({summary['saved_members']} members): the default's seeds replaced by each fold's copies in turn, "
        "a picked configuration counted once per fold"
    ]


def _small_selection_note(summary: dict[str, Any]) -> list[str]:
    rows = summary.get("select_rows")
    if rows is None or rows >= SMALL_SELECTION:
        return []
    return [
        f"The ensemble was chosen on only {rows} rows: the choice is noisy on so few, and the default "
        "may well score better on the test rows than an ensemble chosen to beat it there."
    ]


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, (int, float)) else "—"
