"""The vectorised path's blocks (fastblocks.py): a member's numbers at the default net's shape are
bit-identical alone and in a stack, the hand-written backward with dropout on equals autograd
on the same masks, and dropout drops at its byte-rounded rate."""

import contextlib
import copy

import pytest
import torch
from torch.nn import functional as F

from trainwell.fastblocks import DROP_LEVELS, Dropout, drop_threshold
from trainwell.fastmlp import MLPStack
from trainwell.losses import MemberLoss
from trainwell.mlp import build_mlp
from trainwell.sections import ModelConfig

# wide enough that torch's batched matmul rounds the one-column head differently with K
NET = ModelConfig(hidden=[64, 64], norm="batch", dropout=0.2)


def members(K: int, width: int = 7, cfg: ModelConfig = NET) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [build_mlp(cfg, (width,), 1) for _ in range(K)]


def steps(stack: MLPStack, x: torch.Tensor, y: torch.Tensor, seeds: list[int], n: int = 3) -> list:
    """n plain SGD steps; each step's losses, gradients and BatchNorm running statistics."""
    loss = MemberLoss("regression", torch.zeros(stack.K, 1), None)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    seen = []
    for _ in range(n):
        losses = stack.train_step(x, y, loss, generators)
        seen.append((losses.clone(), stack.grad.clone(), [t.clone() for pair in stack.running for t in pair]))
        with torch.no_grad():
            stack.flat -= 0.05 * stack.grad
    return seen


def test_a_member_alone_equals_itself_in_a_stack_at_the_default_width():
    models = members(4)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 96, 7, generator=g), torch.randn(4, 96, 1, generator=g)
    together = steps(MLPStack(copy.deepcopy(models)), x, y, [10, 11, 12, 13])
    for k in (0, 2):
        alone = steps(MLPStack([copy.deepcopy(models[k])]), x[k : k + 1], y[k : k + 1], [10 + k])
        for (lt, gt, rt), (la, ga, ra) in zip(together, alone):
            assert torch.equal(lt[k : k + 1], la) and torch.equal(gt[k : k + 1], ga)
            assert all(torch.equal(t[k : k + 1], a) for t, a in zip(rt, ra))


@pytest.mark.parametrize("hidden", [[16, 8], [16, 16]])  # equal widths: each block has its own step buffers
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_the_backward_with_dropout_equals_autograd_on_the_same_masks(activation, hidden):
    cfg = ModelConfig(hidden=hidden, norm="batch", dropout=0.3, activation=activation)
    models = members(2, cfg=cfg)
    stack = MLPStack(copy.deepcopy(models))
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(2, 32, 7, generator=g), torch.randn(2, 32, 1, generator=g)
    stack.train_step(
        x, y, MemberLoss("regression", torch.zeros(2, 1), None), [torch.Generator().manual_seed(s) for s in (5, 6)]
    )
    masks = stack.dropout.draw(32, [torch.Generator().manual_seed(s) for s in (5, 6)], x.device)
    act = torch.relu if activation == "relu" else torch.tanh
    for k, model in enumerate(models):
        h = x[k]
        for j, (lin, norm) in enumerate([(model[0], model[1]), (model[4], model[5])]):
            z = F.batch_norm(lin(h), None, None, norm.weight, norm.bias, True, 0.1, norm.eps)
            h = act(z) * masks[j][k] * stack.dropout.scale[j][k]
        F.mse_loss(model[-1](h), y[k]).backward()
        autograd = torch.cat([p.grad.reshape(-1) for p in _in_slot_order(model, stack)])
        assert torch.allclose(stack.grad[k], autograd, atol=1e-6)


def _in_slot_order(model: torch.nn.Module, stack: MLPStack) -> list[torch.Tensor]:
    named = dict(model.named_parameters())
    return [named[s.name] for s in stack.slots]


