"""Probabilities you can trust, and a label decision kept apart from them.

A classification run's predicted probabilities are corrected once, after training, on the
validation rows with the best weights, and the corrections are saved in best.pt so that
metrics.json, `evaluate`, `predict` and `predict_proba` all report the same numbers:

1. the prior: with class weights w_c the network learns q(c|x) ∝ w_c·p(c|x), so a 5% class
   weighted 10× is predicted about ten times too often; subtracting log w_c from its
   log-probabilities gives p(c|x) back;
2. the temperature: one number T dividing those log-probabilities, chosen to minimise the
   validation log loss, never below 1 (see T_RANGE): early stopping on another metric and long
   training leave a network over-confident. T > 0 keeps the order of the classes within a row,
   so ROC AUC of a binary task is unchanged.

The label is a separate decision: the most probable class, or — with class weights — the
class with the largest p(c|x)·w_c (the Bayes decision for balanced accuracy, and exactly the
decision the weighted network made before the corrections). With train.class_weights "decision"
the network trains unweighted (its probabilities need no prior correction) and the label is still
the class with the largest p(c|x)·w_c for the balanced weights: the tabular preset's, since on the
17-table benchmark weighted training cost churn and hpc_data their AUC (README).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from . import metrics as M

LABEL_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")  # the metrics of the label decision
# Temperatures searched. Never below 1: the validation rows also chose the best epoch, so they flatter
# the network, and sharpening on them overfits (digits, 215 validation rows nearly all right: T = 0.42
# raised the test log loss from 0.065 to 0.090); softening an over-confident network is what they can tell.
T_RANGE = (1.0, 20.0)
# With train.label_smoothing the network is taught to stay unsure (a sure row's target is 1 − ε), a softening that
# only a temperature below 1 undoes: the search then starts here (ε 0.1 on 10 classes caps a probability at 0.91,
# whose log-odds must be doubled to reach 0.99)
SMOOTHED_T_MIN = 0.25


def fit(
    logp: torch.Tensor,
    y: torch.Tensor,
    class_weight: torch.Tensor | None,
    smoothed: bool = False,
    decision_weight: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Corrections for (N, C) log-probabilities of the validation rows with labels y; `class_weight`: the
    weights training used (None: unweighted); `smoothed`: the network was trained with label smoothing, so
    the temperature may sharpen; `decision_weight`: weights the label decision applies to the corrected
    probabilities (None: class_weight's)."""
    shift = torch.zeros(logp.shape[1]) if class_weight is None else _prior_shift(class_weight)
    base = logp.detach().cpu().double() + shift
    y = y.cpu().long()
    nll = lambda log_t: _nll(base / math.exp(log_t), y)  # noqa: E731
    log_t = _golden_min(nll, math.log(SMOOTHED_T_MIN if smoothed else T_RANGE[0]), math.log(T_RANGE[1]))
    if nll(0.0) <= nll(log_t):  # no better than leaving the temperature at 1 (the search's edge)
        log_t = 0.0
    decision = -shift if decision_weight is None else -_prior_shift(decision_weight)
    return _corrections(shift, math.exp(log_t), decision)


def prior_only(class_weight: torch.Tensor) -> dict[str, Any]:
    """The first correction alone: the class weights' prior removed, temperature 1."""
    shift = _prior_shift(class_weight)
    return _corrections(shift, 1.0, -shift)


def balanced_weights(y_train: torch.Tensor, n_classes: int) -> torch.Tensor:
    """scikit-learn's "balanced" class weights: rows / (classes × rows of the class), from the training labels."""
    counts = torch.bincount(y_train.cpu(), minlength=n_classes).float()
    return len(y_train) / (n_classes * counts.clamp(min=1))


def decision_weights(class_weights: str, y_train: torch.Tensor, n_outputs: int) -> torch.Tensor | None:
    """The label decision's weights for train.class_weights: balanced for "decision" (trained unweighted,
    labels decided balanced); None otherwise (the decision uses the weights training used)."""
    return balanced_weights(y_train, n_outputs) if class_weights == "decision" else None


