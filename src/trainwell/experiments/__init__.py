"""Experiments: compare training choices over seeds, with intervals, baselines and advice.

    from trainwell.experiments import compare, load_experiment, preset
    result = compare(preset("optimizers"), out="reports/optimizers", workers=2)
    print(result.summary)
"""

from __future__ import annotations

from typing import Any

from ..errors import TrainwellError
from .compare import compare, compare_many, demo, suite_report
from .presets import DEMO, EXPERIMENTS, preset_experiment
from .report import ExperimentResult, table_lines, text_table
from .spec import Experiment, expand, load_experiment, parse_experiment

DEFAULT_ROOT = "reports"  # compare and demo write under reports/<name> unless --out says otherwise


def preset(name: str, data_path: str | None = None) -> Experiment:
    return parse_experiment(preset_experiment(name, data_path), source=f"preset {name}")


def resolve(path: str | None, preset_name: str | None, overrides: dict[str, Any] | None = None, seeds: int | None = None) -> Experiment:
    """The experiment a command names: a file or a built-in preset (exactly one), with --seeds applied."""
    if bool(path) == bool(preset_name):
        raise TrainwellError("name one experiment: an EXPERIMENT.yaml file or --preset NAME (see 'trainwell compare --list')")
    data_path = (overrides or {}).get("data.path")
    exp = load_experiment(path) if path else preset(preset_name, data_path)
    return exp.with_seeds(seeds) if seeds is not None else exp


def console_summary(result: ExperimentResult) -> str:
    """The summary table and each variant's advice, as printed by `trainwell compare`."""
    lines = [f"{result.experiment.name}:", text_table(table_lines(result))]
    if result.baselines:
        lines.append("baselines: " + ", ".join(f"{b['model']} {b[result.metric]:.4g}" for b in result.baselines if b.get(result.metric) is not None))
    for variant, items in result.advice.items():
        for item in items:
            lines.append(f"  advice [{variant}] {item}")
    return "\n".join(lines)


__all__ = [
    "Experiment", "ExperimentResult", "compare", "compare_many", "suite_report", "load_experiment", "parse_experiment",
    "expand", "preset", "resolve", "demo", "console_summary", "DEMO", "EXPERIMENTS", "DEFAULT_ROOT",
]
