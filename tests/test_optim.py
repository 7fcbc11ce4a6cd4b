import pytest
import torch
from torch import nn

from trainwell.config import ModelConfig, OptimConfig
from trainwell.errors import ConfigError
from trainwell.models import build_mlp
from trainwell.optim import OPTIMIZERS, FlatOptimizer, decay_split
from trainwell.stack import ModuleStack, flat_layout


def model(seed=0):
    torch.manual_seed(seed)
    # LayerNorm, not BatchNorm: a bias right before BatchNorm gets a gradient of pure rounding noise,
    # which Adam scales up to full steps, so its sign (and the comparison) would depend on the CPU's kernels
    return build_mlp(ModelConfig(hidden=[8, 4], dropout=0.0, norm="layer"), (3,), 1)


def test_unknown_optimizer_lists_choices():
    with pytest.raises(ConfigError, match="choose one of: adam, adamw, sgd"):
        OPTIMIZERS.get("rmsprop")


def test_weight_decay_only_on_matrices():
    m = model()
    split = decay_split(list(m.named_parameters()))
    # 3 Linear weights decayed; 3 biases + 2×2 BatchNorm parameters not
    assert (split.decay_tensors, split.no_decay_tensors) == (3, 7)
    assert split.decay_params == 3 * 8 + 8 * 4 + 4 * 1
    text = split.describe(0.05)
    assert "3 tensors" in text and "7 tensors" in text and "0.bias" in text
    slots, decay_size = flat_layout(m)
    assert [s.name for s in slots[:3]] == ["0.weight", "3.weight", "6.weight"] and decay_size == split.decay_params


TORCH = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


@pytest.mark.parametrize(
    "cfg",
    [
        OptimConfig(name="adamw", lr=0.01, weight_decay=0.1),
        OptimConfig(name="adam", lr=0.01, weight_decay=0.05, beta1=0.8),
        OptimConfig(name="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        OptimConfig(name="sgd", lr=0.05, momentum=0.0, weight_decay=0.0),
        OptimConfig(name="adamw", lr=0.01, weight_decay=0.1, decay_norm_and_bias=True),
    ],
    ids=["adamw", "adam-l2", "sgd-nesterov", "sgd-plain", "adamw-decay-everything"],
)
def test_flat_update_equals_torch_optim(cfg):
    """Three steps of the flat optimizer equal torch.optim's fused optimizer with the same two groups
    (bit for bit where the tensors line up; within 1e-6 relative otherwise)."""
    ours, ref = model(), model()
    members = ModuleStack([ours])
    opt = FlatOptimizer(members.flat, members.grad, members.decay_size, [cfg])
    decay = [p for p in ref.parameters() if p.ndim >= 2 or cfg.decay_norm_and_bias]
    rest = [p for p in ref.parameters() if not (p.ndim >= 2 or cfg.decay_norm_and_bias)]
    kwargs = (
        {"momentum": cfg.momentum, "nesterov": cfg.nesterov}
        if cfg.name == "sgd"
        else {"betas": (cfg.beta1, cfg.beta2), "eps": cfg.eps}
    )
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}] + (
        [{"params": rest, "weight_decay": 0.0}] if rest else []
    )
    torch_opt = TORCH[cfg.name](groups, lr=cfg.lr, fused=True, **kwargs)
    x = torch.randn(16, 3)
    for _ in range(3):
        members.grad.zero_()
        ours(x).pow(2).mean().backward()
        opt.step([0], [cfg.lr])
        torch_opt.zero_grad()
        ref(x).pow(2).mean().backward()
        torch_opt.step()
    # the same kernel; only the split of the buffer into tensors differs (vectorised body vs scalar
    # tail of each tensor), which can move the last bit of a few elements
    for (name, a), b in zip(ours.named_parameters(), ref.parameters()):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7), name


def test_adamw_decay_is_decoupled_and_skips_biases():
    m = nn.Linear(2, 1)
    members = ModuleStack([m])
    opt = FlatOptimizer(
        members.flat, members.grad, members.decay_size, [OptimConfig(name="adamw", lr=0.1, weight_decay=0.5)]
    )
    w0, b0 = m.weight.detach().clone(), m.bias.detach().clone()
    opt.step([0], [0.1])  # zero gradient: only decoupled decay moves the weights
    assert torch.allclose(m.weight, w0 * (1 - 0.1 * 0.5))
    assert torch.equal(m.bias, b0)


def test_members_with_different_hyperparameters_step_independently():
    a, b = model(1), model(2)
    members = ModuleStack([a, b])
    cfgs = [OptimConfig(name="adamw", lr=0.01), OptimConfig(name="adamw", lr=0.03, weight_decay=0.0)]
    opt = FlatOptimizer(members.flat, members.grad, members.decay_size, cfgs)
    before = members.flat.clone()
    members.grad.normal_()
    opt.step([1], [0.03])  # member 0 is not training: its row stays
    assert torch.equal(members.flat[0], before[0]) and not torch.equal(members.flat[1], before[1])
