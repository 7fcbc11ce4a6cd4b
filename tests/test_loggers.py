"""train.log: TensorBoard event files and an MLflow file store, read back after a run."""

import pytest

from trainwell.config import RunConfig
from trainwell.errors import ConfigError
from trainwell.loggers import MLFLOW_RUN_ID, flat_config, wrap_emit
from trainwell.runner import train

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")


def run_logged(tmp_path, tiny, log):
    cfg = RunConfig.from_dict(tiny(train={"max_epochs": 3, "log": log, "early_stopping": False}))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    events = []
    result = train(cfg, out=run_dir, emit=lambda event, **payload: events.append(event))  # train adds the trackers
    assert events[-1] == "end"
    return cfg, run_dir, result, events


def test_no_trackers_leaves_emit_alone(tiny):
    cfg = RunConfig.from_dict(tiny())
    inner = lambda *a, **k: None  # noqa: E731
    assert wrap_emit(inner, cfg, "unused") is inner


def test_unknown_tracker_is_refused(tiny):
    with pytest.raises(ConfigError, match="train.log.*tensorboard, mlflow"):
        RunConfig.from_dict(tiny(train={"log": ["wandb"]}))


def test_tensorboard_holds_every_epoch_and_the_config(tmp_path, tiny):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg, run_dir, result, events = run_logged(tmp_path, tiny, ["tensorboard"])
    assert events.count("epoch_end") == 3  # the wrapped emit still sees every event
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    val = acc.Scalars("val_loss")
    assert [e.step for e in val] == [1, 2, 3]
    assert [e.value for e in val] == pytest.approx([r["val_loss"] for r in result.history], rel=1e-6)
    assert {"train_loss", "val_mae", "lr", "grad_norm_mean"} <= set(acc.Tags()["scalars"])
    text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "optim.lr: 0.003" in text and "data.name: delivery" in text
    assert "_hparams_/session_start_info" in acc.summary_metadata


def test_mlflow_run_holds_params_metrics_and_status(tmp_path, tiny):
    from mlflow.tracking import MlflowClient

    cfg, run_dir, result, _ = run_logged(tmp_path, tiny, ["mlflow"])
    client = MlflowClient(tracking_uri=(run_dir / "mlruns").resolve().as_uri())
    run = client.get_run((run_dir / MLFLOW_RUN_ID).read_text().strip())
    assert run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.003" and run.data.params["model.hidden"] == "[16, 8]"
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx([r["val_loss"] for r in result.history])
    assert len(flat_config(cfg)) == len(run.data.params)


def test_a_resumed_run_continues_the_same_trackers(tmp_path, tiny):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = RunConfig.from_dict(tiny(train={"log": ["tensorboard", "mlflow"]}))
    row = lambda e: {"epoch": e, "train_loss": 1.0 / e, "val_loss": 2.0 / e, "lr": 0.1}  # noqa: E731
    for epochs, reason in (([1, 2], "interrupted"), ([3], "max_epochs")):  # a run, then its resume
        emit = wrap_emit(lambda *a, **k: None, cfg, tmp_path)
        emit("start", lines=[], max_epochs=3)
        for e in epochs:
            emit("epoch_end", row=row(e), state=None)
        emit("end", stop_reason=reason)
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    run_id = (tmp_path / MLFLOW_RUN_ID).read_text().strip()
    assert [m.step for m in client.get_metric_history(run_id, "val_loss")] == [1, 2, 3]
    assert (
        client.get_run(run_id).info.status == "FINISHED"
        and len(client.search_runs([client.get_experiment_by_name("tiny").experiment_id])) == 1
    )
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("val_loss")] == [1, 2, 3]