def _prior_shift(class_weight: torch.Tensor) -> torch.Tensor:
    return -torch.log(class_weight.cpu().double())


def _corrections(shift: torch.Tensor, temperature: float, decision: torch.Tensor) -> dict[str, Any]:
    return {
        "temperature": temperature,
        "prior_shift": shift.tolist(),
        "decision_shift": decision.tolist(),  # log w_c of the decision's weights: zeros without them
    }


def _nll(logits: torch.Tensor, y: torch.Tensor) -> float:
    return torch.nn.functional.cross_entropy(logits, y).item()


def _golden_min(f: Any, lo: float, hi: float, steps: int = 40) -> float:
    """Minimiser of a unimodal f on [lo, hi] by golden-section search (deterministic, ~1e-8 wide)."""
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(steps):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (a + b) / 2


def apply(logp: torch.Tensor, cal: dict[str, Any] | None) -> torch.Tensor:
    """Calibrated log-probabilities from log-probabilities (or logits) of shape (..., C)."""
    logp = logp.to(torch.promote_types(logp.dtype, torch.float32))  # float32 at least; float64 stays
    if cal is None:
        return torch.log_softmax(logp, dim=-1)
    shift = torch.tensor(cal["prior_shift"], dtype=logp.dtype, device=logp.device)
    return torch.log_softmax((logp + shift) / cal["temperature"], dim=-1)


def decision_scores(logp: torch.Tensor, cal: dict[str, Any] | None) -> torch.Tensor:
    """Scores whose argmax is the label decision, from calibrated log-probabilities."""
    if cal is None or not any(cal["decision_shift"]):
        return logp
    return logp + torch.tensor(cal["decision_shift"], dtype=logp.dtype, device=logp.device)


def classification_metrics(logp: torch.Tensor, y: torch.Tensor, cal: dict[str, Any] | None) -> dict[str, float]:
    """Test metrics of (N, C) calibrated log-probabilities: log loss and ROC AUC of the
    probabilities, accuracy, balanced accuracy and macro F1 of the label decision."""
    values = {k: v[0] for k, v in M.compute("classification", logp.unsqueeze(0), y).items()}
    decided = decision_scores(logp, cal)
    if decided is not logp:
        labels = M.compute("classification", decided.unsqueeze(0), y)
        values.update({k: labels[k][0] for k in LABEL_METRICS})
    return values


def problem(cal: Any, n_classes: int) -> str | None:
    """What is wrong with corrections read from a best.pt (a phrase), or None."""
    if not isinstance(cal, dict):
        return "has calibration that is not a mapping"
    t = cal.get("temperature")
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not SMOOTHED_T_MIN <= t <= T_RANGE[1]:
        return f"has calibration temperature {t!r}; expected a number from {SMOOTHED_T_MIN} to {T_RANGE[1]}"
    for key in ("prior_shift", "decision_shift"):
        v = cal.get(key)
        if not (isinstance(v, list) and len(v) == n_classes and all(_finite(x) for x in v)):
            return f"has calibration {key} {v!r}; expected {n_classes} finite numbers"
    return None


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def describe(weighted: bool, monitor: str, class_weights: str = "none") -> str:
    """A classification's start line: what train.monitor optimises, what is corrected afterwards."""
    loss = "class-weighted log loss" if weighted else "log loss"
    target = loss if monitor == "val_loss" else monitor.removeprefix("val_").replace("_", " ")
    balanced = weighted or class_weights == "decision"
    decision = "largest probability × class weight (balanced)" if balanced else "most probable class"
    prior = "class weights' prior removed, then " if weighted else ""
    return (
        f"monitor {monitor} optimises the {target} of the raw outputs; probabilities: {prior}a temperature "
        f"fitted on the validation rows after training; labels: {decision}"
    )
