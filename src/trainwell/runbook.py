"""The run book: what the loop's fixed points write into each run directory.

best.pt at each improvement, last.pt at checkpoints and epoch ends (each member's state as
member_state.py's schema captures it), and when every member of a run has stopped, `finish`:
the test split scored with the final weights, history, metrics and curves.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from . import calibration, member_state, metric_names, rundir
from .atomic import fsync_path
from .checkpoint import BEST, LAST, load_model_state, save_checkpoint
from .config import RunConfig
from .data import DataBundle
from .early_stopping import EarlyStopping, replayed
from .loop import Emit, LoopState, Member, Trainer
from .outputs import ensemble_scores, predict_outputs, test_metrics
from .plots import plot_curves
from .seeding import rng_snapshot
from .stop_reasons import EARLY_STOP, HALVED, MAX_EPOCHS, NOT_FINITE

# last.pt is fsynced at most this often: every write survives a killed process, and a power cut loses at most this much
SYNC_SECONDS = 10.0


@dataclass
class RunResult:
    run_dir: Path
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    stop_reason: str
    message: str = ""
    config: RunConfig | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.stop_reason in (EARLY_STOP, MAX_EPOCHS, HALVED)


@dataclass
class RunSlot:
    """One run directory among the runs a process trains together, and what it has written."""

    cfg: RunConfig
    run_dir: Path
    emit: Emit
    members: list[Member] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)
    engine: str = ""
    engine_reason: str = ""
    dirty: bool = False  # a member improved this epoch: best.pt is due
    synced: float = 0.0  # time.monotonic() of last.pt's last fsync
    best_synced: float = 0.0  # and of best.pt's (both are fsynced when the run ends)
    result: RunResult | None = None


# ---- what the loop tells the run directories ------------------------------------------------------


STEP_EVENTS_PER_SECOND = 20


class RunBook:
    """Writes each run's files at the loop's fixed points; finishes runs whose members all stopped."""

    def __init__(self, runs: list[RunSlot]) -> None:
        self.runs = runs
        # called first at each epoch end, e.g. a search's successive halving stopping members
        self.on_epoch_end: Callable[[Trainer, LoopState], None] | None = None
        # last.pt and best.pt at most this often (and whenever a run of the stack finishes, so a
        # resumed stack holds the same runs); 0: at every epoch end
        self.checkpoint_seconds = 0.0
        self.saved = -math.inf  # time.monotonic() of the last epoch-end save
        self.last_step_event = -math.inf
        self.step_events = True  # live progress after steps (off where no one displays it)

    def improved(self, member: Member) -> None:
        self.runs[member.run].dirty = True

    def open_runs(self) -> list[RunSlot]:
        return [r for r in self.runs if r.result is None]

    def due(self, t: Trainer, s: LoopState, run: RunSlot) -> bool:
        every = run.cfg.train.checkpoint_every_steps
        return s.interrupted or bool(every and (s.epoch * t.steps_per_epoch + s.step) % every == 0)

    def checkpoint_due(self, t: Trainer, s: LoopState) -> bool:
        return any(self.due(t, s, run) for run in self.open_runs())

    def checkpoint(self, t: Trainer, s: LoopState) -> None:
        for run in self.open_runs():
            if self.due(t, s, run):
                if run.dirty:  # best.pt may lag behind when epoch-end saves are spaced out
                    save_best(t, run)
                    run.dirty = False
                save_last(t, s, run)
                if not s.interrupted:
                    run.emit("checkpoint", epoch=s.epoch, step=s.step, lr=run.members[0].lr)

    def step(self, t: Trainer, s: LoopState) -> None:
        """After each optimizer step, for live progress: the epoch's steps and rows so far and,
        computed only when shown, the running training loss of each run's first member; at most
        STEP_EVENTS_PER_SECOND (a display redraws less often)."""
        now = time.monotonic()
        if not self.step_events or now - self.last_step_event < 1.0 / STEP_EVENTS_PER_SECOND:
            return
        self.last_step_event = now
        for run in self.open_runs():
            m = run.members[0]
            if m.row is None:
                continue
            rows = t.rows_seen(s)
            row = m.row
            run.emit(
                "step",
                step=s.step,
                steps=t.epoch_steps(s),
                rows=rows,
                loss=lambda row=row, rows=rows: s.step_loss[: s.step, row].sum().item() / max(1, rows),
            )

    def epoch_end(self, t: Trainer, s: LoopState) -> None:
        if self.on_epoch_end is not None:
            self.on_epoch_end(t, s)
        ending = {id(run) for run in self.open_runs() if all(not m.training for m in run.members)}
        save = bool(ending) or time.monotonic() - self.saved >= self.checkpoint_seconds
        if save:
            self.saved = time.monotonic()
        for run in self.open_runs():
            if run.dirty and save:  # a member improved: its best weights go into best.pt
                save_best(t, run)
                run.dirty = False
            history = run_history(run)
            if history and history[-1]["epoch"] == s.epoch:  # some member trained this epoch
                best = run_best(run, history)
                if best.best_epoch == s.epoch:
                    run.emit("best", epoch=s.epoch, value=best.best_value)
                run.emit("epoch_end", row=history[-1], state=best)
            if id(run) in ending:
                finish(t, s, run)
            elif save:
                save_last(t, s, run)
                run.emit("checkpoint", epoch=s.epoch, step=0, lr=run.members[0].lr)


def run_history(run: RunSlot) -> list[dict[str, Any]]:
    """The run's per-epoch rows: its member's, or for an ensemble the mean over the members
    that trained that epoch (with their count), except the learning rate: `lr` is the highest
    member's rate and `lr_min` the lowest (a mean over the members still training rises when a
    member with a low rate stops, against a schedule that only lowers it)."""
    if len(run.members) == 1:
        return run.members[0].history
    rows = []
    for epoch in range(1, max(len(m.history) for m in run.members) + 1):
        present = [m.history[epoch - 1] for m in run.members if len(m.history) >= epoch]
        row = {k: sum(r[k] for r in present) / len(present) for k in present[0] if k not in ("epoch", "seconds", "lr")}
        rates = [r["lr"] for r in present]
        rows.append(
            {
                "epoch": epoch,
                **row,
                "lr": max(rates),
                "lr_min": min(rates),
                "seconds": sum(r["seconds"] for r in present),
                "members_training": len(present),
            }
        )
    return rows


def run_best(run: RunSlot, history: list[dict[str, Any]]) -> EarlyStopping:
    """The run's best epoch and value by its own rule: its member's early stopping, or for an
    ensemble the same rule over the averaged rows' monitored metric (`history`: run_history(run)).
    The live mark, metrics.json, curves.svg and the advice all read it."""
    first = run.members[0]
    if len(run.members) == 1:
        return first.stopper
    return replayed(history, run.cfg.train.monitor, first.stopper.mode, run.cfg.train.min_delta)


def _sync_due(run: RunSlot, which: str, forced: bool = False) -> bool:
    """Whether this write of last.pt or best.pt (`which`: "synced" or "best_synced") is fsynced:
    when forced, or when SYNC_SECONDS have passed since that file's last fsync."""
    now = time.monotonic()
    if forced or now - getattr(run, which) >= SYNC_SECONDS:
        setattr(run, which, now)
        return True
    return False


