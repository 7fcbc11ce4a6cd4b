"""scikit-learn estimators: `TrainwellRegressor` and `TrainwellClassifier`, built on trainwell.fit.

Flat keyword parameters map onto the config (hidden → model.hidden, lr → optim.lr, ...), so the
estimators work in Pipeline, GridSearchCV, cross_val_score, clone and pickle. Each fit trains
with the whole recipe in a temporary run directory (deleted afterwards; pass `out=` to keep it),
holding out `validation_fraction` of the rows for early stopping and best-weight restore. With
`random_state` set, fitting twice gives the same network; the global random generators of
Python, NumPy and torch are left as they were. `search=N` fits N configurations around the given
parameters instead and keeps the best as an ensemble (trainwell.search; `search_summary_` holds
its report's figures); with `cluster=` (a Dask scheduler address or "local") its stacks train on
that cluster, to the same result.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from . import calibration
from .api import fit as fit_module
from .api import fit_config
from .checkpoint import BEST, load_checkpoint
from .config import ModelConfig
from .data.memory import memory_bundle, model_inputs
from .data.target_scale import TargetScale
from .inference import load_run
from .models import build_mlp
from .tune import search

MIN_SAMPLES = 4  # one validation row and a training batch BatchNorm can normalise


def holdout(
    n: int, fraction: float, labels: np.ndarray | None, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) row indices; per class for labels, and a class with one row stays in training."""
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    train, val = [], []
    for rows in groups:
        rows = rng.permutation(rows)
        k = int(fraction * len(rows)) if len(rows) > 1 else 0
        val.append(rows[:k])
        train.append(rows[k:])
    tr, va = np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
    return (tr, va) if len(va) else (tr, tr)  # too few rows to spare: validate on the training rows


