"""A variant's advice read against its sweep: the curves say "regularise more", but the variants that
did regularise more may have scored worse. The sweep's own result then replaces the curves' advice."""

from __future__ import annotations

from typing import Any

from .advice import KEEP, REGULARISE_LESS, REGULARISE_MORE, Advice

SWEPT = {
    "model.dropout": "dropout",
    "optim.weight_decay": "weight decay",
}  # settings that set how much a network is regularised
NOT_COMPARED = (
    "train.seed",
    "train.quiet",
    "train.threads",
    "name",
)  # differ between runs without changing what is compared


def flat_config(cfg: Any) -> dict[str, Any]:
    """A RunConfig (or its dict form) as {"section.field": value}, without the fields runs of one variant differ in."""
    d = cfg if isinstance(cfg, dict) else cfg.to_dict()
    out = {f"{sec}.{k}": repr(v) for sec, body in d.items() if isinstance(body, dict) for k, v in body.items()}
    out.update({k: repr(v) for k, v in d.items() if not isinstance(v, dict)})
    return {k: v for k, v in out.items() if k not in NOT_COMPARED}


def check_sweep(
    per_variant: dict[str, list[list[Advice]]],
    configs: dict[str, dict[str, Any]],
    means: dict[str, float | None],
    lower_better: bool,
) -> dict[str, list[list[Advice]]]:
    """A variant's advice read against its sweep (variants whose configs differ only in dropout or
    weight decay): "regularise more" is not given to the most regularised variant when a less
    regularised one scored better, nor "regularise less" to the least regularised when a more
    regularised one scored better; the sweep's own result replaces it."""
    out = {v: [list(run) for run in runs] for v, runs in per_variant.items()}
    for v, runs in per_variant.items():
        for kind, toward in ((REGULARISE_MORE, 1), (REGULARISE_LESS, -1)):
            if means.get(v) is None or not any(a.kind == kind for run in runs for a in run):
                continue
            verdict = _sweep_verdict(v, toward, configs, means, lower_better)
            if verdict is not None:
                out[v] = [[verdict if a.kind == kind else a for a in run] for run in out[v]]
    return out


def _sweep_verdict(
    v: str, toward: int, configs: dict[str, dict[str, Any]], means: dict[str, float | None], lower_better: bool
) -> Advice | None:
    """The sweep's counter-advice to "regularise more" (toward +1) or "less" (toward -1) for `v`; None if it agrees.

    Every variant further in the advised direction scored worse: keep the setting. None is further
    (v is the sweep's end) and one the other way scored better: turn the other way."""
    mine = means[v] or 0.0  # check_sweep only asks for variants with a mean
    beats = lambda w: (means[w] < mine) if lower_better else (means[w] > mine)  # type: ignore[operator]  # noqa: E731
    more, less = ("more", "less") if toward > 0 else ("less", "more")
    for key, words in SWEPT.items():
        peers = {w: c for w, c in configs.items() if means.get(w) is not None and _differs_only_in(configs[v], c, key)}
        if len(peers) < 2 or v not in peers:
            continue
        value = lambda w: _number(peers[w].get(key))  # noqa: E731, B023  (used within this iteration only)
        further = sorted((w for w in peers if toward * (value(w) - value(v)) > 0), key=value)
        if further:
            if any(beats(w) for w in further):
                continue  # the sweep agrees with the curves
            shown = ", ".join(f"{value(w):g} ({means[w]:.4g})" for w in further)
            return Advice(
                KEEP,
                f"the curves suggest regularising {more}, but every variant with {more} {words} scored worse "
                f"({words} {shown} against {mine:.4g} here): keep {words} {value(v):g}",
                {"value": value(v)},
            )
        better = [w for w in peers if w != v and beats(w)]
        if better:
            best = min(better, key=lambda w: means[w] if lower_better else -means[w])  # type: ignore[operator]
            return Advice(
                REGULARISE_LESS if toward > 0 else REGULARISE_MORE,
                f"the curves suggest regularising {more}, but {words} {value(v):g} is already the "
                f"{'strongest' if toward > 0 else 'weakest'} here and {best} ({words} {value(best):g}) scored better "
                f"({means[best]:.4g} against {mine:.4g}): regularise {less}, not {more}",
                {"value": value(v), "better_value": value(best)},
            )
    return None


def _differs_only_in(a: dict[str, Any], b: dict[str, Any], key: str) -> bool:
    return all(a.get(k) == b.get(k) for k in a.keys() | b.keys() if k != key)


def _number(text: Any) -> float:
    """The number in a flat_config value (its repr); 0 for None."""
    try:
        return float(text) if text not in (None, "None") else 0.0
    except (TypeError, ValueError):
        return 0.0
