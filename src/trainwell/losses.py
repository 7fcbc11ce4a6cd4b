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
        s = self.smoothing.to(out.device)  # (K, 1)
        nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        per_row = (1 - s) * nll + s * (-logp.mean(-1))
        w = self.class_weight.to(out.device)[y] if self.class_weight is not None else torch.ones_like(per_row)
        total = w.sum(1, keepdim=True)
        losses = (per_row * w).sum(1) / total.squeeze(1)
        if not need_grad:
            return losses, None
        # d per_row / d out = softmax − (1 − s)·onehot − s / classes
        target = torch.zeros_like(logp).scatter_(-1, y.unsqueeze(-1), 1.0) * (1 - s).unsqueeze(-1) + (
            s / logp.shape[-1]
        ).unsqueeze(-1)
        return losses, (logp.exp() - target) * (w / total).unsqueeze(-1)


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