def save_last(t: Trainer, s: LoopState, run: RunSlot, durable: bool = False) -> None:
    durable = _sync_due(run, "synced", durable or s.interrupted)
    body = {
        "config": run.cfg.to_dict(),
        "loop": {
            "epoch": s.epoch,
            "step": s.step,
            "offset": s.offset,
            "epoch_seconds": s.epoch_seconds,
            "interrupted": s.interrupted,
            "world_size": t.parallel.world if t.parallel else 1,
        },
        "members": [member_state.capture(t, s, m) for m in run.members],
        "layout": t.stack.layout,  # the architecture, to check a model given on resume
        "rng": rng_snapshot({}),
        "spec": run.spec,
    }
    save_checkpoint(LAST, body, run.run_dir / rundir.LAST_PT, durable)


def save_best(t: Trainer, run: RunSlot) -> None:
    durable = _sync_due(run, "best_synced")
    states = [t.stack.packed_state_dict(m.best) if m.best is not None else None for m in run.members]
    first = run.members[0]
    body = {
        "model": states[0],
        "epoch": first.stopper.best_epoch,
        "monitor": run.cfg.train.monitor,
        "value": first.stopper.best_value,
        "spec": run.spec,
    }
    if len(states) > 1:
        body["members"] = states
    save_checkpoint(BEST, body, run.run_dir / rundir.BEST_PT, durable)


# ---- finishing a run ------------------------------------------------------------------------------


def _final_weights(t: Trainer, m: Member) -> tuple[dict[str, torch.Tensor] | None, bool]:
    """The weights a member is tested with: its best (restore_best) or its last evaluated ones."""
    if m.cfg.train.restore_best and m.best is not None:
        return m.best, True
    if m.stop_reason == NOT_FINITE:
        return m.best, m.best is not None
    return t.stack.pack(m.row, average=True), False


