"""The headline of a comparison: a few sentences generated from the numbers, for a reader who
never saw trainwell — which variant is best and by how much, which differences are
distinguishable from noise, whether a classical model beats the networks, how far the best is
from the noise floor, and how many seeds would settle what is still undecided.

Everything here reads an ExperimentResult's summary rows (report.summary_rows), its result rows
(results.csv) and its baseline rows, never the training engine, so a test can build them by hand.
"""

from __future__ import annotations

import textwrap
from typing import Any

from .result import ExperimentResult, lower_is_better, metric_words
from .stats import CONFIDENCE, MOST_SEEDS, paired_difference, seeds_needed
from .stats import number as _num

LEVEL = f"{int(CONFIDENCE * 100)}%"
FLOOR_WORDS = "noise floor"  # baselines.py names the noise-free generating function "... (noise floor)"
LINEAR_MODELS = ("linear regression", "logistic regression")
AT_FLOOR = 0.002  # a baseline within this share of the noise floor is at it


def is_ablation(result: ExperimentResult) -> bool:
    """Each variant takes one ingredient away from the reference (the ablation preset, or any experiment named so)."""
    return "ablation" in result.experiment.name.lower()


def _v(x: float) -> str:  # an absolute value
    return f"{x:.4g}"


def _d(x: float) -> str:  # a difference: two significant digits say its size
    return f"{abs(x):.2g}"


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


class _View:
    """What the sentences need, read once from a result."""

    def __init__(self, result: ExperimentResult) -> None:
        self.metric = result.metric
        self.words = metric_words(result.metric)
        self.lower = lower_is_better(result.metric)
        self.reference = result.experiment.reference
        self.ablation = is_ablation(result)
        self.done = [r for r in result.summary if r.get("ok") and _num(r.get(f"{self.metric}_mean")) is not None]
        self.rows = [r for r in result.rows if r.get("status") == "ok"]
        named = [b for b in result.baselines if _num(b.get(self.metric)) is not None]
        self.floor = next((b for b in named if b.get("floor") or FLOOR_WORDS in str(b.get("model", ""))), None)
        self.classical = [b for b in named if b is not self.floor]

    def mean(self, row: dict[str, Any]) -> float:
        return float(row[f"{self.metric}_mean"])

    def better(self, a: float, b: float) -> bool:
        return a < b if self.lower else a > b

    def ranked(self) -> list[dict[str, Any]]:
        return sorted(self.done, key=lambda r: self.mean(r) if self.lower else -self.mean(r))

    def by_seed(self, variant: str) -> dict[int, float]:
        return {
            int(r["seed"]): v
            for r in self.rows
            if r["variant"] == variant and (v := _num(r.get(self.metric))) is not None
        }

    def direction(self, diff: float) -> str:
        """'better' or 'worse' for a difference variant − reference."""
        return "better" if self.better(diff, 0.0) else "worse"


def headline(result: ExperimentResult) -> list[str]:
    """The headline's sentences, most important first; [] when no run finished."""
    view = _View(result)
    if not view.done:
        return ["No run has finished yet, so there is nothing to compare."]
    out = _one_variant(view) if len(view.done) == 1 else _best(view) + _against_reference(view)
    return out + _against_baselines(view) + _floor(view)


def _one_variant(view: _View) -> list[str]:
    row = view.done[0]
    lo, hi = _num(row.get(f"{view.metric}_ci_low")), _num(row.get(f"{view.metric}_ci_high"))
    spread = f"{LEVEL} interval {_v(lo)} to {_v(hi)}" if lo is not None and hi is not None else "one seed: no interval"
    return [f"{row['variant']} scores a {view.words} of {_v(view.mean(row))} over {_seeds(row['ok'])} ({spread})."]


def _best(view: _View) -> list[str]:
    best, runner = view.ranked()[:2]
    better = "lower" if view.lower else "higher"
    sentence = f"Best: {best['variant']}, with a mean {view.words} of {_v(view.mean(best))} ({better} is better)"
    first, second = (runner, best) if view.lower else (best, runner)
    d = paired_difference(
        view.by_seed(first["variant"]), view.by_seed(second["variant"])
    )  # > 0: the runner-up is behind
    if d.n < 2:
        gap = view.mean(runner) - view.mean(best)
        return [
            f"{sentence}; the runner-up, {runner['variant']}, is {_d(gap)} behind (too few shared seeds for an "
            f"interval)."
        ]
    span = f"paired {LEVEL} interval {d.low:+.2g} to {d.high:+.2g}"
    if d.excludes_zero():
        return [
            f"{sentence}; it beats the runner-up, {runner['variant']}, by {_d(d.mean)} ({span}), more than "
            f"noise explains."
        ]
    return [
        f"{sentence}; the runner-up, {runner['variant']}, is {_d(d.mean)} behind, which noise alone could "
        f"explain ({span})."
    ]


