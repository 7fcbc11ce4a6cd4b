"""The lessons' silent mistakes, found on a user's own model: `trainwell.check(model, sample)`.

One forward pass with hooks (forward_trace.py) tells which module's output feeds which module;
the rules below read that order, the parameters and the modes. Each finding names its rule, the
modules, what the mistake costs and the one-line fix. "warning" findings cost accuracy or
parameters; "info" findings are choices trainwell handles or that the lessons merely advise.
`trainwell check` exits 1 when there is a warning, and `trainwell.fit` shows them among its start
lines and records them in metrics.json under "check".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import nn

from .errors import ConfigError
from .forward_trace import Call, trace
from .models import drops_last_batch
from .optim import decays
from .sections import OptimConfig, TrainConfig

WARNING, INFO = "warning", "info"
SHOWN_NAMES = 6  # names quoted in one finding before "... (N in all)"

BATCHNORM = nn.modules.batchnorm._BatchNorm
DROPOUT = nn.modules.dropout._DropoutNd  # Dropout, Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout
ELEMENTWISE_DROPOUT = (nn.Dropout, nn.AlphaDropout)  # one mask entry per element, not per channel
BIASED = (nn.Linear, nn.modules.conv._ConvNd)
ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
)
# a per-channel constant passes these unchanged (max(x + b) = max(x) + b), so a bias before them
# still reaches the BatchNorm as a constant it cancels
SHIFT_PRESERVING = (
    nn.Identity,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
)


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # WARNING or INFO
    modules: tuple[str, ...]  # module or parameter names, in run order
    cost: str
    fix: str

    def line(self) -> str:
        return f"{self.severity} {self.rule}: {' → '.join(self.modules)}: {self.cost}; fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "modules": list(self.modules)}


@dataclass(frozen=True)
class CheckConfig:
    """What training the model is checked for; defaults are trainwell's own."""

    batch_size: int = TrainConfig.batch_size
    train_size: int | None = None  # training rows; None: the last-batch rule is skipped
    weight_decay: float = OptimConfig.weight_decay
    decay_norm_and_bias: bool = OptimConfig.decay_norm_and_bias

    def validate(self) -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, not {self.batch_size!r}")
        if self.train_size is not None and (not isinstance(self.train_size, int) or self.train_size < 1):
            raise ConfigError(f"train_size must be an integer >= 1 or None, not {self.train_size!r}")
        if not self.weight_decay >= 0:
            raise ConfigError(f"weight_decay must be a number >= 0, not {self.weight_decay!r}")


@dataclass(frozen=True)
class CheckReport:
    findings: tuple[Finding, ...]

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == WARNING)

    def lines(self) -> list[str]:
        if not self.findings:
            return ["model check: nothing to report"]
        return [f.line() for f in self.findings]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.findings]


def names(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN_NAMES])
    return shown + (f", ... ({len(items)} in all)" if len(items) > SHOWN_NAMES else "")


def label(call: Call) -> str:
    return f"{call.name or '(model)'} ({type(call.module).__name__})"


def _upstream(call: Call, through: tuple[type, ...]) -> list[list[Call]]:
    """Paths [source, ..., call] of calls feeding `call`, walking back through modules of `through` types."""
    paths = []
    for source in call.fed_by:
        if isinstance(source.module, through) and source.fed_by:
            paths += [[*p, call] for p in _upstream(source, through)]
        paths.append([source, call])
    return paths


def _into_batchnorm(calls: list[Call], through: tuple[type, ...]) -> list[list[Call]]:
    return [p for c in calls if isinstance(c.module, BATCHNORM) for p in _upstream(c, through)]


# ---- rules on the order modules run in -------------------------------------------------------


def bias_before_batchnorm(calls: list[Call], cfg: CheckConfig) -> list[Finding]:
    found = []
    for path in _into_batchnorm(calls, SHIFT_PRESERVING):
        source = path[0]
        bias = getattr(source.module, "bias", None)
        # a Linear's bias lies along the last dimension, a BatchNorm's channels along dimension 1
        aligned = isinstance(source.module, nn.modules.conv._ConvNd) or source.output_ndim == 2
        if isinstance(source.module, BIASED) and isinstance(bias, torch.Tensor) and aligned:
            kind = type(source.module).__name__
            found.append(
                Finding(
                    "bias-before-batchnorm",
                    WARNING,
                    tuple(label(c) for c in path),
                    f"{bias.numel():,} dead parameters: BatchNorm subtracts the batch mean, which cancels the "
                    "bias; the optimizer still tracks them, and Adam turns their rounding-noise gradient into "
                    "full steps",
                    f"{kind}(..., bias=False) for {source.name}",
                )
            )
    return found


