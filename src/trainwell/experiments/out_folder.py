"""A compare's output folder: what it writes there, and the checks before anything is written
(an earlier compare of the same experiment is continued; anything else is refused, never replaced)."""

from __future__ import annotations

from pathlib import Path

import yaml

from .. import paths, safeyaml
from ..errors import TrainwellError, shown, shown_path
from .spec import Experiment, slug

RESULTS, SUMMARY, REPORT_MD, REPORT_HTML = "results.csv", "summary.csv", "report.md", "report.html"
SPEC = "experiment.yaml"
WRITES = (SPEC, RESULTS, SUMMARY, REPORT_MD, REPORT_HTML, "plots", "runs")  # what a compare puts in its folder


def _continues(folder: Path, e: Experiment) -> bool:
    """Whether `folder` holds an earlier compare of the same experiment (to be continued);
    refuses a folder holding another experiment's results, which continuing would replace."""
    spec = folder / SPEC
    if not spec.is_file():
        return False
    try:
        raw = safeyaml.load(spec.read_text(encoding="utf-8"), shown_path(spec))
    except (TrainwellError, OSError, UnicodeDecodeError, yaml.YAMLError):
        raw = None
    if not isinstance(raw, dict) or not isinstance(raw.get("variants"), dict):
        raise TrainwellError(
            f"--out {shown_path(folder)} holds an {SPEC} that trainwell did not write; choose another --out"
        )
    if raw.get("name") != e.name:
        raise TrainwellError(
            f"--out {shown_path(folder)} holds the results of experiment {shown(raw.get('name'), 40)}; choose "
            f"another --out"
        )
    return True


def check_out(out: str | Path, experiments: list[Experiment], nested: bool) -> Path:
    """Check a compare's output folder before anything is written: a folder (or nothing) below
    folders only; an earlier compare of the same experiment is continued, and any other file a
    compare writes (results.csv, runs/, ...) already there is refused rather than replaced."""
    out = paths.check_text(out, "--out")
    paths.check_folder_can_exist(out, "--out")
    if not nested:
        if not _continues(out, experiments[0]):
            paths.check_out_dir(out, "--out", WRITES, "a compare")
        return out
    earlier = False
    for e in experiments:
        folder = out / slug(e.name)
        paths.check_folder_can_exist(folder, "--out")
        if _continues(folder, e):
            earlier = True
        else:
            paths.check_out_dir(folder, "--out", WRITES, "a compare")
    if not earlier:
        paths.check_out_dir(out, "--out", (REPORT_MD, REPORT_HTML), "the report")
    return out