def test_dropout_drops_at_its_byte_rounded_rate_and_keeps_the_expectation():
    assert [drop_threshold(p) for p in (0.0, 0.001, 0.2, 0.5, 0.999)] == [0, 1, 51, 128, 255]
    dropout = Dropout(torch.tensor([[0.2, 0.0], [0.5, 0.5]]), [64, 32], torch.device("cpu"))
    assert dropout.blocks == [0, 1]
    masks = dropout.draw(2000, [torch.Generator().manual_seed(s) for s in (0, 1)], torch.device("cpu"))
    dropped = 1 - masks[0].mean(dim=(1, 2))
    assert abs(float(dropped[0]) - 51 / DROP_LEVELS) < 0.005 and abs(float(dropped[1]) - 0.5) < 0.005
    assert float(masks[1][0].min()) == 1.0  # a member without dropout in that block keeps every unit
    kept = masks[0] * dropout.scale[0].unsqueeze(-1)
    assert torch.allclose(kept.mean(dim=(1, 2)), torch.ones(2), atol=0.01)


def test_a_members_dropout_mask_is_the_same_alone_and_beside_members_with_other_rates():
    """The masks of all members are made in one comparison against per-member thresholds: a
    member's mask must not depend on how many members stand beside it or on their rates, and a
    unit is kept exactly when its byte from the member's own generator reaches the threshold."""
    rates = torch.tensor([[0.5, 0.1], [0.2, 0.0], [0.9, 0.3]])
    together = Dropout(rates, [40, 24], torch.device("cpu"))
    both = together.draw(50, [torch.Generator().manual_seed(s) for s in (3, 4, 5)], torch.device("cpu"))
    for k in range(3):
        alone = Dropout(rates[k : k + 1], [40, 24], torch.device("cpu"))
        own = alone.draw(50, [torch.Generator().manual_seed(3 + k)], torch.device("cpu"))
        for j in alone.blocks:
            assert torch.equal(own[j][0], both[j][k])
    words = torch.empty(-(-50 * 64 // 8), dtype=torch.int64).random_(
        -(2**63), None, generator=torch.Generator().manual_seed(5)
    )
    first = words.view(torch.uint8)[: 50 * 40].view(50, 40)
    assert torch.equal(both[0][2], (first >= drop_threshold(0.9)).float())


def test_the_step_buffers_carry_nothing_from_one_step_or_chunk_to_the_next():
    """A training step's outputs, BatchNorm statistics, masks and input gradients live in buffers
    the next step overwrites (fastblocks.Workspace): a stack that trained before (on batches of
    another size and of this size) gives, from the same weights, bit-identical losses, gradients
    and statistics to a fresh copy of those weights; evaluation in chunks that reuse the
    hidden-layer buffers equals each chunk evaluated by a fresh copy."""
    g = torch.Generator().manual_seed(4)
    batch = lambda n: (torch.randn(3, n, 7, generator=g), torch.randn(3, n, 1, generator=g))  # noqa: E731
    used = MLPStack(copy.deepcopy(members(3)))
    steps(used, *batch(40), [1, 2, 3], n=1)
    steps(used, *batch(24), [4, 5, 6], n=1)
    fresh = used.copy()
    assert fresh.__dict__.get("_work") is None  # a copy makes its own buffers
    x, y = batch(24)
    for (lu, gu, ru), (lf, gf, rf) in zip(steps(used, x, y, [7, 8, 9], n=1), steps(fresh, x, y, [7, 8, 9], n=1)):
        assert torch.equal(lu, lf) and torch.equal(gu, gf) and all(torch.equal(a, b) for a, b in zip(ru, rf))
    rows = torch.randn(50, 7, generator=g)
    chunked = used.outputs(rows, 16, contextlib.nullcontext, average=False)
    alone = [used.copy().outputs(rows[i : i + 16], 16, contextlib.nullcontext, average=False) for i in (0, 16, 32, 48)]
    assert torch.equal(chunked, torch.cat(alone, dim=1))
