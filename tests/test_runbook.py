"""What the run book writes for an ensemble: the display runs to its last epoch, one best epoch by
the run's own rule everywhere, and learning rates as the members' range, never their mean."""

from __future__ import annotations

import io
import json

from trainwell import advice
from trainwell.config import RunConfig
from trainwell.early_stopping import replayed
from trainwell.progress import Progress
from trainwell.runner import train


def ensemble(tiny):
    # members stop at different epochs: patience 2 on a plateau schedule that halves quickly
    return RunConfig.from_dict(
        tiny(
            schedule={"name": "plateau", "patience": 0, "factor": 0.5},
            train={"members": 4, "max_epochs": 40, "patience": 2, "quiet": False},
        )
    )


def test_an_ensembles_display_history_metrics_and_advice_agree(tmp_path, tiny):
    shown = io.StringIO()
    result = train(ensemble(tiny), out=tmp_path / "run", emit=Progress(stream=shown))
    history = result.history
    lines = [line for line in shown.getvalue().splitlines() if line.startswith("epoch")]
    assert len(lines) == len(history) == result.metrics["epochs_run"]  # the display runs to the last epoch
    assert min(r["members_training"] for r in history) < 4  # members did stop at different epochs
    best = replayed(history, "val_loss", "min")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["best_epoch"] == best.best_epoch and metrics["best_value"] == best.best_value
    starred = [int(line.split("/")[0].split()[-1]) for line in lines if line.endswith("*")]
    assert starred[-1] == best.best_epoch  # the last live mark is the best epoch
    ctx = advice.context_from_config(result.config, result.stop_reason)
    message = advice.early_stopping_value(history, ctx)
    assert message is None or f"best epoch {best.best_epoch}" in message.message


def test_an_ensembles_learning_rate_never_rises_under_a_schedule_that_only_lowers_it(tmp_path, tiny):
    result = train(ensemble(tiny), out=tmp_path / "run", quiet=True)
    highest = [r["lr"] for r in result.history]
    lowest = [r["lr_min"] for r in result.history]
    assert all(b <= a for a, b in zip(highest, highest[1:]))
    assert all(lo <= hi for lo, hi in zip(lowest, highest)) and lowest[-1] < highest[0]


def test_train_checkpoint_seconds_spaces_the_epoch_end_writes_and_the_end_still_writes(tmp_path, tiny, monkeypatch):
    from trainwell import runbook

    written = []
    save_last = runbook.save_last
    monkeypatch.setattr(
        runbook, "save_last", lambda t, s, run, durable=False: (written.append(s.epoch), save_last(t, s, run, durable))
    )
    every = RunConfig.from_dict(tiny(train={"max_epochs": 4, "quiet": True}))
    train(every, out=tmp_path / "every")
    assert written == [1, 2, 3, 4]  # 0 s: every epoch, the default (3600 s below: the first epoch and the end)
    written.clear()
    spaced = RunConfig.from_dict(tiny(train={"max_epochs": 4, "quiet": True, "checkpoint_seconds": 3600}))
    result = train(spaced, out=tmp_path / "spaced")
    assert written == [1, 4] and (tmp_path / "spaced" / "last.pt").exists() and result.metrics["epochs_run"] == 4
