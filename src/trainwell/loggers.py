"""Experiment trackers people plug in: `train.log: [tensorboard, mlflow]`.

They consume the training loop's events by wrapping its emit callable, so the loop knows nothing
about them: "start" (the config goes in as hyperparameters), "epoch_end" (every number of the
history row, at step = epoch), "best" and "end" (the tracker's run is closed). Both write under
the run directory: TensorBoard event files in `tensorboard/`, an MLflow file store in `mlruns/`
(its run id kept in `mlflow_run_id.txt`, so a resumed run continues the same MLflow run).
Both are optional extras: pip install 'trainwell[tensorboard]' / 'trainwell[mlflow]'.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable

from .config import LOGGERS, RunConfig
from .errors import ConfigError
from .rundir import write_text_atomic
from .stop_reasons import EARLY_STOP, HALVED, INTERRUPTED, MAX_EPOCHS, NOT_FINITE

Emit = Callable[..., None]
TENSORBOARD_DIR, MLFLOW_DIR, MLFLOW_RUN_ID = "tensorboard", "mlruns", "mlflow_run_id.txt"
# how a run's stop reason ends its MLflow run
MLFLOW_STATUS = {
    EARLY_STOP: "FINISHED",
    MAX_EPOCHS: "FINISHED",
    HALVED: "FINISHED",
    INTERRUPTED: "KILLED",
    NOT_FINITE: "FAILED",
}


def flat_config(cfg: RunConfig) -> dict[str, Any]:
    """{"optim.lr": 0.001, ...}: scalars as they are, anything else (lists, None) as text."""
    out: dict[str, Any] = {}
    for section, fields in cfg.to_dict().items():
        items = fields.items() if isinstance(fields, dict) else [("", fields)]
        for name, value in items:
            key = f"{section}.{name}" if name else section
            out[key] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return out


def numbers(row: dict[str, Any]) -> dict[str, float]:
    """The history row's numbers except the epoch itself (it is the step)."""
    return {
        k: float(v) for k, v in row.items() if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


class TensorBoardSink:
    def __init__(self, run_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "train.log tensorboard needs the tensorboard package: pip install 'trainwell[tensorboard]'"
            ) from None
        self.resumed = (run_dir / TENSORBOARD_DIR).is_dir()  # a resumed run adds an event file beside the first
        self.writer = SummaryWriter(log_dir=str(run_dir / TENSORBOARD_DIR))

    def start(self, cfg: RunConfig) -> None:
        if self.resumed:
            return  # the hyperparameters were written when the run began
        from torch.utils.tensorboard.summary import hparams

        # into this run's own event file (SummaryWriter.add_hparams would start a separate run)
        metrics = {"val_loss": math.nan, "val_mae" if cfg.train.monitor == "val_mae" else "val_accuracy": math.nan}
        for summary in hparams(flat_config(cfg), metrics):
            self.writer.file_writer.add_summary(summary)
        self.writer.add_text("config", "```\n" + "\n".join(f"{k}: {v}" for k, v in flat_config(cfg).items()) + "\n```")

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, global_step=epoch)
        self.writer.flush()  # once per epoch: a killed run keeps what it logged

    def close(self, stop_reason: str | None) -> None:
        self.writer.close()


class MlflowSink:
    def __init__(self, run_dir: Path) -> None:
        # MLflow 3 refuses its file store unless asked; a folder inside the run directory is the point here
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ConfigError("train.log mlflow needs MLflow: pip install 'trainwell[mlflow]'") from None
        self.run_dir = run_dir
        self.client = MlflowClient(tracking_uri=(run_dir / MLFLOW_DIR).resolve().as_uri())
        self.run_id: str | None = None

    def start(self, cfg: RunConfig) -> None:
        from mlflow.entities import Param

        id_file = self.run_dir / MLFLOW_RUN_ID
        if id_file.exists():  # a resumed run: continue its MLflow run
            self.run_id = id_file.read_text(encoding="utf-8").strip()
            self.client.update_run(self.run_id, status="RUNNING")
            return
        experiment = self.client.get_experiment_by_name(cfg.name)
        exp_id = experiment.experiment_id if experiment else self.client.create_experiment(cfg.name)
        self.run_id = self.client.create_run(exp_id, run_name=self.run_dir.name).info.run_id
        write_text_atomic(id_file, self.run_id + "\n")
        params = [Param(k, str(v)) for k, v in flat_config(cfg).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, stamp, epoch) for k, v in values.items()])

    def close(self, stop_reason: str | None) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=MLFLOW_STATUS.get(stop_reason or "", "FINISHED"))
            self.run_id = None


SINKS = {"tensorboard": TensorBoardSink, "mlflow": MlflowSink}


class LoggingEmit:
    """An emit callable that forwards every event, then feeds the trackers named in train.log."""

    def __init__(self, emit: Emit, cfg: RunConfig, run_dir: str | Path) -> None:
        self.inner, self.cfg = emit, cfg
        self.sinks = [SINKS[name](Path(run_dir)) for name in cfg.train.log]

    def __call__(self, event: str, **payload: Any) -> None:
        self.inner(event, **payload)
        if event == "start":
            for sink in self.sinks:
                sink.start(self.cfg)
        elif event == "epoch_end":
            values = numbers(payload["row"])
            for sink in self.sinks:
                sink.epoch(int(payload["row"]["epoch"]), values)
        elif event == "end":
            self.close(payload.get("stop_reason"))

    def close(self, stop_reason: str | None = None) -> None:
        """Close every tracker's run; the stop reason sets MLflow's status. Safe to call twice."""
        for sink in self.sinks:
            sink.close(stop_reason)
        self.sinks = []


def wrap_emit(emit: Emit, cfg: RunConfig, run_dir: str | Path) -> Emit:
    """`emit` itself when train.log is empty; otherwise a LoggingEmit around it."""
    return LoggingEmit(emit, cfg, run_dir) if cfg.train.log else emit


__all__ = ["LOGGERS", "LoggingEmit", "wrap_emit", "flat_config"]
