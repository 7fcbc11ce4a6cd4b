"""trainwell's MLP and its building blocks: the block, the network, and the embedding in front
of it for tables with many-level categories or embedded numeric columns. models.py registers `build_mlp` as "mlp"."""

from __future__ import annotations

import torch
from torch import nn

from .errors import ConfigError
from .numembed import PeriodicEmbedding
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


class InputEmbedding(nn.Module):
    """The input layer of a table: each many-level category, carried as one float column of codes
    (0 = unknown, 1.. = levels, see data/preprocess.py), is replaced by a learned vector of its
    column's width (`tables`); with model.numeric_embedding, the numeric columns are also embedded
    (`numeric`, numembed.py) and appended after them. The other columns pass through first, the raw
    numeric values among them. `embedded` is the data's spec["embedded"]: [{"index", "rows", "width"}, ...]."""

    def __init__(self, d_in: int, embedded: list[dict[str, int]], numeric: PeriodicEmbedding | None = None) -> None:
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
        self.numeric = numeric
        self.out_features = (
            len(self.plain_index) + sum(e["width"] for e in embedded) + (numeric.out_features if numeric else 0)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes = x.index_select(1, self.code_index).round().long()
        parts = [x.index_select(1, self.plain_index)]
        for j, table in enumerate(self.tables):
            c = codes[:, j]
            parts.append(
                table(torch.where((c >= 0) & (c < self.rows[j]), c, torch.zeros_like(c)))
            )  # out of range: unknown
        if self.numeric is not None:
            parts.append(self.numeric(x))
        return torch.cat(parts, dim=1)


def numeric_embedding(
    cfg: ModelConfig, d_in: int, codes: list[int], numeric: list[int] | None
) -> PeriodicEmbedding | None:
    """The periodic embedding of the numeric columns (None: every column but the codes), or None
    when model.numeric_embedding is none or the table has no numeric column."""
    columns = [i for i in range(d_in) if i not in codes] if numeric is None else numeric
    if cfg.numeric_embedding == "none" or not columns:
        return None
    relu = cfg.numeric_embedding == "periodic-relu"
    return PeriodicEmbedding(
        columns, cfg.numeric_frequencies, cfg.numeric_width, cfg.numeric_sigma, relu, cfg.numeric_lr_factor
    )


def build_mlp(
    cfg: ModelConfig,
    input_shape: tuple[int, ...],
    n_outputs: int,
    embedded: list[dict[str, int]] | None = None,
    numeric: list[int] | None = None,
) -> nn.Module:
    """The MLP; with `embedded` category columns or a numeric embedding (of the input columns
    `numeric`; None: all but the codes), an InputEmbedding in front of it."""
    d_in = 1
    for s in input_shape:
        d_in *= s
    if cfg.numeric_embedding != "none" and len(input_shape) > 1:
        raise ConfigError(
            f"model.numeric_embedding = {cfg.numeric_embedding} embeds the columns of a table; these inputs are "
            f"images {list(input_shape)}: set it to none"
        )
    embedded = embedded or []
    periodic = numeric_embedding(cfg, d_in, [e["index"] for e in embedded], numeric)
    front = InputEmbedding(d_in, embedded, periodic) if embedded or periodic is not None else None
    if front is not None:
        d_in = front.out_features
    layers: list[nn.Module] = [nn.Flatten()] if len(input_shape) > 1 else []
    for d_out in cfg.hidden:
        layers += mlp_block(d_in, d_out, cfg.norm, cfg.activation, cfg.dropout)
        d_in = d_out
    layers.append(nn.Linear(d_in, n_outputs))
    return nn.Sequential(front, MLP(*layers)) if front is not None else MLP(*layers)
