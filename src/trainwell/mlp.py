"""trainwell's MLP and its building blocks: the block, the network, and the embedding in front
of it for tables with many-level categories. models.py registers `build_mlp` as "mlp"."""

from __future__ import annotations

import torch
from torch import nn

from .sections import ModelConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


def mlp_block(d_in: int, d_out: int, norm: str, activation: str, dropout: float) -> list[nn.Module]:
    """Linear → norm → activation → Dropout: BatchNorm normalises pre-activations, and Dropout
    sits after the activation so BatchNorm never sees dropout-mangled statistics. Before BatchNorm
    the Linear has no bias: BatchNorm's mean subtraction would cancel it (its shift takes that role)."""
    linear = nn.Linear(d_in, d_out)
    if norm == "batch":  # the bias is still drawn and then dropped, so a seed gives the weights it always gave
        linear.register_parameter("bias", None)
    layers: list[nn.Module] = [linear]
    if norm == "batch":
        layers.append(nn.BatchNorm1d(d_out))
    elif norm == "layer":
        layers.append(nn.LayerNorm(d_out))
    layers.append(ACTIVATIONS[activation]())
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return layers


class MLP(nn.Sequential):
    """trainwell's MLP: [Linear → norm → activation → Dropout]* + Linear (no Linear bias before
    BatchNorm). Training recognises this definition and runs it on the vectorised fast path
    (fastmlp.MLPStack); the state_dict keys are those of the plain Sequential."""


class CategoryEmbedding(nn.Module):
    """The input layer for tables with many-level categories: the input carries each such
    category as one float column of codes (0 = unknown, 1.. = levels, see data/preprocess.py);
    each is replaced by a learned vector of its column's width, the other columns pass through.
    `embedded` is the data's spec["embedded"]: [{"index", "rows", "width"}, ...]."""

    def __init__(self, d_in: int, embedded: list[dict[str, int]]) -> None:
        super().__init__()
        codes = [e["index"] for e in embedded]
        self.register_buffer("code_index", torch.tensor(codes, dtype=torch.long), persistent=False)
        self.register_buffer(
            "plain_index", torch.tensor([i for i in range(d_in) if i not in codes], dtype=torch.long), persistent=False
        )
        self.rows = [e["rows"] for e in embedded]
        self.tables = nn.ModuleList(nn.Embedding(e["rows"], e["width"]) for e in embedded)
        for table in self.tables:  # small start (as fastai's trunc_normal_ std 0.01): codes begin near "no information"
            nn.init.trunc_normal_(table.weight, std=0.01)
        self.out_features = len(self.plain_index) + sum(e["width"] for e in embedded)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes = x.index_select(1, self.code_index).round().long()
        parts = [x.index_select(1, self.plain_index)]
        for j, table in enumerate(self.tables):
            c = codes[:, j]
            parts.append(
                table(torch.where((c >= 0) & (c < self.rows[j]), c, torch.zeros_like(c)))
            )  # out of range: unknown
        return torch.cat(parts, dim=1)


def build_mlp(
    cfg: ModelConfig, input_shape: tuple[int, ...], n_outputs: int, embedded: list[dict[str, int]] | None = None
) -> nn.Module:
    """The MLP; with `embedded` category columns, a CategoryEmbedding in front of it."""
    d_in = 1
    for s in input_shape:
        d_in *= s
    front = CategoryEmbedding(d_in, embedded) if embedded else None
    if front is not None:
        d_in = front.out_features
    layers: list[nn.Module] = [nn.Flatten()] if len(input_shape) > 1 else []
    for d_out in cfg.hidden:
        layers += mlp_block(d_in, d_out, cfg.norm, cfg.activation, cfg.dropout)
        d_in = d_out
    layers.append(nn.Linear(d_in, n_outputs))
    return nn.Sequential(front, MLP(*layers)) if front is not None else MLP(*layers)
