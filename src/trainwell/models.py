"""Models by name. A builder takes (ModelConfig, input_shape, n_outputs) and returns a Module.

The built-in builders live beside this module (mlp.py, cnn.py) and are registered here, so the
registry knows them whichever module is imported first; trainwell.register_model adds one's own."""

from __future__ import annotations

from typing import Callable

from torch import nn

from .cnn import build_cnn, build_plain_cnn
from .errors import ConfigError
from .mlp import ACTIVATIONS, MLP, InputEmbedding, build_mlp, mlp_block
from .registry import Registry
from .sections import ModelConfig

ModelBuilder = Callable[[ModelConfig, tuple[int, ...], int], nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")
MODELS.register("mlp")(build_mlp)
MODELS.register("cnn")(build_cnn)
MODELS.register("cnn-plain")(build_plain_cnn)


def build_model(
    cfg: ModelConfig,
    input_shape: tuple[int, ...],
    n_outputs: int,
    default_kind: str,
    embedded: list[dict[str, int]] | None = None,
    numeric: list[int] | None = None,
) -> nn.Module:
    """`embedded`: the data spec's "embedded" list (tables with many-level categories); `numeric`:
    the input indices of its numeric columns, for model.numeric_embedding (None: every column but
    the codes; data.preprocess.numeric_columns). Both MLPs only."""
    kind = default_kind if cfg.kind == "auto" else cfg.kind
    if cfg.numeric_embedding != "none" and kind != "mlp":
        raise ConfigError(
            f"model.kind = {kind!r} cannot embed numeric columns; use mlp or set model.numeric_embedding to none"
        )
    if embedded:
        if kind != "mlp":
            raise ConfigError(
                f"model.kind = {kind!r} cannot read a table with embedded categories; use mlp (or raise "
                f"data.onehot_max_levels)"
            )
    if embedded or cfg.numeric_embedding != "none":
        return build_mlp(cfg, input_shape, n_outputs, embedded, numeric)
    return MODELS.get(kind)(cfg, input_shape, n_outputs)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def drops_last_batch(model: nn.Module, train_size: int, batch_size: int) -> bool:
    """Whether training drops a last batch of one row: BatchNorm cannot normalise one row. The
    loop and the model check (checks.py) both ask this."""
    return has_batchnorm(model) and train_size % batch_size == 1


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "ACTIVATIONS",
    "MLP",
    "MODELS",
    "InputEmbedding",
    "build_mlp",
    "build_model",
    "count_parameters",
    "drops_last_batch",
    "has_batchnorm",
    "mlp_block",
]
