"""The search's final model: members chosen on the validation rows (selection.py) from every
finished configuration and the default run's seeds, saved as a run directory that evaluate,
predict and load_run read like any ensemble (`train.members`); each member keeps its own layout
(best.pt's member_models), and a classification's probabilities get one temperature fitted for
the ensemble's average (calibration.py), not a member's."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import calibration, rundir
from ..build import class_weight
from ..checkpoint import BEST, load_checkpoint, save_checkpoint
from ..config import RunConfig, dump_yaml
from ..data import DataBundle
from ..inference import load_run
from ..outputs import ensemble_scores, predict_outputs, test_metrics
from ..stop_reasons import NOT_FINITE
from .selection import Selection, temperature_grid

EVAL_BATCH = 4096  # rows per forward pass when scoring (evaluation only: any size gives the same numbers)


@dataclass(frozen=True)
class Candidate:
    """One member the ensemble may take: seed `member` of the run in `run_dir` (trained as `cfg`)."""

    cfg: RunConfig = field(compare=False)  # a run directory holds one config: equal (and hashed) by where
    run_dir: Path
    member: int = 0

    @property
    def name(self) -> str:
        one = self.member == 0 and self.cfg.train.members == 1
        return self.run_dir.name if one else f"{self.run_dir.name}#{self.member}"


def finished(run_dir: Path) -> bool:
    """A run that finished with usable best weights."""
    if not (run_dir / rundir.METRICS).exists() or not (run_dir / rundir.BEST_PT).exists():
        return False
    return rundir.read_json(run_dir / rundir.METRICS).get("stop_reason") != NOT_FINITE


def finished_members(dirs: list[Path]) -> list[int]:
    """Indices of the candidates that finished with usable best weights."""
    return [i for i, d in enumerate(dirs) if finished(d)]


def seeds_of(cfg: RunConfig, run_dir: Path) -> list[Candidate]:
    """Each seed of a finished run with best weights (a seed that never had finite ones is left out)."""
    if not finished(run_dir):
        return []
    ckpt = load_checkpoint(run_dir / rundir.BEST_PT, BEST)
    states = ckpt.get("members") or [ckpt["model"]]
    return [Candidate(cfg, run_dir, k) for k, state in enumerate(states) if state is not None]


Loaded = dict[Path, list[torch.nn.Module]]  # run directory → its members' models, loaded once per search


def outputs(
    pool: list[Candidate], data: DataBundle, x: torch.Tensor, models: Loaded | None = None
) -> list[torch.Tensor]:
    """Each candidate's raw outputs (logits or standardised predictions) for stored inputs x;
    a run directory is loaded once however many of its seeds are in the pool (and across calls
    sharing `models`: loading costs ~0.1 s a run, as much as training a member on a small table)."""
    models = {} if models is None else models
    outs = []
    for c in pool:
        if c.run_dir not in models:
            _, model, _ = load_run(c.run_dir)
            models[c.run_dir] = list(model.members) if hasattr(model, "members") else [model]
        outs.append(predict_outputs(models[c.run_dir][c.member], data, x, EVAL_BATCH, contextlib.nullcontext))
    return outs


def prior_correction(base: RunConfig, data: DataBundle) -> dict[str, Any] | None:
    """The class weights' prior removed, no temperature (calibration.py's first step): what the
    ensemble is chosen on, since the saved ensemble's probabilities are corrected so; None without weights."""
    weights = class_weight(base, data)
    return None if weights is None else calibration.prior_only(weights)


def choice_temperatures(task: str, pool: list[Candidate]) -> tuple[float, ...] | None:
    """The temperatures a classification ensemble is scored at while chosen (selection.temperature_grid):
    below 1 when a member of the pool was taught with label smoothing (calibrate allows them when a pick
    was); None for regression."""
    if task != "classification":
        return None
    return temperature_grid(any(c.cfg.train.label_smoothing > 0 for c in pool))


def calibrate(
    base: RunConfig, data: DataBundle, val_outs: list[torch.Tensor], picks: list[Candidate]
) -> dict[str, Any] | None:
    """A classification ensemble's probability corrections, fitted on all validation rows for
    the average of its members' probabilities (as train fits an ensemble of seeds); None for regression.
    The temperature may sharpen when a chosen member was trained with label smoothing (calibration.py)."""
    if data.task != "classification":
        return None
    smoothed = any(c.cfg.train.label_smoothing > 0 for c in picks)
    decision = calibration.decision_weights(base.train.class_weights, data.y_train, data.n_outputs)
    scores = ensemble_scores(data.task, val_outs)[0]
    return calibration.fit(scores, data.y_val, class_weight(base, data), smoothed, decision)


def save(
    out: Path,
    base: RunConfig,
    chosen: list[Candidate],
    selection: Selection,
    metrics: dict[str, Any],
    cal: dict[str, Any] | None,
) -> None:
    """OUT/ensemble: config.yaml (the default's, as an ensemble of the picks), best.pt, metrics.json."""
    states, models, spec = [], [], None
    by_member: dict[tuple[Path, int], Any] = {}
    for c in chosen:
        if (c.run_dir, c.member) not in by_member:  # a member picked twice is stored once (one shared dict)
            ckpt = load_checkpoint(c.run_dir / rundir.BEST_PT, BEST)
            by_member[(c.run_dir, c.member)] = (ckpt.get("members") or [ckpt["model"]])[c.member]
            spec = spec or dict(ckpt["spec"])
        states.append(by_member[(c.run_dir, c.member)])
        models.append(c.cfg.to_dict()["model"])
    spec = spec or {}
    spec["members"] = len(states)
    spec.pop("calibration", None)  # a member's temperature suits its own probabilities, not the average
    if cal is not None:
        spec["calibration"] = cal
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


def test_scores(
    task: str, outs: list[torch.Tensor], data: DataBundle, cal: dict[str, Any] | None = None
) -> dict[str, float]:
    """Test metrics of an ensemble of these outputs (repeats weigh a member more), as train writes them."""
    values = test_metrics(task, outs, data.y_test, data.target_scale, cal)
    return {f"test_{k}": v for k, v in values.items() if k != "loss"} | {"test_loss": values["loss"]}


def picked_val_outputs(
    data: DataBundle,
    select_data: DataBundle,
    sel_outs: list[torch.Tensor],
    chosen: list[int],
    pool: list[Candidate],
    loaded: Loaded,
) -> list[torch.Tensor]:
    """The outputs of the picks (`chosen`: indices into `pool`, repeats included) on every validation row of the
    search's own fold, where the ensemble's temperature is fitted; `sel_outs`: the pool's on the choosing rows."""
    if select_data is data:  # chosen on every validation row: the picks' outputs there are at hand
        return [sel_outs[j] for j in chosen]
    picks = [pool[j] for j in chosen]
    distinct = list(dict.fromkeys(picks))
    by_member = dict(zip(distinct, outputs(distinct, data, data.x_val, loaded)))
    return [by_member[c] for c in picks]


def scores_on_test(
    data: DataBundle,
    members: list[Candidate],
    best_single: Candidate,
    cal: dict[str, Any] | None,
    loaded: Loaded,
) -> tuple[dict[str, float], dict[str, float]]:
    """Test metrics of the saved ensemble (every fold's members) and of the best single member."""
    on_test = list(dict.fromkeys([*members, best_single]))  # each member once, the best single one too
    test_outs = dict(zip(on_test, outputs(on_test, data, data.x_test, loaded)))
    scores = test_scores(data.task, [test_outs[c] for c in members], data, cal)
    return scores, test_scores(data.task, [test_outs[best_single]], data)
