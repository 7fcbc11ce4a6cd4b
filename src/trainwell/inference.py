"""Using a finished run: load it (`load_run`; an `Ensemble` for members > 1), evaluate its best
weights, or predict on new rows.

Both load best.pt with weights_only=True and apply the preprocessing stored in it
(column roles, fill values, scaling, category levels, class names) to the raw file, never
statistics of the new data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import calibration, paths, rundir
from .atomic import atomic_write
from .checkpoint import BEST, load_checkpoint, load_model_state, validate_spec
from .config import RunConfig, load_config
from .data import load_data
from .data.bundle import DataBundle
from .data.memory import as_table
from .data.preprocess import numeric_columns
from .data.tabular import features_for_prediction, read_table, rows_seen_in_training, targets_for_evaluation
from .data.target_scale import TargetScale
from .errors import CheckpointError, ConfigError, DataError, TrainwellError, shown_path
from .models import build_model
from .outputs import ensemble_scores, predict_outputs, score


class Ensemble(nn.Module):
    """K members predicting together: the mean prediction (regression), or the log of the mean
    probability (classification; softmax of it gives the mean probability back)."""

    def __init__(self, members: list[nn.Module], task: str) -> None:
        super().__init__()
        self.members, self.task = nn.ModuleList(members), task

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members])

    def combine(self, outs: torch.Tensor) -> torch.Tensor:
        """The ensemble's output from its members' (K, N, O) outputs (outputs.ensemble_scores' rule)."""
        return ensemble_scores(self.task, outs)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.member_outputs(x))


def load_run(run_dir: str | Path, own: nn.Module | None = None) -> tuple[RunConfig, nn.Module, dict[str, Any]]:
    """The run's config, its model with the best weights (eval mode; an Ensemble for members > 1),
    and the preprocessing spec. `own`: the module a run of trainwell.fit trained (its architecture
    is not in the run), which receives the best weights."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TrainwellError(f"run directory {str(run_dir)!r} does not exist")
    cfg_path = run_dir / rundir.CONFIG
    if not cfg_path.exists():
        raise TrainwellError(f"{str(run_dir)!r} is not a run directory: it has no config.yaml")
    cfg = load_config(cfg_path)
    path = run_dir / rundir.BEST_PT
    ckpt = load_checkpoint(path, BEST)
    spec = validate_spec(ckpt.get("spec"), path)  # checked like a config before a model is built from it
    states = ckpt.get("members") or [ckpt["model"]]
    if own is not None or spec["model_kind"] == "custom":
        if own is None:
            raise DataError(
                f"run {shown_path(run_dir)} trained a model of one's own (trainwell.fit): pass it, "
                "trainwell.predict_run(run_dir, rows, model=MyNet())"
            )
        load_model_state(own, states[0], path)
        return cfg, own.eval(), spec
    models = []
    for state, model_cfg in zip(states, member_models(ckpt, cfg, len(states), path)):
        model = build_model(
            model_cfg,
            tuple(spec["input_shape"]),
            spec["n_outputs"],
            spec["model_kind"],
            spec.get("embedded"),
            numeric_columns(spec),
        )
        load_model_state(model, state, path)
        models.append(model.eval())
    model = models[0] if len(models) == 1 else Ensemble(models, spec["task"]).eval()
    return cfg, model, spec


def member_models(ckpt: dict[str, Any], cfg: RunConfig, n: int, path: Path) -> list[Any]:
    """Each member's model config: the run's, or for a searched ensemble (members of several
    layouts) the ones stored beside the weights, checked like a config."""
    raw = ckpt.get("member_models")
    if raw is None:
        return [cfg.model] * n
    try:
        if not isinstance(raw, list) or len(raw) != n:
            raise ConfigError("member_models")
        return [RunConfig.from_dict({"model": m}).model for m in raw]
    except ConfigError:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds member models that are not valid model configs"
        ) from None


def _bundle_like(spec: dict[str, Any], x: torch.Tensor, y: torch.Tensor) -> DataBundle:
    """A bundle around new rows, carrying the run's target scaling for MAE in original units."""
    return DataBundle(
        task=spec["task"],
        x_train=x[:0],
        y_train=y[:0],
        x_val=x[:0],
        y_val=y[:0],
        x_test=x,
        y_test=y,
        input_shape=tuple(spec["input_shape"]),
        n_outputs=spec["n_outputs"],
        classes=spec.get("classes"),
        target_std=spec.get("y_std", 1.0),
        target_mean=spec.get("y_mean", 0.0),
        target_transform=spec.get("target_transform", "none"),
        spec=spec,
    )


def _outputs(model: nn.Module, data: DataBundle, x: torch.Tensor) -> torch.Tensor:
    return predict_outputs(model, data, x, 4096, lambda: torch.autocast("cpu", enabled=False))