def dropout_before_batchnorm(calls: list[Call], cfg: CheckConfig) -> list[Finding]:
    free = tuple(  # parameter-free modules in between (activations, pooling, Flatten) keep the mangling
        type(c.module)
        for c in calls
        if not _has_parameters(c.module) and not isinstance(c.module, (DROPOUT, BATCHNORM))
    )
    return [
        Finding(
            "dropout-before-batchnorm",
            WARNING,
            tuple(label(c) for c in path),
            "BatchNorm's batch statistics see dropout-mangled activations: noisy in training, and different "
            "from the undropped ones at evaluation",
            f"move {path[0].name} after the BatchNorm and its activation (Linear/Conv → BatchNorm → ReLU → Dropout)",
        )
        for path in _into_batchnorm(calls, free)
        if isinstance(path[0].module, DROPOUT)
    ]


def elementwise_dropout_on_maps(calls: list[Call], cfg: CheckConfig) -> list[Finding]:
    meant = {4: "Dropout2d", 5: "Dropout3d"}
    return [
        Finding(
            "elementwise-dropout-on-maps",
            WARNING,
            (label(c),),
            f"it zeroes single values of {c.input_ndim}-D feature maps, which neighbouring pixels make up for: "
            "little regularisation",
            f"nn.{meant[c.input_ndim]}(p) for {c.name}, which drops whole channels",
        )
        for c in calls
        if type(c.module) in ELEMENTWISE_DROPOUT and c.input_ndim in meant
    ]


def activation_before_batchnorm(calls: list[Call], cfg: CheckConfig) -> list[Finding]:
    return [
        Finding(
            "activation-before-batchnorm",
            INFO,
            tuple(label(c) for c in path),
            "BatchNorm normalises after the nonlinearity; the lessons place it before (Linear/Conv → BatchNorm → ReLU)",
            f"swap {path[0].name} and {path[-1].name}, if you mean the lessons' order",
        )
        for path in _into_batchnorm(calls, (nn.Identity,))
        if isinstance(path[0].module, ACTIVATIONS)
    ]


def _has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(recurse=False), None) is not None


# ---- rules on the model as a whole -------------------------------------------------------------


def last_batch_of_one(model: nn.Module, cfg: CheckConfig) -> list[Finding]:
    n, b = cfg.train_size, cfg.batch_size
    if n is None or not drops_last_batch(model, n, b):
        return []
    better = next(c for c in (b + 1, b - 1, b + 2) if c >= 1 and n % c != 1)
    bn = [name for name, m in model.named_modules() if isinstance(m, BATCHNORM)]
    return [
        Finding(
            "last-batch-of-one",
            INFO,
            (names(bn),),
            f"{n} training rows in batches of {b} leave a last batch of one row, which BatchNorm cannot normalise; "
            f"trainwell drops it, so 1 of {n} rows (a different one each epoch, rows are shuffled) is unseen per epoch",
            f"a batch size that does not leave one row, e.g. {better} (a loop of your own: DataLoader(drop_last=True))",
        )
    ]


def _named_by_user(model: nn.Module) -> set[str]:
    """Full parameter names (or prefixes) that a model's own no_weight_decay() methods list."""
    listed: set[str] = set()
    for prefix, module in model.named_modules():
        method = getattr(module, "no_weight_decay", None)
        if callable(method):
            listed |= {f"{prefix}.{n}" if prefix else str(n) for n in method()}
    return listed


def _own_vector(model: nn.Module, name: str, p: torch.Tensor) -> bool:
    """A parameter a user's module registered with at most one dimension above 1 (a scale stored as (1, C, 1, 1)).
    torch's own layers are left out: a Linear(1, n) weight is a real weight matrix."""
    owner = model.get_submodule(name.rpartition(".")[0])
    return not type(owner).__module__.startswith("torch.") and sum(s > 1 for s in p.shape) <= 1


