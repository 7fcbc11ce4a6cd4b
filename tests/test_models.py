import copy

import pytest
import torch
from torch import nn

from trainwell.config import ModelConfig
from trainwell.fused_mlp import dropout_masks
from trainwell.models import build_mlp, has_batchnorm


def test_block_order_linear_norm_activation_dropout():
    m = build_mlp(ModelConfig(hidden=[8, 4], dropout=0.2), (3,), 1)
    kinds = [type(x).__name__ for x in m]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert has_batchnorm(m)
    assert not has_batchnorm(build_mlp(ModelConfig(norm="layer"), (3,), 1))


def pair(norm, p):
    torch.manual_seed(0)
    fused = build_mlp(ModelConfig(hidden=[32, 16, 8], norm=norm, dropout=p), (5,), 2)
    eager = copy.deepcopy(fused)
    eager.use_fused = False
    return fused, eager


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_fused_step_equals_eager_without_dropout(norm):
    fused, eager = pair(norm, 0.0)
    assert fused._fused is not None
    x, y = torch.randn(64, 5, requires_grad=True), torch.randn(64, 2)
    x2 = x.detach().clone().requires_grad_(True)
    for _ in range(2):  # twice: running statistics and counters update identically
        lf, le = (fused(x) - y).pow(2).mean(), (eager(x2) - y).pow(2).mean()
        lf.backward()
        le.backward()
    assert torch.allclose(lf, le, atol=1e-6)
    for a, b in zip(fused.parameters(), eager.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5)
    for a, b in zip(fused.buffers(), eager.buffers()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)
    assert torch.allclose(x.grad, x2.grad, atol=1e-6)


def test_fused_dropout_equals_eager_with_the_same_masks():
    fused, eager = pair("batch", 0.3)
    x, y = torch.randn(64, 5), torch.randn(64, 2)
    torch.manual_seed(7)
    (fused(x) - y).pow(2).mean().backward()
    torch.manual_seed(7)
    masks = dropout_masks(64, fused._fused, x)
    h = x
    layers = list(eager)
    i, k = 0, 0
    while i < len(layers) - 1:  # eager computation, dropout replaced by the same masks
        lin, bn = layers[i], layers[i + 1]
        h = torch.relu(bn(lin(h))) * masks[k]
        i, k = i + 4, k + 1
    (layers[-1](h) - y).pow(2).mean().backward()
    for a, b in zip(fused.parameters(), eager.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5)


def test_dropout_masks_keep_with_probability_one_minus_p():
    m = build_mlp(ModelConfig(hidden=[256, 256], dropout=0.3), (5,), 1)
    masks = dropout_masks(512, m._fused, torch.zeros(1))
    kept = torch.cat([(mk > 0).float().flatten() for mk in masks]).mean().item()
    assert kept == pytest.approx(0.7, abs=0.01)
    assert masks[0].max().item() == pytest.approx(1 / 0.7)


def test_eval_mode_uses_plain_modules_and_is_deterministic():
    fused, _ = pair("batch", 0.5)
    fused.eval()
    x = torch.randn(8, 5)
    assert torch.equal(fused(x), fused(x))


def test_unsupported_stacks_fall_back_to_eager():
    assert build_mlp(ModelConfig(norm="layer"), (3,), 1)._fused is None
    assert build_mlp(ModelConfig(activation="gelu"), (3,), 1)._fused is None
