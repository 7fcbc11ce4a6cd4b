"""amp fp16: dynamic loss scaling, tested on the CPU (autocast stays off there, the scaling runs)."""

import json

import torch

from trainwell.checkpoint import LAST, load_checkpoint
from trainwell.optim import LossScale
from trainwell.runner import train


def test_scale_halves_on_overflow_and_doubles_after_clean_steps():
    s = LossScale(2, 8.0, torch.device("cpu"))
    s.update([0, 1], [True, False])
    assert s.scale.tolist() == [4.0, 8.0] and s.skipped == [1, 0]
    for _ in range(LossScale.GROWTH_INTERVAL - 1):
        s.update([0, 1], [False, False])
    assert s.scale.tolist() == [4.0, 16.0] and s.clean == [LossScale.GROWTH_INTERVAL - 1, 0]


def test_a_power_of_two_scale_without_overflow_changes_nothing(tmp_path, tiny):
    def runs(model, clip):
        plain = train(tiny(model=model, train={"clip_norm": clip}), out=tmp_path / f"plain{len(model)}{clip}")
        scaled = train(
            tiny(model=model, train={"clip_norm": clip, "amp": "fp16", "loss_scale": 1024.0}),
            out=tmp_path / f"scaled{len(model)}{clip}",
        )
        assert [r["skipped_steps"] for r in scaled.history] == [0] * len(plain.history)
        keys = [k for k in plain.history[0] if k != "seconds"]
        return [[r[k] for k in keys] for r in plain.history], [[r[k] for k in keys] for r in scaled.history]

    for model in ({"dropout": 0.1}, {"norm": "layer", "dropout": 0.1}):  # fast path and module path
        plain, scaled = runs(model, None)
        assert plain == scaled  # scaling by 2^10 and dividing it out is exact in float32
        plain, scaled = runs(model, 0.5)  # clipped: the kernel divides by scale / coefficient (other rounding)
        assert torch.allclose(torch.tensor(plain), torch.tensor(scaled), rtol=1e-5)


def test_forced_overflow_skips_steps_counts_them_and_recovers(tmp_path, tiny):
    cfg = tiny(train={"amp": "fp16", "loss_scale": 2.0**72, "max_epochs": 3, "early_stopping": False})
    result = train(cfg, out=tmp_path / "run")  # 2^72 × the gradient: its squared norm overflows float32 (> 3.4e38)
    skipped = [r["skipped_steps"] for r in result.history]
    assert skipped[0] > 0 and sum(skipped) < 3 * 9  # 9 steps per epoch: some steps did train
    assert result.stop_reason == "max_epochs" and torch.isfinite(torch.tensor(result.history[-1]["val_loss"]))
    last = load_checkpoint(tmp_path / "run" / "last.pt", LAST)["members"][0]["optimizer"]
    assert last["loss_scale"]["skipped"] == sum(skipped) and last["loss_scale"]["scale"] < 2.0**72
    assert last["step"] == 3 * 9 - sum(skipped)  # a skipped step is no optimizer step
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test_mae"] < 10
