"""Experiments: compare training choices over seeds, with intervals, baselines and advice.

from trainwell.experiments import compare, load_experiment, preset
result = compare(preset("optimizers"), out="reports/optimizers", workers=2)
print(result.summary)
"""

from __future__ import annotations

import textwrap
from typing import Any

from ..errors import TrainwellError
from .compare import compare, compare_many, data_line, demo, interrupted_line, suite_report
from .headline import brief, headline, suite_headline, wrapped
from .presets import DEMO, EXPERIMENTS, preset_experiment
from .report import ExperimentResult, table_lines, text_table
from .spec import Experiment, expand, load_experiment, parse_experiment

DEFAULT_ROOT = "reports"  # compare and demo write under reports/<name> unless --out says otherwise


def preset(name: str, data_path: str | None = None) -> Experiment:
    return parse_experiment(preset_experiment(name, data_path), source=f"preset {name}")


def resolve(
    path: str | None, preset_name: str | None, overrides: dict[str, Any] | None = None, seeds: int | None = None
) -> Experiment:
    """The experiment a command names: a file or a built-in preset (exactly one), with --seeds applied."""
    if bool(path) == bool(preset_name):
        raise TrainwellError(
            "name one experiment: an EXPERIMENT.yaml file or --preset NAME (see 'trainwell compare --list')"
        )
    data_path = (overrides or {}).get("data.path")
    exp = load_experiment(path) if path else preset(preset_name, data_path)
    return exp.with_seeds(seeds) if seeds is not None else exp


def console_summary(result: ExperimentResult) -> str:
    """What `trainwell compare` prints: the table, the baselines, at most one advice line per
    variant (the details are in the report) and, last, the headline."""
    title = f"{result.experiment.name} ({data_line(result.data)}):" if result.data else f"{result.experiment.name}:"
    lines = [title, text_table(table_lines(result))]
    if result.baselines:
        lines.append(
            "baselines: "
            + ", ".join(
                f"{b['model']} {b[result.metric]:.4g}" for b in result.baselines if b.get(result.metric) is not None
            )
        )
    lines += [f"  advice [{variant}] {line}" for variant, line in result.advice_brief.items()]
    lines += ["In short:", wrapped(headline(result))]
    return "\n".join(lines)


def suite_summary(results: list[ExperimentResult]) -> str:
    """What `trainwell demo` prints: one short paragraph per experiment, so it fits one screen."""
    lines = [textwrap.fill(overall, width=100)] if (overall := suite_headline(results)) else []
    for r in results:
        lines.append(textwrap.fill(f"{r.experiment.name}: {brief(r)}", width=100, subsequent_indent="  "))
    flagged = sum(len(r.advice_brief) for r in results)
    if flagged:
        lines.append(f"advice for {flagged} variant{'s' if flagged != 1 else ''}: see the report")
    return "\n".join(lines)


__all__ = [
    "Experiment",
    "ExperimentResult",
    "compare",
    "compare_many",
    "suite_report",
    "load_experiment",
    "parse_experiment",
    "expand",
    "preset",
    "resolve",
    "demo",
    "console_summary",
    "suite_summary",
    "interrupted_line",
    "headline",
    "DEMO",
    "EXPERIMENTS",
    "DEFAULT_ROOT",
]