def _against_reference(view: _View) -> list[str]:
    ref = view.reference
    if not any(r["variant"] == ref for r in view.done):
        return [f"The reference, {ref}, has no finished run, so no paired differences can be given."]
    others = [r for r in view.done if r["variant"] != ref and _num(r.get("diff_vs_reference")) is not None]
    paired = [r for r in others if (r.get("paired_seeds") or 0) >= 2]
    clear = sorted((r for r in paired if r.get("diff_significant")), key=lambda r: -abs(float(r["diff_vs_reference"])))
    unclear = sorted(
        (r for r in paired if not r.get("diff_significant")), key=lambda r: -abs(float(r["diff_vs_reference"]))
    )
    out = []
    against = f"Taking one ingredient away from the {ref}" if view.ablation else f"Against the reference, {ref}"
    if clear:
        items = ", ".join(
            f"{r['variant']} is {view.direction(r['diff_vs_reference'])} by {_d(r['diff_vs_reference'])}" for r in clear
        )
        out.append(f"{against}, distinguishable from noise at {LEVEL} (paired by seed): {items}.")
    if unclear:
        items = ", ".join(f"{r['variant']} ({float(r['diff_vs_reference']):+.2g})" for r in unclear)
        lead = "Not distinguishable from noise"
        if not clear:
            lead = (
                f"{against}, no change is distinguishable from noise at {LEVEL}"
                if view.ablation
                else f"No difference from the reference, {ref}, is distinguishable from noise at {LEVEL}"
            )
        out.append(f"{lead}: {items}." + (" " + _seeds_to_settle(unclear) if _seeds_to_settle(unclear) else ""))
    if len(paired) < len(others):
        out.append(
            f"{len(others) - len(paired)} variant(s) share fewer than two seeds with {ref}: no interval; run "
            f"at least 3 seeds."
        )
    return out


def _seeds_to_settle(rows: list[dict[str, Any]]) -> str:
    """'A paired comparison would need roughly 4 seeds (a, b) or 9 (c) ...' from each variant's paired spread."""
    groups: dict[int | None, list[str]] = {}
    for r in sorted(rows, key=lambda r: -abs(float(r["diff_vs_reference"]))):
        std = _num(r.get("diff_std"))
        if std is not None:
            groups.setdefault(seeds_needed(float(r["diff_vs_reference"]), std), []).append(r["variant"])
    if not groups:
        return ""
    counted = sorted((n, names) for n, names in groups.items() if n is not None)
    parts = [f"{n} seeds ({', '.join(names)})" for n, names in counted]
    if None in groups:
        parts.append(f"more than {MOST_SEEDS} ({', '.join(groups[None])}: too small a difference to matter)")
    return (
        "If the differences seen are real, a paired comparison would need roughly "
        + " or ".join(parts)
        + " to show them."
    )


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _label(b: dict[str, Any], metric: str) -> str:
    name = str(b["model"])
    kind = "a linear model" if name in LINEAR_MODELS else name
    return f"{kind} ({name}, {_v(b[metric])})" if kind != name else f"{name} ({_v(b[metric])})"


def _against_baselines(view: _View) -> list[str]:
    if not view.classical:
        return []
    base = min(view.classical, key=lambda b: b[view.metric] if view.lower else -b[view.metric])
    value, best = float(base[view.metric]), view.ranked()[0]
    gap, mean = abs(view.mean(best) - value), view.mean(best)
    lo, hi = _num(best.get(f"{view.metric}_ci_low")), _num(best.get(f"{view.metric}_ci_high"))
    # the baseline is one number on the same test rows: compare it with the network's interval over seeds
    beyond = lo is not None and hi is not None and not (lo <= value <= hi)
    every = "every network here" if len(view.done) > 1 else "the network here"
    if view.better(value, mean):
        if beyond:
            return [
                f"{_cap(_label(base, view.metric))} beats {every} by {_d(gap)} (best network: "
                f"{best['variant']}, {_v(mean)}, "
                f"{LEVEL} interval {_v(lo)} to {_v(hi)}): the network is not worth it on this data."
            ]
        return [
            f"{_cap(_label(base, view.metric))} beats the mean of {every} by {_d(gap)} (best network: "
            f"{best['variant']}, {_v(mean)}), "
            f"though it lies inside that network's {LEVEL} interval: on this data the network is at best level with it."
        ]
    if view.better(mean, value):
        beating = sum(view.better(view.mean(r), value) for r in view.done)
        count = f"; {beating} of {len(view.done)} variants beat it" if len(view.done) > 1 else ""
        how = f"beyond its {LEVEL} interval" if beyond else f"though it lies inside the network's {LEVEL} interval"
        return [
            f"The best network, {best['variant']} ({_v(mean)}), beats the best classical baseline, "
            f"{_label(base, view.metric)}, by {_d(gap)}, {how}{count}."
        ]
    return [f"The best network, {best['variant']}, ties the best classical baseline, {_label(base, view.metric)}."]


