import torch

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
