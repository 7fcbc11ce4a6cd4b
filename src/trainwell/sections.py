"""The sections of a run's config: one dataclass per component, each validating its own fields.

Every default lives here and nowhere else. Each `validate()` refuses an out-of-range value with
one line naming the field, the value given and what is allowed. The whole config (RunConfig,
which also checks names against the registries) is in run_config.py; composing one from
presets, files and overrides is compose.py's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, shown
from .metric_names import CLASSIFICATION, REGRESSION
from .paths import path_problem

TASKS = ("auto", "regression", "classification")
NORMS = ("batch", "layer", "none")
ACTIVATIONS = ("relu", "gelu", "silu", "tanh")
NUMERIC_EMBEDDINGS = ("none", "periodic", "periodic-relu")  # mlp on tables: how numeric columns enter (numembed.py)
MODES = ("auto", "min", "max")
AMP_MODES = ("auto", "bf16", "fp16", "off")
CLASS_WEIGHTS = ("none", "balanced", "auto", "decision")
BACKENDS = ("auto", "gloo", "nccl")  # torch.distributed backends for a run under torchrun
LOGGERS = ("tensorboard", "mlflow")  # experiment trackers (loggers.py)
AUTO = "auto"  # optim.lr / schedule.max_lr: run the LR finder first (lr_find.py)
SCALINGS = ("robust", "standard", "auto")
TARGET_TRANSFORMS = ("auto", "none", "log1p")  # data.target_transform (data/target_scale.py)
SEED_LIMIT = 2**63  # torch seeds are signed 64-bit integers
NUMPY_SEED_LIMIT = 2**32  # data seeds feed NumPy's RandomState and scikit-learn, which take 32 bits
INT_LIMIT = 2**63  # no integer field means anything beyond what torch and NumPy can hold


def _fail(section: str, name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{section}.{name} = {shown(value)} is not allowed: {allowed}")


def _require(cfg: Any, name: str, ok: bool, allowed: str) -> None:
    if not ok:
        _fail(cfg.SECTION, name, getattr(cfg, name), allowed)


def _choice(cfg: Any, name: str, choices: tuple[str, ...]) -> None:
    _require(cfg, name, getattr(cfg, name) in choices, "one of " + ", ".join(choices))


FILELESS_DATA = ("delivery", "digits")  # data sets trainwell generates or ships: they read no file (data.path)
GENERATOR_FIELDS = ("n", "generator_seed")  # what only the generated delivery data reads


@dataclass
class DataConfig:
    SECTION = "data"
    name: str = "delivery"  # built-in data set (delivery, digits, cifar10) or "csv" for a file
    n: int = 3000  # delivery: rows generated
    generator_seed: int = 42  # delivery: seed of the generator; fixed so the data never follows the training seed
    path: str | None = None  # csv: CSV/Parquet file; cifar10: folder holding cifar-10-batches-py
    target: str | None = None  # csv: name of the target column
    test_path: str | None = None  # csv: optional separate test file (otherwise split off)
    task: str = "auto"  # auto: classification when the target is string-labelled
    test_fraction: float = 0.2  # share of rows held out for testing (seed: 20%)
    val_fraction: float = 0.15  # share of the remaining rows held out for validation (seed: 15%)
    val_size: int | None = None  # images: validation images held out of training (overrides val_fraction)
    split_seed: int = 42  # random_state of both splits, as the tabular lesson splits
    download: bool = False  # cifar10: fetch the official archive when the folder is missing
    url: str | None = None  # cifar10: archive address (None: the official one)
    md5: str | None = None  # cifar10: expected MD5 of the archive (None: the official archive's)
    crop_padding: int | None = None  # images: random-crop padding in pixels (None: the data set's own default)
    flip: bool | None = None  # images: random horizontal flips (None: the data set's own default)
    image_size: int = 32  # folder: every image is resized to image_size × image_size pixels
    skip_bad_files: bool = False  # folder: skip unreadable files (true) or stop with their count and names (false)
    sep: str | None = (
        None  # csv: column separator (None: comma; a header that looks ;-, tab- or |-separated is refused)
    )
    categorical: list[str] | None = None  # csv: columns to treat as categories whatever their values
    numeric: list[str] | None = None  # csv: columns to treat as numbers (blanks allowed, text refused)
    ignore: list[str] | None = None  # csv: columns left out, e.g. an id
    drop_blank_target: bool = (
        False  # csv: leave out rows whose target is blank (counted in the notes) instead of refusing the file
    )
    # csv: robust (median/IQR, then smooth clipping, as RealMLP), standard (mean/std), or auto (robust, but a column
    # with |skewness| > 2 mapped through its training quantiles to normal scores)
    scaling: str = "robust"
    onehot_max_levels: int = (
        10  # csv: categories with at most this many levels are one-hot; more get a learned embedding
    )
    # csv: day of week and month of each date also as one-hot columns (the numbers alone tell weekends apart badly)
    date_onehot: bool = False
    embedding_width: int | None = None  # csv: width of each embedding (None: round(1.6·levels^0.56), at most 64)
    # regression: learn log(1 + target) (none: as given; auto: log1p for a target >= 0 with skewness above 1 when a
    # ridge fit predicts the validation rows at least 5% better with it, data/target_scale.py)
    target_transform: str = "auto"

    def validate(self) -> None:
        _require(self, "name", bool(self.name), "a data set name")
        _require(self, "n", self.n >= 10, "an integer >= 10")
        _choice(self, "task", TASKS)
        _require(self, "test_fraction", 0 < self.test_fraction < 1, "a number between 0 and 1 (exclusive)")
        _require(self, "val_fraction", 0 < self.val_fraction < 1, "a number between 0 and 1 (exclusive)")
        _require(self, "val_size", self.val_size is None or self.val_size >= 1, "null or an integer >= 1")
        _require(
            self,
            "md5",
            self.md5 is None or (len(self.md5) == 32 and all(c in "0123456789abcdef" for c in self.md5)),
            "null or 32 lowercase hex digits",
        )
        _require(self, "crop_padding", self.crop_padding is None or self.crop_padding >= 0, "null or an integer >= 0")
        _require(self, "image_size", self.image_size >= 8, "an integer >= 8 (pixels)")
        if self.name == "folder":
            _require(self, "path", bool(self.path), "a folder of class subfolders when data.name is folder")
        _choice(self, "scaling", SCALINGS)
        _choice(self, "target_transform", TARGET_TRANSFORMS)
        _require(self, "sep", self.sep is None or len(self.sep) == 1, "null or one character, e.g. ';' or '\\t'")
        _require(self, "onehot_max_levels", self.onehot_max_levels >= 2, "an integer >= 2")
        _require(
            self,
            "embedding_width",
            self.embedding_width is None or self.embedding_width >= 1,
            "null or an integer >= 1",
        )
        _require(self, "generator_seed", 0 <= self.generator_seed < NUMPY_SEED_LIMIT, "an integer >= 0 and < 2**32")
        _require(self, "split_seed", 0 <= self.split_seed < NUMPY_SEED_LIMIT, "an integer >= 0 and < 2**32")
        for name in ("path", "test_path"):
            value = getattr(self, name)
            problem = path_problem(value) if value is not None else None
            _require(self, name, problem is None, f"a usable path (this one {problem})")
        if self.name in FILELESS_DATA and self.path is not None:
            _fail(
                self.SECTION,
                "path",
                self.path,
                f"null with data.name {self.name}, which reads no file; for a file leave data.name out or set it to "
                "csv",
            )
        if self.name == "csv":
            _require(self, "path", bool(self.path), "a CSV or Parquet file when data.name is csv")
            _require(self, "target", bool(self.target), "the target column's name when data.name is csv")


@dataclass
class ModelConfig:
    SECTION = "model"
    kind: str = "auto"  # auto: mlp for tables, cnn for images; or mlp, cnn, cnn-plain
    hidden: list[int] = field(default_factory=lambda: [128, 64, 32])  # mlp: widths of the hidden layers
    norm: str = "batch"  # mlp: batch, layer or none, between Linear and activation
    activation: str = "relu"
    # mlp: after each hidden activation (the vectorised path rounds it to a multiple of 1/256 and
    # scales kept units by the exact keep probability: 0.2 drops 51/256); cnn: before the last Linear
    dropout: float = 0.2
    channels: list[int] = field(default_factory=lambda: [64, 128, 256])  # cnn: one stage per entry
    conv_dropout: float = 0.15  # cnn: Dropout2d after each stage's pooling
    head_width: int = 512  # cnn: width of the hidden Linear of the head
    # mlp on tables: none, periodic (RealMLP's PBLD: cos(2π·f·x + phase) with learned frequencies f, then a
    # per-column Linear; the raw value is kept beside) or periodic-relu (the same with a ReLU after the Linear)
    numeric_embedding: str = "none"
    numeric_frequencies: int = 16  # periodic: learned frequencies per numeric column
    numeric_width: int = 3  # periodic: learned outputs per numeric column (the raw value comes on top)
    numeric_sigma: float = 0.1  # periodic: std of the initial frequencies, in cycles per unit of the scaled column
    numeric_lr_factor: float = 1.0  # periodic: the embedding learns at this × optim.lr (RealMLP: 0.1)

    def validate(self) -> None:
        _require(self, "hidden", len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), "a list of widths >= 1")
        _choice(self, "numeric_embedding", (*NUMERIC_EMBEDDINGS, AUTO))  # auto: by the training rows (scaling.py)
        _require(self, "numeric_frequencies", 1 <= self.numeric_frequencies <= 256, "an integer from 1 to 256")
        _require(self, "numeric_width", 1 <= self.numeric_width <= 64, "an integer from 1 to 64")
        _require(self, "numeric_sigma", 0 < self.numeric_sigma <= 100, "a number > 0 and <= 100 (cycles per unit)")
        _require(self, "numeric_lr_factor", 0 < self.numeric_lr_factor <= 10, "a number > 0 and <= 10")
        _choice(self, "norm", NORMS)
        _choice(self, "activation", ACTIVATIONS)
        _require(self, "dropout", 0 <= self.dropout < 1, "a number >= 0 and < 1")
        _require(
            self, "channels", len(self.channels) >= 1 and all(c >= 1 for c in self.channels), "a list of widths >= 1"
        )
        _require(self, "conv_dropout", 0 <= self.conv_dropout < 1, "a number >= 0 and < 1")
        _require(self, "head_width", self.head_width >= 1, "an integer >= 1")


@dataclass
class OptimConfig:
    SECTION = "optim"
    name: str = "adamw"  # sgd, adam or adamw
    lr: float | str = (
        1e-3  # base learning rate (peak for onecycle unless schedule.max_lr is set); "auto": the LR finder's suggestion
    )
    weight_decay: float = 0.01  # adamw: decoupled; adam and sgd: L2 added to the gradient
    decay_norm_and_bias: bool = False  # true puts weight decay on every parameter (the classic mistake)
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def validate(self) -> None:
        _require(
            self,
            "lr",
            self.lr == AUTO or (not isinstance(self.lr, str) and self.lr > 0 and math.isfinite(self.lr)),
            'a number > 0 or "auto"',
        )
        _require(self, "weight_decay", self.weight_decay >= 0, "a number >= 0")
        _require(self, "momentum", 0 <= self.momentum < 1, "a number >= 0 and < 1")
        _require(self, "beta1", 0 <= self.beta1 < 1, "a number >= 0 and < 1")
        _require(self, "beta2", 0 <= self.beta2 < 1, "a number >= 0 and < 1")
        _require(self, "eps", self.eps > 0, "a number > 0")
        if self.nesterov and self.momentum == 0:
            _fail(self.SECTION, "nesterov", True, "false when optim.momentum is 0")


@dataclass
class ScheduleConfig:
    SECTION = "schedule"
    name: str = "none"  # none, step, cosine, plateau or onecycle
    step_size: int = 30  # step: epochs between drops
    gamma: float = 0.1  # step: factor of each drop
    t_max: int | None = None  # cosine: epochs of the half cosine (None: train.max_epochs)
    eta_min: float = 1e-6  # cosine: final learning rate
    patience: int = 10  # plateau: epochs without improvement before a drop
    factor: float = 0.5  # plateau: factor of each drop
    threshold: float = 1e-4  # plateau: relative improvement that counts (as torch's default)
    min_lr: float = 0.0  # plateau: the learning rate never drops below this
    max_lr: float | str | None = (
        None  # onecycle: peak learning rate (None: optim.lr; "auto": the LR finder's suggestion)
    )
    warmup_fraction: float = 0.3  # onecycle: share of all steps spent warming up
    div_factor: float = 25.0  # onecycle: start lr = max_lr / div_factor
    final_div_factor: float = 1e4  # onecycle: final lr = start lr / final_div_factor

    def validate(self) -> None:
        _require(self, "step_size", self.step_size >= 1, "an integer >= 1")
        _require(self, "gamma", 0 < self.gamma <= 1, "a number > 0 and <= 1")
        _require(self, "t_max", self.t_max is None or self.t_max >= 1, "null or an integer >= 1")
        _require(self, "eta_min", self.eta_min >= 0, "a number >= 0")
        _require(self, "patience", self.patience >= 0, "an integer >= 0")
        _require(self, "factor", 0 < self.factor < 1, "a number > 0 and < 1")
        _require(self, "threshold", self.threshold >= 0, "a number >= 0")
        _require(self, "min_lr", self.min_lr >= 0, "a number >= 0")
        _require(
            self,
            "max_lr",
            self.max_lr in (None, AUTO) or (not isinstance(self.max_lr, str) and self.max_lr > 0),
            'null, a number > 0 or "auto"',
        )
        _require(self, "warmup_fraction", 0 < self.warmup_fraction < 1, "a number between 0 and 1 (exclusive)")
        _require(self, "div_factor", self.div_factor >= 1, "a number >= 1")
        _require(self, "final_div_factor", self.final_div_factor >= 1, "a number >= 1")


@dataclass
class TrainConfig:
    SECTION = "train"
    seed: int = 0  # seeds Python, NumPy, torch and the run's own generators
    max_epochs: int = 100
    batch_size: int | str = 64  # "auto": chosen from the training rows, optim.lr scaled with it (scaling.py)
    auto_batch_min: int = 64  # batch_size auto: never below this (a power of two; optim.lr is read at batch 64)
    # budget of optimizer steps per member (None: none; "auto": 4,000 on big tables, 60 passes or 1,200 steps on others)
    max_steps: int | str | None = None
    val_every: float | str = 1.0  # validate every this fraction of a pass ("auto": every ~50,000 rows on big tables)
    eval_batch_size: int = 1024  # evaluation only: larger batches, same result
    clip_norm: float | None = None  # clip the global gradient norm to this (None: measure only)
    early_stopping: bool = True  # stop after `patience` epochs without improvement
    patience: int = 20  # epochs without improvement of the monitored metric
    min_delta: float = 0.0  # smallest change of the monitored metric that counts as improvement
    monitor: str = (
        "val_loss"  # val_loss or any validation metric of the task (val_mae, val_r2, val_accuracy, val_roc_auc, ...)
    )
    mode: str = "auto"  # auto: max for metrics where higher is better (accuracy, AUC, R², F1), min otherwise
    restore_best: bool = True  # load the best weights back at the end (test metrics use them)
    bn_recalibration_samples: int = (
        4096  # training inputs used to re-estimate BatchNorm statistics before each evaluation (0: off)
    )
    ema_decay: float | None = None  # evaluate a moving average of the weights (per-step decay, e.g. 0.99)
    label_smoothing: float = 0.0  # classification: cross-entropy label smoothing
    checkpoint_every_steps: int | None = None  # also write last.pt every N optimizer steps
    # epoch-end writes of last.pt and best.pt at most this often, in seconds (0: every epoch); a run that finishes
    # or is interrupted always writes, so only a killed process loses up to this much training
    checkpoint_seconds: float = 0.0
    deterministic: bool = False  # deterministic algorithms (slower on GPU)
    device: str = "auto"  # auto (cuda when available), cpu, cuda, cuda:N
    threads: int | None = None  # torch CPU threads (None: a choice made for the model's size)
    amp: str = "auto"  # mixed precision on CUDA: auto (bf16 for images), bf16, fp16 (with dynamic loss scaling), off
    loss_scale: float = (
        65536.0  # amp fp16: the initial loss scale (halved on overflow, doubled after 2,000 clean steps)
    )
    channels_last: bool = True  # images on CUDA: channels_last memory format
    compile: bool = False  # torch.compile the model
    quiet: bool = False  # no live progress display
    members: int = 1  # ensemble: train this many seeds (seed, seed+1, ...) together and predict with their average
    # classification: none, balanced (each class weighted by rows / (classes × its rows)), auto (balanced for
    # classification, none for regression), or decision (training unweighted, the label decision balanced by
    # those weights, calibration.py; nothing for regression)
    class_weights: str = "none"
    log: list[str] = field(default_factory=list)  # experiment trackers fed each epoch: tensorboard, mlflow
    curves: bool = True  # write curves.svg at the end (the scikit-learn estimators skip it)
    backend: str = "auto"  # under torchrun: auto (nccl on CUDA, gloo on the CPU), gloo, nccl

    def validate(self) -> None:
        _require(self, "seed", 0 <= self.seed < SEED_LIMIT, "an integer >= 0 and < 2**63")
        _require(self, "max_epochs", self.max_epochs >= 1, "an integer >= 1")
        _require(
            self,
            "batch_size",
            self.batch_size == AUTO or (not isinstance(self.batch_size, str) and self.batch_size >= 1),
            "auto or an integer >= 1",
        )
        _require(
            self,
            "max_steps",
            self.max_steps in (None, AUTO) or (not isinstance(self.max_steps, str) and self.max_steps >= 1),
            "null, auto or an integer >= 1",
        )
        _require(
            self,
            "val_every",
            self.val_every == AUTO or (not isinstance(self.val_every, str) and 0 < self.val_every <= 1),
            "auto or a fraction of a pass > 0 and <= 1 (0.25: four validations per pass)",
        )
        power_of_two = self.auto_batch_min >= 1 and self.auto_batch_min & (self.auto_batch_min - 1) == 0
        _require(self, "auto_batch_min", power_of_two, "a power of two >= 1 (64, 128, 256, ...)")
        _require(self, "eval_batch_size", self.eval_batch_size >= 1, "an integer >= 1")
        _require(self, "clip_norm", self.clip_norm is None or self.clip_norm > 0, "null or a number > 0")
        _require(self, "patience", self.patience >= 0, "an integer >= 0")
        _require(self, "min_delta", self.min_delta >= 0, "a number >= 0")
        monitors = ("val_loss", *(f"val_{m}" for m in REGRESSION + CLASSIFICATION))
        _require(self, "monitor", self.monitor in monitors, "one of " + ", ".join(monitors))
        _choice(self, "mode", MODES)
        _require(self, "bn_recalibration_samples", self.bn_recalibration_samples >= 0, "an integer >= 0")
        _require(self, "ema_decay", self.ema_decay is None or 0 < self.ema_decay < 1, "null or a number > 0 and < 1")
        _require(self, "label_smoothing", 0 <= self.label_smoothing < 1, "a number >= 0 and < 1")
        _require(
            self,
            "checkpoint_every_steps",
            self.checkpoint_every_steps is None or self.checkpoint_every_steps >= 1,
            "null or an integer >= 1",
        )
        _require(self, "checkpoint_seconds", 0 <= self.checkpoint_seconds < 1e9, "a number of seconds >= 0")
        ok_device = self.device in ("auto", "cpu", "cuda") or (
            self.device.startswith("cuda:") and self.device[5:].isdigit()
        )
        _require(self, "device", ok_device, "auto, cpu, cuda or cuda:N")
        _require(self, "threads", self.threads is None or self.threads >= 1, "null or an integer >= 1")
        _choice(self, "amp", AMP_MODES)
        _require(self, "loss_scale", 0 < self.loss_scale < 2.0**127, "a number > 0 and < 2**127 (float32)")
        _require(self, "members", 1 <= self.members <= 64, "an integer from 1 to 64")
        _choice(self, "class_weights", CLASS_WEIGHTS)
        _choice(self, "backend", BACKENDS)
        _require(
            self,
            "log",
            all(n in LOGGERS for n in self.log) and len(set(self.log)) == len(self.log),
            "a list of distinct names from: " + ", ".join(LOGGERS),
        )


SECTIONS = ("data", "model", "optim", "schedule", "train")
SECTION_TYPES = {
    "data": DataConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "train": TrainConfig,
}