def _floor(view: _View) -> list[str]:
    if view.floor is None:
        return []
    floor, best = float(view.floor[view.metric]), view.ranked()[0]
    gap = view.mean(best) - floor if view.lower else floor - view.mean(best)
    what = f"The noise floor (the formula that generated the data, without its noise) is {_v(floor)}"
    at_floor = [b["model"] for b in view.classical if abs(float(b[view.metric]) - floor) <= AT_FLOOR * abs(floor)]
    there = f"; {' and '.join(at_floor)} already reach{'es' if len(at_floor) == 1 else ''} it" if at_floor else ""
    if gap <= 0:
        return [f"{what}: the best network, {best['variant']}, is already at it{there}."]
    return [
        f"{what}: the best network, {best['variant']}, is {_d(gap)} above it, so at most {_d(gap)} is left to "
        f"gain{there}."
    ]


def brief(result: ExperimentResult) -> str:
    """The headline in one or two terminal lines: best, what is distinguishable, the best baseline."""
    view = _View(result)
    if not view.done:
        return "no run finished yet"
    best = view.ranked()[0]
    if len(view.done) == 1:
        parts = [f"{best['variant']} {_v(view.mean(best))} {view.words}"]
    else:
        parts = [
            f"best {best['variant']} ({_v(view.mean(best))} {view.words}, "
            f"{'lower' if view.lower else 'higher'} is better)",
            _brief_differences(view),
        ]
    if view.classical:
        base = min(view.classical, key=lambda b: b[view.metric] if view.lower else -b[view.metric])
        value, mean = float(base[view.metric]), view.mean(best)
        lo, hi = _num(best.get(f"{view.metric}_ci_low")), _num(best.get(f"{view.metric}_ci_high"))
        inside = lo is not None and hi is not None and lo <= value <= hi
        if view.better(value, mean):
            every = "every network's mean" if len(view.done) > 1 else "the network's mean"
            parts.append(
                f"{base['model']} ({_v(value)}) beats {every} by {_d(mean - value)}"
                + (", within noise" if inside else ": no network needed")
            )
        else:
            parts.append(
                f"beats {base['model']} ({_v(value)}) by {_d(mean - value)}" + (", within noise" if inside else "")
            )
    return "; ".join(p for p in parts if p)


def suite_headline(results: list[ExperimentResult]) -> str:
    """One sentence over several experiments on the same kind of data: do the networks beat the classical
    baselines at all?"""
    # per experiment with baselines: (a baseline's mean is better, beyond the best network's interval, its name)
    verdicts = []
    for result in results:
        view = _View(result)
        if not (view.done and view.classical):
            continue
        base = min(view.classical, key=lambda b: b[view.metric] if view.lower else -b[view.metric])
        best, value = view.ranked()[0], float(base[view.metric])
        lo, hi = _num(best.get(f"{view.metric}_ci_low")), _num(best.get(f"{view.metric}_ci_high"))
        verdicts.append(
            (
                view.better(value, view.mean(best)),
                lo is not None and hi is not None and not lo <= value <= hi,
                str(base["model"]),
            )
        )
    if not verdicts:
        return ""
    beaten = [v for v in verdicts if v[0]]
    names = sorted({v[2] for v in beaten})
    if len(beaten) == len(verdicts):
        clear = sum(v[1] for v in beaten)
        how = (
            f"in {clear} of them by more than the best network's {LEVEL} interval"
            if clear
            else "though each time within the best network's interval"
        )
        return (
            f"In all {len(verdicts)} experiments {' or '.join(names)} scores better than the best network's "
            f"mean ({how}): "
            "on this data a network is not worth it."
        )
    if beaten:
        return (
            f"In {len(beaten)} of {len(verdicts)} experiments {' or '.join(names)} scores better than the best "
            "network's mean; in the others a network wins."
        )
    return f"In all {len(verdicts)} experiments the best network beats the classical baselines."


def _brief_differences(view: _View) -> str:
    if not any(r["variant"] == view.reference for r in view.done):
        return f"reference {view.reference} unfinished"
    others = [r for r in view.done if r["variant"] != view.reference and (r.get("paired_seeds") or 0) >= 2]
    clear = [
        f"{r['variant']} {view.direction(r['diff_vs_reference'])} by {_d(r['diff_vs_reference'])}"
        for r in others
        if r.get("diff_significant")
    ]
    unclear = [r for r in others if not r.get("diff_significant")]
    needs = sorted(
        n
        for r in unclear
        if (std := _num(r.get("diff_std"))) is not None and (n := seeds_needed(float(r["diff_vs_reference"]), std))
    )
    seeds = f" (about {needs[0]}{'' if needs[0] == needs[-1] else f'–{needs[-1]}'} seeds would tell)" if needs else ""
    if not clear:
        return f"no difference from {view.reference} beyond noise{seeds}"
    rest = f"; {len(unclear)} other{'s' if len(unclear) != 1 else ''} within noise{seeds}" if unclear else ""
    return f"vs {view.reference}: {', '.join(clear)}{rest}"


def wrapped(sentences: list[str], width: int = 100, indent: str = "  ") -> str:
    """The headline as terminal text."""
    return textwrap.fill(" ".join(sentences), width=width, initial_indent=indent, subsequent_indent=indent)