def evaluate_run(run_dir: str | Path, data_path: str | Path | None = None) -> dict[str, float]:
    """Test metrics of the run's best weights: on its own test split, or on a labelled file."""
    paths.check_text(run_dir, "run directory")
    if data_path is not None:
        paths.check_text(data_path, "data file")
    cfg, model, spec = load_run(run_dir)
    if data_path is None:
        data = load_data(cfg.data)
        if any(data.spec.get(k) != spec.get(k) for k in ("x_mean", "preprocess")):
            raise DataError(
                "the run's data no longer matches the data it was trained on; give the test file with --data"
            )
        data.spec = spec
    else:
        if spec.get("kind") != "tabular":
            raise DataError("--data takes a CSV, which only tabular runs can read; evaluate image runs without --data")
        where = f"data file {shown_path(data_path)}"
        df = read_table(data_path, cfg.data.sep, where)
        data = _bundle_like(spec, features_for_prediction(df, spec, where), targets_for_evaluation(df, spec, where))
    out = _outputs(model, data, data.x_test)
    metrics = score(out, data.y_test, data, spec.get("calibration"))
    seen = rows_seen_in_training(df, cfg.data) if data_path is not None else 0
    return (
        {f"test_{k}": v for k, v in metrics.items()}
        | {"rows": len(data.x_test)}
        | ({"rows_seen_in_training": seen} if seen else {})
    )


def check_predict_out(
    run_dir: str | Path, input_path: str | Path | None, out_path: str | Path, overwrite: bool = False
) -> Path:
    """Where predictions may go: never onto the input or a run's own files, and onto another
    existing file only with `overwrite`. Checked before anything is read."""
    protected = [*([input_path] if input_path is not None else []), *(Path(run_dir) / f for f in rundir.RUN_FILES)]
    return paths.check_out_file(out_path, "--out", protected, overwrite)


@torch.inference_mode()
def member_outputs(model: Ensemble, data: DataBundle, x: torch.Tensor) -> torch.Tensor:
    """Every member's (K, N, O) outputs for stored inputs x, 4,096 rows at a time, in float32."""
    chunks = [model.member_outputs(data.inputs(x[i : i + 4096])) for i in range(0, len(x), 4096)]
    return torch.cat(chunks, dim=1).float()


def members_spread(
    outs: torch.Tensor, spec: dict[str, Any], target: str, chosen: torch.Tensor | None = None
) -> dict[str, Any]:
    """How far an ensemble's members disagree on each row, from their (K, N, O) outputs: the
    standard deviation of their predictions (regression, target units), or of their probabilities
    of the predicted class `chosen`, corrected as the ensemble's are (class weights' prior,
    temperature)."""
    if spec["task"] == "regression":
        return {f"members_std_{target}": TargetScale.from_spec(spec).to_original(outs[:, :, 0]).std(0).numpy()}
    probs = calibration.apply(outs.float(), spec.get("calibration")).exp()
    if chosen is None:
        chosen = probs.mean(0).argmax(1)
    return {"members_std_probability": probs[:, torch.arange(len(chosen)), chosen].std(0).numpy()}


def predict_run(
    run_dir: str | Path,
    input_path: Any,
    out_path: str | Path | None = None,
    overwrite: bool = False,
    model: nn.Module | None = None,
) -> Any:
    """Predictions (a DataFrame) for raw rows: a CSV/Parquet file or a DataFrame, prepared with
    the preprocessing saved in best.pt; written to out_path when given (an existing file there
    is replaced only with `overwrite`). `model`: the module a run of trainwell.fit trained."""
    given = hasattr(input_path, "columns")  # a DataFrame rather than a file
    paths.check_text(run_dir, "run directory")
    if not given:
        paths.check_text(input_path, "input file")
    protected = None if given else input_path
    target_file = check_predict_out(run_dir, protected, out_path, overwrite) if out_path is not None else None
    cfg, model, spec = load_run(run_dir, model)
    if spec.get("kind") != "tabular":
        raise DataError("predict reads a CSV of features, which only tabular runs can use")
    where = "the rows given" if given else f"input file {shown_path(input_path)}"
    df = as_table(input_path) if given else read_table(input_path, cfg.data.sep, where)
    x = features_for_prediction(df, spec, where)
    data = _bundle_like(spec, x, torch.zeros(len(x)))
    # an ensemble's members run once: their outputs give both the prediction and their spread
    members = member_outputs(model, data, x) if isinstance(model, Ensemble) else None
    out = model.combine(members) if members is not None else _outputs(model, data, x)
    result = df.copy()
    target = spec["target_name"]
    column = f"predicted_{target}"
    decided = None  # the label decision, for classification
    if spec["task"] == "regression":
        result[column] = TargetScale.from_spec(spec).to_original(out[:, 0]).numpy()
    else:
        logp = calibration.apply(out, spec.get("calibration"))  # probabilities corrected as in metrics.json
        probs = logp.exp()
        decided = calibration.decision_scores(logp, spec.get("calibration")).argmax(1)
        result[column] = [spec["classes"][i] for i in decided.tolist()]
        for i, name in enumerate(spec["classes"]):  # one column per class, so rows can be ranked by any class
            result[f"probability_{name}"] = probs[:, i].numpy()
    if members is not None:
        result = result.assign(**members_spread(members, spec, target, decided))
    if target_file is not None:
        paths.prepare_dir(target_file.parent, "--out folder")
        atomic_write(target_file, lambda fh: result.to_csv(fh, index=False), binary=False)
    return result
