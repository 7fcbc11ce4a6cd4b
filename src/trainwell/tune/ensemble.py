"""The search's final model: members chosen on the selection half (selection.py), saved as a
run directory that evaluate, predict and load_run read like any ensemble (`train.members`);
each member keeps its own layout (best.pt's member_models)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from .. import rundir
from ..checkpoint import BEST, load_checkpoint, save_checkpoint
from ..config import RunConfig, dump_yaml
from ..data import DataBundle
from ..inference import load_run
from ..outputs import predict_outputs, test_metrics
from ..stop_reasons import NOT_FINITE
from .selection import Selection

EVAL_BATCH = 4096  # rows per forward pass when scoring (evaluation only: any size gives the same numbers)


def finished_members(dirs: list[Path]) -> list[int]:
    """Indices of the candidates that finished with usable best weights."""
    keep = []
    for i, d in enumerate(dirs):
        if not (d / rundir.METRICS).exists() or not (d / rundir.BEST_PT).exists():
            continue
        if rundir.read_json(d / rundir.METRICS).get("stop_reason") != NOT_FINITE:
            keep.append(i)
    return keep


def outputs(run_dir: Path, data: DataBundle, x: torch.Tensor) -> torch.Tensor:
    """A finished run's raw outputs (logits or standardised predictions) for stored inputs x."""
    _, model, _ = load_run(run_dir)
    return predict_outputs(model, data, x, EVAL_BATCH, contextlib.nullcontext)


def save(
    out: Path, base: RunConfig, chosen: list[tuple[RunConfig, Path]], selection: Selection, metrics: dict[str, Any]
) -> None:
    """OUT/ensemble: config.yaml (the default's, as an ensemble of the picks), best.pt, metrics.json."""
    states, models, spec = [], [], None
    by_dir: dict[Path, Any] = {}
    for cfg, d in chosen:
        if d not in by_dir:  # a member picked twice is stored once (torch.save keeps one copy of a shared dict)
            ckpt = load_checkpoint(d / rundir.BEST_PT, BEST)
            by_dir[d] = ckpt["model"]
            spec = spec or dict(ckpt["spec"])
        states.append(by_dir[d])
        models.append(cfg.to_dict()["model"])
    spec = spec or {}
    spec["members"] = len(states)
    raw = base.to_dict()
    raw["name"] = f"{base.name}-search"
    raw["train"]["members"] = len(states)
    raw["model"] = models[0]
    cfg = RunConfig.from_dict(raw)
    out.mkdir(parents=True, exist_ok=True)
    rundir.write_text_atomic(out / rundir.CONFIG, dump_yaml(cfg))
    body = {
        "model": states[0],
        "members": states,
        "member_models": models,
        "epoch": None,
        "monitor": base.train.monitor,
        "value": selection.score,
        "spec": spec,
    }
    save_checkpoint(BEST, body, out / rundir.BEST_PT, durable=True)
    rundir.write_json(out / rundir.METRICS, metrics)


def test_scores(task: str, outs: list[torch.Tensor], data: DataBundle) -> dict[str, float]:
    """Test metrics of an ensemble of these outputs (repeats weigh a member more), as train writes them."""
    values = test_metrics(task, outs, data.y_test, data.target_scale)
    return {f"test_{k}": v for k, v in values.items() if k != "loss"} | {"test_loss": values["loss"]}
