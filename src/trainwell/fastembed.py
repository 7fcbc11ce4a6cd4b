"""Embeddings on the fast path: the InputEmbedding in front of trainwell's MLP (mlp.py), for K
members at once, with its backward written out.

A table with a many-level text column carries each such column as one float column of codes;
the embedding replaces each code by a learned vector. A table's (K, rows, width) view of the
stack's flat buffer is read in place — one gather for all members, no copy of the table — and
its gradient is added straight into the gradient buffer's view, one index_add per member (each
member's rows summed in their batch order, as alone: index_put_'s accumulate would use atomic
adds on several threads, whose order varies). No autograd, so such a table trains on the
vectorised path like an all-numeric one. An embedding of the numeric columns
(model.numeric_embedding) runs numembed.py's closed forms, its output after the tables'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .fastblocks import Slots
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
    plain_runs: list[tuple[int, int]]  # plain_index as (first column, count) runs: narrow views, not a gather
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
        plain_runs=_runs(front.plain_index.tolist()),
        numeric=front.numeric,
        numeric_slots=[where[f"0.numeric.{name}"] for name in NUMERIC_PARAMS] if front.numeric is not None else [],
    )


def _runs(columns: list[int]) -> list[tuple[int, int]]:
    """Increasing column indices as (first, count) runs of consecutive columns."""
    runs: list[tuple[int, int]] = []
    for c in columns:
        if runs and runs[-1][0] + runs[-1][1] == c:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((c, 1))
    return runs


def embed(front: Front, x: torch.Tensor, v: Slots, K: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The MLP's input (K, B, features) from rows x — (K, B, d) per member or (B, d) shared —
    and what the backward needs: each table's codes (K, B), then the numeric embedding's saved
    tensors."""
    device = x.device
    codes = x.index_select(-1, front.code_index.to(device)).round().long()
    # the plain columns as views, copied once by the cat below: a gather along the last dimension is a pass of its
    # own (with the in-place lookups and the rows-only clearing: 9.3 -> 8.0 ms per step for the embedding's forward
    # and backward, flights-shaped table, 5 members x 512 rows, one thread)
    plain = [x.narrow(-1, first, count) for first, count in front.plain_runs]
    if x.dim() == 2:  # the same rows for every member (evaluation)
        codes, plain = codes.unsqueeze(0).expand(K, -1, -1), [p.unsqueeze(0).expand(K, -1, -1) for p in plain]
    parts, lookups = plain, []
    for j, slot in enumerate(front.tables):
        c = codes[..., j]
        c = torch.where((c >= 0) & (c < front.rows[j]), c, torch.zeros_like(c))  # out of range: unknown, as the module
        parts.append(_lookup(v.each[slot], c))
        lookups.append(c)
    if front.numeric is not None:
        out, saved = periodic_forward(front.numeric, x, tuple(v[slot] for slot in front.numeric_slots), K)
        parts.append(out)
        lookups += saved
    return torch.cat(parts, dim=-1), lookups


def _lookup(tables: Sequence[torch.Tensor], codes: torch.Tensor) -> torch.Tensor:
    """table[k][codes[k]] for each member: (K, B, width) from the members' (rows, width) views of the
    flat buffer, read in place. One index_select per member takes a quarter of advanced indexing's
    table[member, codes] (5 x 512 rows of a 4,001 x 64 table: 0.11 against 0.39 ms), the same values."""
    out = tables[0].new_empty(codes.shape[0], codes.shape[1], tables[0].shape[-1])
    for rows, own, into in zip(tables, codes.unbind(0), out.unbind(0)):
        torch.index_select(rows, 0, own, out=into)
    return out


def embed_backward(
    front: Front,
    g: torch.Tensor,
    lookups: list[torch.Tensor],
    grads: Slots,
    written: list[torch.Tensor] | None = None,
) -> None:
    """The gradient of each table and numeric-embedding parameter, written into `grads` (the
    gradient buffer's (K, *shape) views by slot), from g = d loss / d embedded part of the MLP's input
    (K, B, features after the plain columns): the plain columns' share is never formed.
    `written`: each table's codes (K, B) of the step before when only those rows of the tables'
    gradients can be nonzero (only they are cleared: a 4,001-row table's gradient is 5 MB for
    5 members, a pass per step); None clears the whole tables."""
    start = 0
    for j, slot in enumerate(front.tables):
        width = front.widths[j]
        part = g[..., start : start + width].contiguous()  # a contiguous source adds 5x faster (0.03 against 0.13 ms)
        if written is None:
            grads[slot].zero_()
        else:
            for into, rows in zip(grads.each[slot], written[j].unbind(0)):
                into.index_fill_(0, rows, 0.0)
        for into, codes, source in zip(grads.each[slot], lookups[j].unbind(0), part.unbind(0)):
            into.index_add_(0, codes, source)
        start += width
    if front.numeric is not None:
        found = periodic_backward(front.numeric, g[..., start:], lookups[len(front.tables) :])
        for slot, grad in zip(front.numeric_slots, found):
            grads[slot].copy_(grad)