def scratch_dir() -> str | None:
    """Memory-backed /dev/shm when there is one: the throw-away run's checkpoints are fsynced each
    epoch, which on a busy disk costs more than the training itself."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


class _TrainwellEstimator(BaseEstimator):
    _task = ""

    def __init__(
        self,
        hidden: tuple[int, ...] = (64, 32),
        norm: str = "batch",
        activation: str = "relu",
        dropout: float = 0.1,
        optimizer: str = "adamw",
        lr: float | str = 1e-3,
        weight_decay: float = 0.01,
        schedule: str = "none",
        batch_size: int = 32,
        max_epochs: int = 100,
        early_stopping: bool = True,
        patience: int = 10,
        validation_fraction: float = 0.15,
        clip_norm: float | None = None,
        ema_decay: float | None = None,
        module: Callable[[int, int], nn.Module] | None = None,
        random_state: Any = None,
        out: str | None = None,
        verbose: bool = False,
        search: int | None = None,
        cluster: str | None = None,
    ) -> None:
        self.hidden, self.norm, self.activation, self.dropout = hidden, norm, activation, dropout
        self.optimizer, self.lr, self.weight_decay, self.schedule = optimizer, lr, weight_decay, schedule
        self.batch_size, self.max_epochs, self.early_stopping, self.patience = (
            batch_size,
            max_epochs,
            early_stopping,
            patience,
        )
        self.validation_fraction, self.clip_norm, self.ema_decay = validation_fraction, clip_norm, ema_decay
        self.module, self.random_state, self.out, self.verbose = module, random_state, out, verbose
        self.search, self.cluster = search, cluster

    def _config(self, n_train: int, seed: int) -> dict[str, Any]:
        return {
            "name": type(self).__name__,
            "model": {
                "hidden": list(self.hidden),
                "norm": self.norm,
                "activation": self.activation,
                "dropout": self.dropout,
            },
            "optim": {"name": self.optimizer, "lr": self.lr, "weight_decay": self.weight_decay},
            "schedule": {"name": self.schedule},
            "train": {
                "max_epochs": self.max_epochs,
                "batch_size": min(self.batch_size, n_train),
                "early_stopping": self.early_stopping,
                "patience": self.patience,
                "clip_norm": self.clip_norm,
                "ema_decay": self.ema_decay,
                "seed": seed,
                "quiet": not self.verbose,
                "curves": False,
                "device": "cpu",
            },
        }

    def _network(self, n_features: int, n_outputs: int) -> nn.Module:
        if self.module is not None:
            return self.module(n_features, n_outputs)
        cfg = ModelConfig(hidden=list(self.hidden), norm=self.norm, activation=self.activation, dropout=self.dropout)
        cfg.validate()
        return build_mlp(cfg, (n_features,), n_outputs)

    def _train(self, X: np.ndarray, y: np.ndarray, n_outputs: int) -> None:
        if self.cluster is not None and self.search is None:
            raise ValueError("cluster= trains a search's stacks; give search=N with it")
        if len(X) < MIN_SAMPLES:
            raise ValueError(f"n_samples = {len(X)}: {type(self).__name__} needs at least {MIN_SAMPLES} samples")
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(2**31 - 1))
        tr, va = holdout(len(X), self.validation_fraction, y if self._task == "classification" else None, rng)
        saved = random.getstate(), np.random.get_state(), torch.get_num_threads()
        try:
            with torch.random.fork_rng(devices=[]):  # trainwell seeds the global generators; give them back
                if self.search is not None:
                    self._search(X[tr], y[tr], X[va], y[va], seed)
                    return
                torch.manual_seed(seed)
                model = self._network(X.shape[1], n_outputs)
                with tempfile.TemporaryDirectory(prefix="trainwell-sklearn-", dir=scratch_dir()) as tmp:
                    out = Path(self.out) if self.out is not None else Path(tmp) / "run"
                    result = fit_module(
                        model,
                        (X[tr], y[tr]),
                        val=(X[va], y[va]),
                        test=(X[va], y[va]),
                        task=self._task,
                        config=self._config(len(tr), seed),
                        out=out,
                    )
                    self.spec_ = load_checkpoint(out / "best.pt", BEST)["spec"]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_num_threads(saved[2])
        # float64 at predict time: a row's outputs then do not depend on the batch it is predicted in
        # (float32 matmuls differ by ~1e-7 with the batch size, which a temperature can magnify)
        self.model_ = model.cpu().double().eval()
        self.history_ = result.history
        self.n_epochs_ = len(result.history)

    def _search(self, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, seed: int) -> None:
        """search=N: N configurations around these parameters, the best kept as an ensemble
        (trainwell.search); the held-out rows are halved between early stopping and the choice."""
        if self.module is not None:
            raise ValueError("search= varies trainwell's MLP; it cannot be combined with module=")
        cfg = fit_config(self._config(len(x_tr), seed), self._task, quiet=True)
        data = memory_bundle((x_tr, y_tr), (x_va, y_va), (x_va, y_va), cfg.data.task, None, cfg.data, seed)
        with tempfile.TemporaryDirectory(prefix="trainwell-sklearn-", dir=scratch_dir()) as tmp:
            out = Path(self.out) if self.out is not None else Path(tmp) / "search"
            result = search(cfg, self.search, out=out, data=data, cluster=self.cluster)
            if result.failed:  # as numpy and scikit-learn report a fit that cannot produce a model
                raise RuntimeError(result.message)
            _, model, self.spec_ = load_run(result.ensemble_dir)
        self.model_ = model.double().eval()  # float64 at predict time, as _train leaves its model
        self.search_summary_ = result.summary
        self.history_, self.n_epochs_ = [], 0

    def _outputs(self, X: Any) -> torch.Tensor:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        x = model_inputs(X, self.spec_).double()
        with torch.inference_mode():
            return (
                torch.cat([self.model_(x[i : i + 4096]) for i in range(0, len(x), 4096)])
                if len(x)
                else torch.zeros(0, 1)
            )

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


class TrainwellRegressor(RegressorMixin, _TrainwellEstimator):
    """A network trained with trainwell's recipe, as a scikit-learn regressor (one target)."""

    _task = "regression"

    def fit(self, X: Any, y: Any) -> "TrainwellRegressor":
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], y_numeric=True)
        self._train(X, y.astype(np.float64), 1)
        return self

    def predict(self, X: Any) -> np.ndarray:
        out = self._outputs(X)[:, 0].double().numpy()
        return TargetScale.from_spec(self.spec_).to_original(out)


class TrainwellClassifier(ClassifierMixin, _TrainwellEstimator):
    """A network trained with trainwell's recipe, as a scikit-learn classifier (softmax over classes_)."""

    _task = "classification"

    def fit(self, X: Any, y: Any) -> "TrainwellClassifier":
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y holds 1 class ({self.classes_[0]!r}); a classifier needs 2 or more")
        self._train(X, encoded.astype(np.int64), len(self.classes_))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        # corrected as trainwell corrects a run's probabilities (calibration.py, fitted on the held-out rows)
        return calibration.apply(self._outputs(X).double(), self.spec_.get("calibration")).exp().numpy()

    def predict(self, X: Any) -> np.ndarray:
        best = self.predict_proba(X).argmax(axis=1)  # first: it raises NotFittedError before classes_ is read
        return self.classes_[best]


__all__ = ["TrainwellRegressor", "TrainwellClassifier"]
