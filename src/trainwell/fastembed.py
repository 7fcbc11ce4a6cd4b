"""Embeddings on the fast path: the InputEmbedding in front of trainwell's MLP (mlp.py), for K
members at once, with its backward written out.

A table with a many-level text column carries each such column as one float column of codes;
the embedding replaces each code by a learned vector. Here every member's tables are one
(K·rows, width) matrix, so a batch of codes is looked up with one index per table for all
members, and the gradient is one index_add per table: no autograd and no per-member loop, so
such a table trains on the vectorised path like an all-numeric one. An embedding of the numeric
columns (model.numeric_embedding) runs numembed.py's closed forms, its output after the tables'.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .mlp import InputEmbedding
from .numembed import PeriodicEmbedding, periodic_backward, periodic_forward

NUMERIC_PARAMS = ("frequency", "phase", "weight", "bias")  # PeriodicEmbedding's parameters, in numembed's order


@dataclass
class Front:
    tables: list[int]  # slot index of each embedding table's weight
    rows: list[int]  # levels + 1 (code 0 = unknown)
    widths: list[int]
    code_index: torch.Tensor  # input columns holding codes
    plain_index: torch.Tensor  # the other input columns, passed through
    numeric: PeriodicEmbedding | None  # the numeric columns' embedding (its layout; the weights are in the slots)
    numeric_slots: list[int]  # slot index of each of its NUMERIC_PARAMS


def split_front(model: nn.Module) -> tuple[InputEmbedding | None, nn.Module, str]:
    """(the embedding in front or None, the MLP behind it, the MLP's parameter-name prefix)."""
    if isinstance(model, nn.Sequential) and len(model) == 2 and isinstance(model[0], InputEmbedding):
        return model[0], model[1], "1."
    return None, model, ""


def parse_front(front: InputEmbedding, where: dict[str, int]) -> Front:
    return Front(
        tables=[where[f"0.tables.{j}.weight"] for j in range(len(front.tables))],
        rows=list(front.rows),
        widths=[t.embedding_dim for t in front.tables],
        code_index=front.code_index.clone(),
        plain_index=front.plain_index.clone(),
        numeric=front.numeric,
        numeric_slots=[where[f"0.numeric.{name}"] for name in NUMERIC_PARAMS] if front.numeric is not None else [],
    )


def embed(front: Front, x: torch.Tensor, v: list[torch.Tensor], K: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The MLP's input (K, B, features) from rows x — (K, B, d) per member or (B, d) shared —
    and what the backward needs: each table's flat lookup indices (K, B), then the numeric
    embedding's saved tensors."""
    device = x.device
    codes = x.index_select(-1, front.code_index.to(device)).round().long()
    plain = x.index_select(-1, front.plain_index.to(device))
    if x.dim() == 2:  # the same rows for every member (evaluation)
        codes, plain = codes.unsqueeze(0).expand(K, -1, -1), plain.unsqueeze(0).expand(K, -1, -1)
    parts, lookups = [plain], []
    for j, slot in enumerate(front.tables):
        rows, width = front.rows[j], front.widths[j]
        c = codes[..., j]
        c = torch.where((c >= 0) & (c < rows), c, torch.zeros_like(c))  # out of range: unknown, as the module does
        flat_index = c + (torch.arange(K, device=device) * rows).unsqueeze(1)
        parts.append(v[slot].reshape(K * rows, width)[flat_index])
        lookups.append(flat_index)
    if front.numeric is not None:
        out, saved = periodic_forward(front.numeric, x, tuple(v[slot] for slot in front.numeric_slots), K)
        parts.append(out)
        lookups += saved
    return torch.cat(parts, dim=-1), lookups


def embed_backward(front: Front, g: torch.Tensor, lookups: list[torch.Tensor]) -> list[tuple[int, torch.Tensor]]:
    """(slot, gradient (K, *shape)) of each table and numeric-embedding parameter, from
    g = d loss / d MLP input (K, B, features)."""
    K, start = g.shape[0], len(front.plain_index)
    grads = []
    for j, slot in enumerate(front.tables):
        rows, width = front.rows[j], front.widths[j]
        part = g[..., start : start + width].reshape(-1, width)
        table = torch.zeros(K * rows, width, dtype=g.dtype, device=g.device)
        table.index_add_(0, lookups[j].reshape(-1), part)
        grads.append((slot, table.view(K, rows, width)))
        start += width
    if front.numeric is not None:
        found = periodic_backward(front.numeric, g[..., start:], lookups[len(front.tables) :])
        grads += list(zip(front.numeric_slots, found))
    return grads
