"""Whether two configs describe the same run: the one rule resume and a continued compare use.

A config's fields all change what a run computes, except those listed here. Resume checks that
last.pt belongs to its run directory while allowing the fields a resume may change; a compare
that continues in its old folder keeps a run's results only when the plan differs from the run's
config.yaml in nothing but the fields that change no number.
"""

from __future__ import annotations

from typing import Any, Iterable

# fields that change no number a run produces: how it is shown and how many CPU threads it uses
PRESENTATION_FIELDS = ("train.quiet", "train.threads", "train.checkpoint_seconds")
# fields that may change when a run is resumed: the presentation ones, how long it trains (may only
# grow, see resume_rules.py) and how often last.pt is written
RESUMABLE_FIELDS = (
    "train.max_epochs",
    "train.quiet",
    "train.checkpoint_every_steps",
    "train.checkpoint_seconds",
    "train.threads",
)


def without(raw: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """A copy of a raw config dict without the dotted `fields`."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for key in fields:
        section, _, name = key.partition(".")
        if isinstance(out.get(section), dict):
            out[section].pop(name, None)
    return out


def same_run(a: dict[str, Any], b: dict[str, Any], may_differ: Iterable[str]) -> bool:
    """Whether raw configs `a` and `b` are equal but for the dotted fields in `may_differ`."""
    may_differ = tuple(may_differ)
    return without(a, may_differ) == without(b, may_differ)


def first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The first dotted field of `a` whose value `b` does not share ("config" when none)."""
    for section, fields in a.items():
        if not isinstance(fields, dict):
            if b.get(section) != fields:
                return section
            continue
        for name, value in fields.items():
            if b.get(section, {}).get(name) != value:
                return f"{section}.{name}"
    return "config"
