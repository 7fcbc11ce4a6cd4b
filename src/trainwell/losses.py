"""The training and validation loss of K members at once: (K, B, O) outputs and (K, B, ...)
targets give (K,) losses, and `value_and_grad` their gradient with respect to the outputs."""

from __future__ import annotations

from typing import Callable

import torch


class MemberLoss:
    """The training and validation loss, per member (K,): mean squared error for regression;
    cross-entropy with per-member label smoothing (K, 1) and optional class weights otherwise
    (a weighted mean over rows, each row weighted by its class's weight). `value_and_grad`
    gives the gradient with respect to the outputs in closed form (no autograd call per step)."""

    def __init__(self, task: str, smoothing: torch.Tensor, class_weight: torch.Tensor | None) -> None:
        self.task, self.smoothing, self.class_weight = task, smoothing, class_weight

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.value_and_grad(out, y, need_grad=False)[0]

    def subset(self, rows: list[int]) -> MemberLoss:
        """The loss of the given stack rows (the members still training)."""
        return MemberLoss(self.task, self.smoothing[rows], self.class_weight)

    def for_validation(self) -> MemberLoss:
        """The loss validation reports and early stopping watches: the training loss without label
        smoothing, as timm validates. Smoothing is a training device: its loss has a floor (the
        entropy of the softened targets) that it keeps creeping towards long after the predicted
        probabilities stop improving — digits at 3,000 rows trained 146 epochs on it, where the
        log loss had stopped falling by epoch ~41 (benchmarks/bench_tables.py)."""
        return MemberLoss(self.task, torch.zeros_like(self.smoothing), self.class_weight)

    def value_and_grad(
        self, out: torch.Tensor, y: torch.Tensor, need_grad: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.task == "regression":
            err = out - y
            return err.pow(2).mean(dim=(1, 2)), (err * (2.0 / (err.shape[1] * err.shape[2])) if need_grad else None)
        logp = torch.log_softmax(out.float(), dim=-1)
        K, B, C = logp.shape
        s, keep, spread, hot, classes = self._smoothing_terms(out.device, C)
        nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        per_row = keep * nll + s * (-logp.mean(-1))
        if self.class_weight is None:  # every weight 1: (per_row · 1).sum / B and 1 / B, without the ones
            total, scale = self._row_counts(K, B, out.device)
            losses = per_row.sum(1) / total
        else:
            w = self.class_weight.to(out.device)[y]
            total = w.sum(1, keepdim=True)
            losses, scale = (per_row * w).sum(1) / total.squeeze(1), (w / total).unsqueeze(-1)
        if not need_grad:
            return losses, None
        # d per_row / d out = softmax − target, the target (1 − s)·onehot + s / classes: s / classes off the
        # label and (1 − s) + s / classes on it, the same roundings as onehot·(1 − s) + s / classes
        target = torch.where(y.unsqueeze(-1) == classes, hot, spread)
        return losses, logp.exp_().sub_(target).mul_(scale)

    def _smoothing_terms(self, device: torch.device, classes: int) -> tuple[torch.Tensor, ...]:
        """s, 1 − s (K, 1), s / classes and (1 − s) + s / classes (K, 1, 1) and the class indices, made
        once: rebuilt every step they were a dozen small ops of the loss's ~30."""
        key = (device, classes)
        made = self.__dict__.setdefault("_terms", {})
        if key not in made:
            s = self.smoothing.to(device)
            spread = (s / classes).unsqueeze(-1)
            made[key] = (s, 1 - s, spread, (1 - s).unsqueeze(-1) + spread, torch.arange(classes, device=device))
        return made[key]

    def _row_counts(self, members: int, rows: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The sum of a batch's unit weights, (K,) float32 `rows` (exact below 2**24 rows), and each row's
        share 1 / rows (K, 1, 1), divided as the weights were."""
        made = self.__dict__.setdefault("_counts", {})
        key = (members, rows, device)
        if key not in made:
            total = torch.full((members, 1), float(rows), device=device)
            made[key] = (total.view(members), (torch.ones_like(total) / total).unsqueeze(-1))
        return made[key]


class CustomLoss:
    """A loss function of one's own, `loss(outputs, targets) -> scalar` for one member's batch,
    applied member by member; its gradient by autograd."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self.fn = fn

    def subset(self, rows: list[int]) -> CustomLoss:
        return self  # one function for every member

    def for_validation(self) -> CustomLoss:
        return self  # the user's function is what validation reports

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.fn(out[k], y[k]).reshape(()) for k in range(out.shape[0])])

    def value_and_grad(
        self, out: torch.Tensor, y: torch.Tensor, need_grad: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        leaf = out.detach().requires_grad_()
        with torch.enable_grad():
            losses = self(leaf, y)
            (g,) = torch.autograd.grad(losses.sum(), leaf)
        return losses.detach(), g


def member_losses(
    task: str, smoothing: torch.Tensor, class_weight: torch.Tensor | None, custom: Callable | None = None
) -> MemberLoss | CustomLoss:
    return CustomLoss(custom) if custom is not None else MemberLoss(task, smoothing, class_weight)


LossFn = MemberLoss | CustomLoss  # what the stacks and the loop take
