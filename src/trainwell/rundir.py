"""The run directory: config.yaml, history.csv/json, metrics.json, best.pt, last.pt, curves.svg.

Text files are written to a temporary name and renamed, like checkpoints, so a crash never
leaves half a file behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from . import paths
from .atomic import atomic_write
from .errors import TrainwellError, shown_path

CONFIG, HISTORY_CSV, HISTORY_JSON, METRICS, BEST_PT, LAST_PT, CURVES = (
    "config.yaml",
    "history.csv",
    "history.json",
    "metrics.json",
    "best.pt",
    "last.pt",
    "curves.svg",
)


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text), binary=False)


RUN_FILES = (CONFIG, HISTORY_CSV, HISTORY_JSON, METRICS, BEST_PT, LAST_PT, CURVES)  # what a run writes
RUN_MARKERS = (BEST_PT, LAST_PT, METRICS, CONFIG)  # any of these: the folder holds a run


def check_run_out(out: str | Path) -> Path:
    """Check an --out for a new run and create nothing: it must be a folder or not exist, lie
    below folders only, and hold no run and no file a run writes (the user's own files of those
    names would be overwritten). Call this before any input is read, so a refusal costs nothing."""
    path = paths.check_text(out, "--out")
    paths.check_folder_can_exist(path, "--out")
    if path.is_dir() and os.path.lexists(path / METRICS):  # metrics.json is written last: the run finished
        raise TrainwellError(
            f"run directory {shown_path(path)} already holds a run, and it finished; choose another --out (a "
            f"finished run has nothing to resume)"
        )
    if path.is_dir() and any(os.path.lexists(path / f) for f in RUN_MARKERS):
        raise TrainwellError(
            f"run directory {shown_path(path)} already holds a run that did not finish; continue it with "
            f"'trainwell resume {path}' or choose another --out"
        )
    return paths.check_out_dir(path, "--out", RUN_FILES, "a run")


def default_run_dir(name: str, root: str | Path = "runs") -> Path:
    """runs/NAME-TIMESTAMP (with -2, -3 ... when taken), not yet created."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = paths.check_text(Path(root) / f"{name}-{stamp}", "run directory")
    paths.check_folder_can_exist(base.parent, "the runs folder")
    path, k = base, 1
    while os.path.lexists(path):
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def new_run_dir(out: str | Path | None, name: str, root: str | Path = "runs") -> Path:
    """A fresh directory for a run; an --out that already holds a run is refused, never overwritten."""
    if out is not None:
        return paths.prepare_dir(check_run_out(out), "--out")
    path = default_run_dir(name, root)
    return paths.prepare_dir(path, "run directory")


def history_csv(history: list[dict[str, Any]]) -> str:
    if not history:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]), lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    write_text_atomic(run_dir / HISTORY_CSV, history_csv(history))
    write_text_atomic(run_dir / HISTORY_JSON, json.dumps(history, indent=1) + "\n")


def write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
