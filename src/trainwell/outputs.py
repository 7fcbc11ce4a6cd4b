"""A trained model's outputs on stored rows, and the test metrics of one model or of an ensemble.

Used after training: by the run book (metrics.json), inference (evaluate, predict), fit on one's own module
and the search's ensemble selection. The loop itself only validates (loop.validation).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from . import calibration
from . import metrics as M
from .data import DataBundle
from .data.target_scale import TargetScale


@torch.inference_mode()
def predict_outputs(
    model: torch.nn.Module, data: DataBundle, x: torch.Tensor, batch_size: int, autocast: Callable
) -> torch.Tensor:
    """One model's outputs for stored inputs x, in eval mode; the model's previous mode is restored."""
    was_training = model.training
    model.eval()
    try:
        outs = []
        for i in range(0, len(x), batch_size):
            with autocast():
                outs.append(model(data.inputs(x[i : i + batch_size])).float())
        return torch.cat(outs)
    finally:
        model.train(was_training)


def model_scores(task: str, out: torch.Tensor) -> torch.Tensor:
    """One model's scores from its outputs: the prediction, or log-probabilities from logits."""
    return out if task == "regression" else torch.log_softmax(out.float(), dim=-1)


def ensemble_scores(task: str, outs: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """(1, N, O) scores of the members' average: mean prediction, or log of the mean probability.
    `outs`: the members' outputs, a list or already stacked (K, N, O)."""
    stacked = outs if isinstance(outs, torch.Tensor) else torch.stack(outs)
    if task == "regression":
        return stacked.mean(0, keepdim=True)
    return torch.log(torch.softmax(stacked.float(), dim=-1).mean(0, keepdim=True).clamp(min=1e-12))


def test_metrics(
    task: str,
    outs: list[torch.Tensor],
    y: torch.Tensor,
    target: float | TargetScale,
    cal: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Metrics of one model or of an ensemble (members' outputs averaged) on labelled rows;
    a classification's probabilities corrected by `cal` (calibration.py) when given.
    `target`: the regression target's scale (metrics.compute), ignored for classification."""
    scores = ensemble_scores(task, outs)
    if task == "classification" and cal is not None:
        values = calibration.classification_metrics(calibration.apply(scores[0], cal), y, cal)
        return values | {"loss": values["log_loss"]}
    values = {k: v[0] for k, v in M.compute(task, scores, y, target).items()}
    if task == "regression":
        values["loss"] = (scores[0] - y).pow(2).mean().item()
    else:
        values["loss"] = values["log_loss"]
    return values


def score(out: torch.Tensor, y: torch.Tensor, data: DataBundle, cal: dict[str, Any] | None = None) -> dict[str, float]:
    """Metrics and loss of one model's outputs (logits, or an ensemble's log-probabilities) on labelled rows."""
    return test_metrics(
        data.task,
        [model_scores(data.task, out)],
        y,
        data.target_scale,
        cal,
    )
