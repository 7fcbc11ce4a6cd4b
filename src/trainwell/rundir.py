"""The run directory: config.yaml, history.csv/json, metrics.json, best.pt, last.pt, curves.svg.

Text files are written to a temporary name and renamed, like checkpoints, so a crash never
leaves half a file behind.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from .atomic import atomic_write
from .errors import TrainwellError

CONFIG, HISTORY_CSV, HISTORY_JSON, METRICS, BEST_PT, LAST_PT, CURVES = (
    "config.yaml", "history.csv", "history.json", "metrics.json", "best.pt", "last.pt", "curves.svg",
)


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text), binary=False)


def new_run_dir(out: str | Path | None, name: str, root: str | Path = "runs") -> Path:
    """A fresh directory for a run; an --out that already holds a run is refused, never overwritten."""
    if out is not None:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise TrainwellError(f"--out {str(path)!r} is a file; give a directory that is empty or does not exist")
        if path.is_dir() and any((path / f).exists() for f in (BEST_PT, LAST_PT, METRICS, CONFIG)):
            raise TrainwellError(f"run directory {str(path)!r} already holds a run; resume it with 'trainwell resume {path}' or choose another --out")
        path.mkdir(parents=True, exist_ok=True)
        return path
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{name}-{stamp}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    path.mkdir(parents=True)
    return path


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
