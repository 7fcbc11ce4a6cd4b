"""One member-state schema: every field captured into last.pt is applied back on resume."""

import pytest
import torch

from conftest import tiny_config
from trainwell.build import build_trainer
from trainwell.config import RunConfig
from trainwell.loop import LoopState, fit
from trainwell.member_state import MEMBER_STATE, capture, restore
from trainwell.seeding import rng_snapshot


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_schema_lists_each_key_once():
    keys = [f.key for f in MEMBER_STATE]
    assert len(keys) == len(set(keys)) == 15


@pytest.mark.parametrize("model", [{"dropout": 0.2}, {"norm": "layer", "dropout": 0.2}], ids=["vectorised", "module"])
def test_restore_gives_back_every_captured_field(tmp_path, model):
    """Stopped mid-epoch, captured, applied to a trainer built from another seed: captured again,
    every field of every member is as it was."""
    cfg = RunConfig.from_dict(
        tiny_config(model=model, train={"max_epochs": 3, "members": 2, "ema_decay": 0.9, "patience": 1})
    )
    (tmp_path / "a").mkdir()
    a, _, _ = build_trainer([cfg], [tmp_path / "a"], [lambda *_a, **_k: None])
    steps = iter(range(10**6))
    a.stop_requested = lambda: next(steps) == a.steps_per_epoch + 2  # mid-epoch 2
    s = fit(a, LoopState())
    assert s.interrupted and s.perm is not None and s.epoch == 1
    saved = [capture(a, s, m) for m in a.members]
    payload = {
        "loop": {"epoch": s.epoch, "step": s.step, "epoch_seconds": 0.0},
        "members": saved,
        "rng": rng_snapshot({}),
    }

    other = RunConfig.from_dict({**cfg.to_dict(), "train": {**cfg.to_dict()["train"], "seed": 7}})
    b, _, _ = build_trainer([other], [tmp_path / "b"], [lambda *_a, **_k: None])
    assert not same(capture(b, LoopState(), b.members[0])["weights"], saved[0]["weights"])
    t = restore(b, [payload], [tmp_path / "b"])
    assert (t.epoch, t.step) == (s.epoch, s.step)
    for m, before in zip(b.members, saved):
        after = capture(b, t, m)
        assert [f.key for f in MEMBER_STATE if not same(after[f.key], before[f.key])] == []
