import pytest
import torch
from torch import nn

from trainwell.config import ModelConfig
from trainwell.models import build_model


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (3, 12, 20)])
@pytest.mark.parametrize("kind", ["cnn", "cnn-plain"])
def test_output_shapes(kind, shape):
    m = build_model(ModelConfig(kind=kind, channels=[8, 16, 32], head_width=16), shape, 10, "cnn")
    assert m(torch.randn(4, *shape)).shape == (4, 10)


def test_upgraded_block_order_and_no_conv_bias():
    m = build_model(ModelConfig(kind="cnn"), (3, 32, 32), 10, "cnn")
    first = [type(x).__name__ for x in m[0][0]]
    assert first == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Dropout2d"]
    assert all(c.bias is None for c in m.modules() if isinstance(c, nn.Conv2d))
    head = [type(x).__name__ for x in m[1]]
    assert head == ["Flatten", "Linear", "ReLU", "Dropout", "Linear"] and m[1][1].in_features == 256 * 4 * 4


def test_plain_has_biases_and_no_norm_or_dropout():
    m = build_model(ModelConfig(kind="cnn-plain"), (3, 32, 32), 10, "cnn")
    kinds = {type(x) for x in m.modules()}
    assert not kinds & {nn.BatchNorm2d, nn.Dropout2d, nn.Dropout}
    assert all(c.bias is not None for c in m.modules() if isinstance(c, nn.Conv2d))
