"""Which runs may be resumed, and what may change when they are: the resumable fields, the
same-run check of last.pt against config.yaml, and the overrides a resume accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import rundir
from .checkpoint import LAST, load_checkpoint
from .compose import compose, load_config
from .errors import CheckpointError, ConfigError, TrainwellError
from .run_config import RunConfig
from .same_run import RESUMABLE_FIELDS, first_difference, same_run, without


def load_resumable(run_dir: str | Path) -> tuple[RunConfig, dict[str, Any]]:
    """The config and last.pt payload of an unfinished run, or a one-line error."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TrainwellError(f"run directory {str(run_dir)!r} does not exist")
    if (run_dir / rundir.METRICS).exists():
        raise TrainwellError(
            f"run {str(run_dir)!r} has already finished (metrics.json exists); there is nothing to resume"
        )
    if not (run_dir / rundir.LAST_PT).exists():
        raise TrainwellError(
            f"run directory {str(run_dir)!r} has no last.pt, so it cannot be resumed; start it again with "
            f"'trainwell train'"
        )
    ckpt = load_checkpoint(run_dir / rundir.LAST_PT, LAST)
    try:
        cfg = RunConfig.from_dict(ckpt["config"])
        if (
            not isinstance(ckpt["members"], list)
            or len(ckpt["members"]) != cfg.train.members
            or not isinstance(ckpt["loop"]["epoch"], int)
        ):
            raise KeyError("members")
    except (TrainwellError, TypeError, KeyError):
        raise CheckpointError(f"checkpoint {str(run_dir / rundir.LAST_PT)!r} holds no valid run state") from None
    check_same_run(cfg, run_dir)
    return cfg, ckpt


def check_same_run(ckpt_cfg: RunConfig, run_dir: Path) -> None:
    """last.pt must belong to this run: its config equals config.yaml but for resumable fields."""
    path = run_dir / rundir.CONFIG
    if not path.exists():
        return
    try:
        on_disk = load_config(path).to_dict()
    except TrainwellError:
        raise CheckpointError(f"{str(path)!r} is not a valid config, so last.pt cannot be checked against it") from None
    mine = ckpt_cfg.to_dict()
    if not same_run(mine, on_disk, RESUMABLE_FIELDS):
        diff = first_difference(without(mine, RESUMABLE_FIELDS), without(on_disk, RESUMABLE_FIELDS))
        raise CheckpointError(
            f"last.pt in {str(run_dir)!r} belongs to another run: its {diff} differs from config.yaml"
        )


def apply_resume_overrides(cfg: RunConfig, overrides: dict[str, Any], quiet: bool | None = None) -> RunConfig:
    """Only fields that keep the run's meaning may change on resume; max_epochs may only grow.
    `quiet` (when not None) sets train.quiet last, over the overrides."""
    new = compose(base=cfg, resume_overrides=overrides, quiet=quiet)
    if new.train.max_epochs < cfg.train.max_epochs:
        raise ConfigError(
            f"train.max_epochs = {new.train.max_epochs} is not allowed on resume: it may only grow (it is "
            f"{cfg.train.max_epochs})"
        )
    if new.schedule.name == "onecycle" and new.train.max_epochs != cfg.train.max_epochs:
        raise ConfigError(
            "train.max_epochs cannot change on resume with a onecycle schedule: its whole cycle is fixed at the start"
        )
    return new
