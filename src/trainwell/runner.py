"""The library's entry points: train, resume and train_runs (several runs as one stack).

`train_runs(configs, run_dirs)` builds every member of every run from the validated configs,
seeded exactly as a run alone would be (build.py), runs `fit` once for all of them, and writes
each run's directory through the run book (runbook.py): best.pt at each improvement, last.pt
at the same points for a run alone or in a stack, and at the end history, metrics and curves.
`train` is one run; `resume` continues one run (or, from a compare, a stack) from last.pt
(member_state.py restores it). The CLI only calls these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from . import distributed, paths, rundir
from .build import build_trainer
from .compose import compose
from .config import RunConfig, dump_yaml
from .loggers import wrap_emit
from .loop import Emit, LoopState, Trainer, fit
from .lr_find import resolve_auto_lr
from .member_state import restore
from .progress import Progress
from .resume_rules import apply_resume_overrides, load_resumable
from .runbook import RunResult, RunSlot, finish, run_history
from .signals import stop_on_signals
from .stop_reasons import INTERRUPTED


def train_runs(
    cfgs: list[RunConfig],
    run_dirs: list[Path],
    emits: list[Emit] | None = None,
    resume_from: list[dict[str, Any]] | None = None,
    max_threads: int | None = None,
    on_epoch_end: Callable[[Trainer, LoopState], None] | None = None,
    checkpoint_seconds: float | None = None,
    **given: Any,
) -> list[RunResult]:
    """Train (or, with last.pt payloads, continue) runs of one stack key together; one result per
    run. `max_threads`: the share of cores this process may use (a compare worker's);
    `on_epoch_end`: called at each epoch end before runs are finished (a search's halving);
    `checkpoint_seconds`: epoch-end saves at most this often (and whenever a run finishes; None: the first
    config's train.checkpoint_seconds);
    `given`: model, data, loss_fn of one's own (trainwell.fit)."""
    shown = emits is not None  # nobody watches a compare worker's runs: no step events there
    emits = emits or [lambda *_a, **_k: None for _ in cfgs]
    trainer, book, lines = build_trainer(
        cfgs, run_dirs, emits, max_threads=max_threads, **given
    )  # every input is checked before anything is written
    every = cfgs[0].train.checkpoint_seconds if checkpoint_seconds is None else checkpoint_seconds
    book.on_epoch_end, book.checkpoint_seconds, book.step_events = on_epoch_end, every, shown
    loop = LoopState()
    for cfg, d in zip(cfgs, run_dirs):
        if not distributed.is_follower():  # under torchrun only rank 0 writes
            paths.prepare_dir(d, "run directory")
            rundir.write_text_atomic(d / rundir.CONFIG, dump_yaml(cfg))
    if resume_from is not None:
        loop = restore(trainer, resume_from, run_dirs)
        lines = [f"resuming at epoch {loop.epoch + 1}, step {loop.step}", *lines]
        for run in book.runs:  # stopped after its last epoch, before its files were written
            if all(not m.training for m in run.members) and not distributed.is_follower():
                finish(trainer, loop, run)
    for run in book.runs:
        run.emit("start", lines=lines, notes=trainer.data.notes, max_epochs=run.cfg.train.max_epochs)
    with stop_on_signals() as stop_requested:
        trainer.stop_requested = stop_requested
        if trainer.parallel:  # processes stop together, and only rank 0 writes
            trainer.parallel.local_stop, trainer.stop_requested = stop_requested, trainer.parallel.stop_requested
            trainer.book = distributed.ParallelBook(book, trainer.parallel)
        try:
            fit(trainer, loop)
        finally:
            distributed.stop()
    if distributed.is_follower():  # its files are rank 0's; only how it ended matters
        return [
            RunResult(r.run_dir, run_history(r), {}, r.members[0].stop_reason or INTERRUPTED, "", r.cfg)
            for r in book.runs
        ]
    return [run.result or interrupted_result(run, loop) for run in book.runs]


def interrupted_result(run: RunSlot, loop: LoopState) -> RunResult:
    under = f"torchrun --nproc_per_node {distributed.world_size()} -m " if distributed.world_size() > 1 else ""
    msg = f"stopped at epoch {loop.epoch + 1}, step {loop.step}; continue with: {under}trainwell resume {run.run_dir}"
    run.emit("message", text=msg)
    run.emit("end", stop_reason=INTERRUPTED)
    return RunResult(run.run_dir, run_history(run), {}, INTERRUPTED, msg, run.cfg)


def train(
    config: RunConfig | dict[str, Any],
    out: str | Path | None = None,
    quiet: bool | None = None,
    emit: Emit | None = None,
    **given: Any,
) -> RunResult:
    """Train a run from a config (a RunConfig or a raw dict) and write its run directory.
    `given`: a model, data (DataBundle) or loss_fn of one's own (see trainwell.fit)."""
    cfg = compose(base=config, quiet=quiet)
    distributed.check(cfg)
    emit = emit or Progress(cfg.train.quiet)
    # the folder is checked now and created only once every input has been read and checked
    if distributed.is_follower():  # rank 0 checks and writes it
        run_dir = Path(out) if out is not None else rundir.default_run_dir(cfg.name)
    else:
        run_dir = rundir.check_run_out(out) if out is not None else rundir.default_run_dir(cfg.name)
    cfg = resolve_auto_lr(  # "auto" rates become numbers before config.yaml records them
        cfg, run_dir, say=lambda text: emit("message", text=text), **given
    )
    return train_runs([cfg], [run_dir], [run_emit(emit, cfg, run_dir)], **given)[0]


def run_emit(emit: Emit, cfg: RunConfig, run_dir: Path) -> Emit:
    """The run's events to the display and loggers; nowhere on torchrun processes other than rank 0."""
    if distributed.is_follower():
        return lambda *_a, **_k: None
    return wrap_emit(emit, cfg, run_dir)


def resume(
    run_dir: str | Path,
    overrides: dict[str, Any] | None = None,
    quiet: bool | None = None,
    emit: Emit | None = None,
    **given: Any,
) -> RunResult:
    """Continue a run from its last.pt; the result equals an uninterrupted run's (on the CPU)."""
    cfg, ckpt = load_resumable(run_dir)
    distributed.check_resume(ckpt["loop"].get("world_size", 1), Path(run_dir) / rundir.LAST_PT)
    cfg = apply_resume_overrides(cfg, overrides or {}, quiet)
    distributed.check(cfg)
    emit = emit or Progress(cfg.train.quiet)
    return train_runs([cfg], [Path(run_dir)], [run_emit(emit, cfg, Path(run_dir))], resume_from=[ckpt], **given)[0]


__all__ = ["RunResult", "train", "train_runs", "resume"]