def weight_decay_misplaced(model: nn.Module, cfg: CheckConfig) -> list[Finding]:
    if cfg.weight_decay == 0:
        return []
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    found = []
    if cfg.decay_norm_and_bias:
        flat = [n for n, p in trained if not decays(p)]
        if flat:
            found.append(
                _decay_finding(
                    flat,
                    trained,
                    "optim.decay_norm_and_bias puts weight decay on these 1-D "
                    "parameters (biases, norm scales and shifts)",
                    "optim.decay_norm_and_bias: false",
                )
            )
    vectors = [n for n, p in trained if decays(p) and _own_vector(model, n, p)]
    if vectors:
        found.append(
            _decay_finding(
                vectors,
                trained,
                "stored with 2+ dimensions but holding one vector, so "
                "trainwell's rule (decay on 2+ dimensions) decays them",
                "store them 1-D and reshape in forward (p.view(1, -1, 1, 1))",
            )
        )
    listed = _named_by_user(model)
    user = [n for n, p in trained if decays(p) and any(n == x or n.startswith(x + ".") for x in listed)]
    if user:
        found.append(
            _decay_finding(
                user,
                trained,
                "the model's no_weight_decay() lists them, but trainwell decides by "
                "shape alone (2+ dimensions) and decays them",
                "store them 1-D and reshape in forward, or optim.weight_decay: 0",
            )
        )
    return found


def _decay_finding(hit: list[str], trained: list[tuple[str, torch.Tensor]], why: str, fix: str) -> Finding:
    count = sum(p.numel() for n, p in trained if n in set(hit))
    return Finding("weight-decay-misplaced", WARNING, (names(hit),), f"{count:,} parameters: {why}", fix)


def eval_mode(model: nn.Module, cfg: CheckConfig) -> list[Finding]:
    if not model.training:
        return [
            Finding(
                "eval-mode",
                WARNING,
                ("(model)",),
                "the model is in eval mode: trained so, BatchNorm uses its running statistics and Dropout is off "
                "(trainwell.fit switches to train() for each step, a loop of your own would not)",
                "model.train() before training; eval() only for evaluation",
            )
        ]
    top = [n for n, m in model.named_modules() if not m.training and model.get_submodule(n.rpartition(".")[0]).training]
    if not top:
        return []
    return [
        Finding(
            "eval-mode",
            WARNING,
            (names(top),),
            "these submodules are in eval mode, but trainwell.fit calls model.train() for each step, which puts "
            "them back in train mode",
            "to keep a BatchNorm frozen, replace it by a fixed affine (torchvision.ops.FrozenBatchNorm2d)",
        )
    ]


def frozen_parameters(model: nn.Module, cfg: CheckConfig) -> list[Finding]:
    frozen = [(n, p) for n, p in model.named_parameters() if not p.requires_grad]
    if not frozen:
        return []
    count = sum(p.numel() for _, p in frozen)
    total = sum(p.numel() for p in model.parameters())
    return [
        Finding(
            "frozen-parameters",
            INFO,
            (names([n for n, _ in frozen]),),
            f"{count:,} of {total:,} parameters ({len(frozen)} tensor{'s' if len(frozen) > 1 else ''}) "
            "have requires_grad=False: "
            "neither trained nor decayed",
            "p.requires_grad_(True) if they are meant to train",
        )
    ]


TRACE_RULES: list[Callable[[list[Call], CheckConfig], list[Finding]]] = [
    bias_before_batchnorm,
    dropout_before_batchnorm,
    elementwise_dropout_on_maps,
    activation_before_batchnorm,
]
MODEL_RULES: list[Callable[[nn.Module, CheckConfig], list[Finding]]] = [
    last_batch_of_one,
    weight_decay_misplaced,
    eval_mode,
    frozen_parameters,
]


def check(model: nn.Module, sample: Any, **settings: Any) -> CheckReport:
    """Check `model` against the lessons' rules with one forward pass on `sample` (a batch of at
    least 2 rows, or a tuple of the forward's positional arguments). `settings` are CheckConfig's
    fields (batch_size, train_size, weight_decay, decay_norm_and_bias). The model, its BatchNorm
    statistics and torch's random state are left as they were."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    unknown = sorted(set(settings) - set(CheckConfig.__dataclass_fields__))
    if unknown:
        raise ConfigError(
            f"unknown check setting {unknown[0]!r}; allowed: {', '.join(CheckConfig.__dataclass_fields__)}"
        )
    cfg = CheckConfig(**settings)
    cfg.validate()
    calls = trace(model, sample)  # restores the modes it changes, so eval_mode reads the user's
    findings = [f for rule in TRACE_RULES for f in rule(calls, cfg)]
    findings += [f for rule in MODEL_RULES for f in rule(model, cfg)]
    return CheckReport(tuple(findings))


__all__ = ["CheckConfig", "CheckReport", "Finding", "check"]
