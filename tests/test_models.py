import torch

from trainwell.checkpoint import load_model_state
from trainwell.config import ModelConfig
from trainwell.models import build_mlp, has_batchnorm


def test_block_order_linear_norm_activation_dropout():
    m = build_mlp(ModelConfig(hidden=[8, 4], dropout=0.2), (3,), 1)
    kinds = [type(x).__name__ for x in m]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert has_batchnorm(m)
    assert not has_batchnorm(build_mlp(ModelConfig(norm="layer"), (3,), 1))


def test_eval_mode_is_deterministic():
    m = build_mlp(ModelConfig(hidden=[8, 4], dropout=0.5), (3,), 1).eval()
    x = torch.randn(8, 3)
    assert torch.equal(m(x), m(x))


def test_no_linear_bias_before_batchnorm_and_old_weights_still_load():
    m = build_mlp(ModelConfig(hidden=[8, 4], dropout=0.2), (3,), 1)
    assert [x.bias is None for x in m if isinstance(x, torch.nn.Linear)] == [
        True,
        True,
        False,
    ]  # the head keeps its bias
    assert all(
        x.bias is not None for x in build_mlp(ModelConfig(norm="layer"), (3,), 1) if isinstance(x, torch.nn.Linear)
    )
    # weights saved when the Linears before BatchNorm had biases: each bias is folded into the running mean
    torch.manual_seed(0)
    old = torch.nn.Sequential(
        torch.nn.Linear(3, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1)
    )
    torch.manual_seed(0)
    new = build_mlp(ModelConfig(hidden=[8], dropout=0.2), (3,), 1)
    assert torch.equal(new[0].weight, old[0].weight) and torch.equal(new[4].weight, old[4].weight)  # a seed's weights
    old.train()(torch.randn(64, 3))  # running statistics that are not the defaults
    load_model_state(new, old.state_dict(), "best.pt")
    x = torch.randn(16, 3)
    assert torch.allclose(new.eval()(x), old.eval()(x), atol=1e-6)
    assert "0.bias" in old.state_dict() and "0.bias" not in new.state_dict()
