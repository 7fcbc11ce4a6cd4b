import pytest
import torch
from torch import nn

from trainwell.config import ModelConfig, OptimConfig
from trainwell.errors import ConfigError
from trainwell.models import build_mlp
from trainwell.optim import OPTIMIZERS, build_optimizer, param_groups


def model():
    return build_mlp(ModelConfig(hidden=[8, 4]), (3,), 1)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_builds_and_steps(name):
    m = model()
    opt, _ = build_optimizer(m, OptimConfig(name=name, lr=0.01))
    before = [p.detach().clone() for p in m.parameters()]
    m(torch.randn(16, 3)).pow(2).mean().backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, m.parameters()))


def test_unknown_optimizer_lists_choices():
    with pytest.raises(ConfigError, match="choose one of: adam, adamw, sgd"):
        OPTIMIZERS.get("rmsprop")


def test_weight_decay_only_on_matrices():
    m = model()
    groups, split = param_groups(m, 0.05)
    decayed = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    for mod in m.modules():
        if isinstance(mod, nn.Linear):
            assert id(mod.weight) in decayed and id(mod.bias) not in decayed
        if isinstance(mod, nn.BatchNorm1d):
            assert id(mod.weight) not in decayed and id(mod.bias) not in decayed
    # 3 Linear weights decayed; 3 biases + 2×2 BatchNorm parameters not
    assert (split.decay_tensors, split.no_decay_tensors) == (3, 7)
    assert split.decay_params == 3 * 8 + 8 * 4 + 4 * 1
    assert "3 tensors" in split.describe(0.05) and "7 tensors" in split.describe(0.05)


def test_decay_everything_is_the_classic_mistake_on_request():
    _, split = param_groups(model(), 0.05, decay_everything=True)
    assert split.no_decay_tensors == 0


def test_adamw_decay_is_decoupled_and_skips_biases():
    m = nn.Linear(2, 1)
    opt, _ = build_optimizer(m, OptimConfig(name="adamw", lr=0.1, weight_decay=0.5))
    w0, b0 = m.weight.detach().clone(), m.bias.detach().clone()
    m.weight.grad, m.bias.grad = torch.zeros_like(m.weight), torch.zeros_like(m.bias)
    opt.step()  # zero gradient: only decoupled decay moves the weights
    assert torch.allclose(m.weight, w0 * (1 - 0.1 * 0.5))
    assert torch.equal(m.bias, b0)