def finish(t: Trainer, s: LoopState, run: RunSlot) -> None:
    """Restore best weights, score the test split, write history, metrics and curves."""
    cfg = run.cfg
    save_last(t, s, run, durable=True)
    if (run.run_dir / rundir.BEST_PT).exists():
        fsync_path(run.run_dir / rundir.BEST_PT)
    outs, val_outs, restored = _test_outputs(t, run)
    cal = calibrate(t, run, val_outs) if restored else None
    failed = [m for m in run.members if m.stop_reason == NOT_FINITE]
    reason = (
        NOT_FINITE
        if len(failed) == len(run.members)
        else next(m.stop_reason for m in run.members if m.stop_reason != NOT_FINITE)
    )
    first = run.members[0]
    history = run_history(run)
    best = run_best(run, history)
    metrics = _run_metrics(t, run, outs, history, restored, reason, best, cal)
    message = ""
    if failed:
        detail = failed[0].stop_detail
        metrics["error"] = detail
        kept = (
            f"best weights (epoch {first.stopper.best_epoch}) kept in {run.run_dir / rundir.BEST_PT}"
            if first.best is not None
            else "no best weights were saved"
        )
        message = (
            f"training stopped: {detail}; {kept}"
            if reason == NOT_FINITE
            else f"{len(failed)} of {len(run.members)} members stopped: {detail}"
        )
        run.emit("message", text=message)
    rundir.write_history(run.run_dir, history)
    rundir.write_json(run.run_dir / rundir.METRICS, metrics)
    if history and cfg.train.curves:
        plot_curves(
            history,
            run.run_dir / rundir.CURVES,
            title=f"{cfg.name} (seed {cfg.train.seed})",
            best_epoch=best.best_epoch,
        )
    run.result = RunResult(run.run_dir, history, metrics, reason, message, cfg)
    run.emit("end", stop_reason=reason)


def _test_outputs(t: Trainer, run: RunSlot) -> tuple[list[torch.Tensor], list[torch.Tensor], bool]:
    """Each member's test-split outputs with its final weights (members without any are left
    out), its validation outputs (classification: the rows probabilities are calibrated on),
    and whether every scored member was restored to its best weights."""
    data = t.data
    finals = [(m, *_final_weights(t, m)) for m in run.members]
    scored = [(m, w, r) for m, w, r in finals if w is not None]
    model = copy.deepcopy(t.stack.template).to(t.device)
    outs, val_outs = [], []
    for m, weights, _ in scored:
        load_model_state(model, t.stack.packed_state_dict(weights), run.run_dir / rundir.BEST_PT)
        outs.append(predict_outputs(model, data, data.x_test, run.cfg.train.eval_batch_size, t.autocast))
        if data.task == "classification":
            val_outs.append(predict_outputs(model, data, data.x_val, run.cfg.train.eval_batch_size, t.autocast))
        if m.row is not None:  # the live weights end as tested (a model of one's own keeps its best weights)
            t.stack.unpack(m.row, weights, average=False)
    return outs, val_outs, all(r for _, _, r in scored) and bool(scored)


def calibrate(t: Trainer, run: RunSlot, val_outs: list[torch.Tensor]) -> dict[str, Any] | None:
    """A classification's probability corrections (calibration.py), fitted on the validation rows
    with the best weights and saved in best.pt beside them."""
    if not val_outs or not (run.run_dir / rundir.BEST_PT).exists():
        return None
    weights = getattr(t.loss_fn, "class_weight", None)  # the weights training used (losses.MemberLoss)
    smoothed = run.cfg.train.label_smoothing > 0  # the temperature may then sharpen
    decision = calibration.decision_weights(run.cfg.train.class_weights, t.data.y_train, t.data.n_outputs)
    cal = calibration.fit(ensemble_scores("classification", val_outs)[0], t.data.y_val, weights, smoothed, decision)
    run.spec["calibration"] = cal
    save_best(t, run)
    fsync_path(run.run_dir / rundir.BEST_PT)
    return cal


def _run_metrics(
    t: Trainer,
    run: RunSlot,
    outs: list[torch.Tensor],
    history: list[dict[str, Any]],
    restored: bool,
    reason: str,
    best: EarlyStopping,
    cal: dict[str, Any] | None,
) -> dict[str, Any]:
    """metrics.json of a finished run (the failure detail is added by `finish`)."""
    data = t.data
    metrics: dict[str, Any] = {}
    if outs:
        test = test_metrics(data.task, outs, data.y_test, data.target_scale, cal)
        metrics.update({f"test_{k}": v for k, v in test.items() if k != "loss"}, test_loss=test["loss"])
    metrics.update(
        epochs_run=len(history),
        best_epoch=best.best_epoch,
        best_value=best.best_value,
        monitor=run.cfg.train.monitor,
        restored_best=restored,
        stop_reason=reason,
        wall_seconds=round(sum(m.seconds for m in run.members), 3),
        engine=run.engine,
        stacked_with=len({m.run for m in t.members}),
        threads=torch.get_num_threads(),
    )
    if run.engine_reason:
        metrics["engine_reason"] = run.engine_reason
    if len(run.members) > 1:
        metrics.update(member_metrics(data, outs))
    return metrics


def member_metrics(data: DataBundle, outs: list[torch.Tensor]) -> dict[str, Any]:
    """Each member's own test metric, and their mean ± std, beside the ensemble's."""
    main = metric_names.MAIN[data.task]
    values = [test_metrics(data.task, [o], data.y_test, data.target_scale)[main] for o in outs]
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else float("nan")
    return {
        "members": len(outs),
        f"members_test_{main}": values,
        f"members_test_{main}_mean": mean,
        f"members_test_{main}_std": std,
    }
