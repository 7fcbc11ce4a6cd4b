"""Evaluation metrics, computed for K members at once from their outputs.

Every metric of a run is computed here and nowhere else: per-epoch validation rows, test
metrics, ensembles, evaluate and compare all call `compute`. Outputs carry a leading member
axis (K, N, O): regression outputs are standardised predictions (`target`, a TargetScale or the
target's standard deviation, maps them to the target's units), classification outputs are
log-probabilities (log_softmax of a member's logits, or the log of an ensemble's mean probability).

    regression:     mae, rmse (target units), r2
    classification: accuracy, balanced_accuracy, macro_f1, log_loss, roc_auc
                    (binary AUC; one-vs-rest macro average for more classes)
"""

from __future__ import annotations

import torch

from .data.target_scale import TargetScale
from .metric_names import CLASSIFICATION, HIGHER_IS_BETTER, MAIN, REGRESSION, mode_of, names  # noqa: F401  (re-exported)


@torch.no_grad()
def compute(task: str, out: torch.Tensor, y: torch.Tensor, target: float | TargetScale = 1.0) -> dict[str, list[float]]:
    """Per-member metrics: {name: [value of member 0, member 1, ...]}.

    out: (K, N, O) as described above; y: (N, 1) standardised targets or (N,) class indices;
    target: the run's TargetScale, or just the standard deviation of a target learned as given."""
    # float64 sums: a float32 reduction's last bits depend on how many threads split it
    out = out.double()
    if task == "regression":
        y = y.double().reshape(1, -1, 1)
        scale = target if isinstance(target, TargetScale) else TargetScale(std=target)
        if scale.transform == "none":  # a linear map: the errors scale by std alone
            return _regression(out, y, scale.std)
        return _regression(scale.to_original(out), scale.to_original(y), 1.0)
    return _classification(out, y.long())


def _regression(out: torch.Tensor, y: torch.Tensor, target_std: float) -> dict[str, list[float]]:
    err = out - y
    mae = err.abs().mean(dim=(1, 2)) * target_std
    mse = err.pow(2).mean(dim=(1, 2))
    var = (y - y.mean()).pow(2).mean()
    r2 = 1 - mse / var if var > 0 else torch.full_like(mse, float("nan"))
    return {"mae": mae.tolist(), "rmse": (mse.sqrt() * target_std).tolist(), "r2": r2.tolist()}


def _classification(logp: torch.Tensor, y: torch.Tensor) -> dict[str, list[float]]:
    K, N, C = logp.shape
    pred = logp.argmax(-1)  # (K, N)
    correct = (pred == y).double()
    # confusion counts per member: true positives, predicted and actual counts per class
    onehot_y = torch.nn.functional.one_hot(y, C).double()  # (N, C)
    onehot_p = torch.nn.functional.one_hot(pred, C).double()  # (K, N, C)
    tp = (onehot_p * onehot_y).sum(1)  # (K, C)
    predicted, actual = onehot_p.sum(1), onehot_y.sum(0).expand(K, C)
    present = actual > 0
    recall = torch.where(present, tp / actual.clamp(min=1), torch.zeros_like(tp))
    balanced = recall.sum(1) / present.sum(1).clamp(min=1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(
        precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), torch.zeros_like(tp)
    )
    macro_f1 = (f1 * present).sum(1) / present.sum(1).clamp(min=1)
    log_loss = -logp.gather(-1, y.view(1, N, 1).expand(K, N, 1)).squeeze(-1).mean(1)
    return {
        "accuracy": correct.mean(1).tolist(),
        "balanced_accuracy": balanced.tolist(),
        "macro_f1": macro_f1.tolist(),
        "log_loss": log_loss.tolist(),
        "roc_auc": member_aucs(logp.exp(), y),
    }


def member_aucs(prob: torch.Tensor, y: torch.Tensor) -> list[float]:
    """ROC AUC of each of K members, prob (K, N, C): binary AUC from the positive class's probability,
    one-vs-rest macro average otherwise; classes absent from y (or present in every row) are skipped,
    nan when none is scorable. Every member's and class's ranks come from one batched sort (the per-epoch
    validation of a 5-member, 10-class stack made 50 sorts before)."""
    K, N, C = prob.shape
    classes = torch.tensor([1] if C == 2 else range(C), device=prob.device)
    positive = y.view(1, N) == classes.view(-1, 1)  # (classes, N)
    n_pos = positive.sum(1).double()
    scorable = (n_pos > 0) & (n_pos < N)
    if not bool(scorable.any()):
        return [float("nan")] * K
    scores = prob.double().index_select(2, classes).transpose(1, 2).contiguous()  # (K, classes, N)
    ordered = scores.sort(-1).values
    # Mann-Whitney U with average ranks for ties: a score's tied block spans sorted positions below..above
    below = torch.searchsorted(ordered, scores, right=False)
    above = torch.searchsorted(ordered, scores, right=True)
    ranks = (below + above + 1).double() / 2  # exact halves: the sums below are exact in float64
    u = (ranks * positive).sum(-1) - n_pos * (n_pos + 1) / 2  # (K, classes)
    auc = u / (n_pos * (N - n_pos))
    return [sum(row) / len(row) for row in auc[:, scorable].tolist()]  # summed in class order, as before
