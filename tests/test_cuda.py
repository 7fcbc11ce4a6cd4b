"""On CUDA: skipped where there is no GPU (CI has none); benchmarks/gpu_checks.sh runs them on a lent one."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_config
from trainwell.metrics import member_aucs
from trainwell.runner import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_member_aucs_on_cuda_match_the_cpu():
    g = torch.Generator().manual_seed(0)
    prob = torch.rand(3, 200, 4, generator=g).softmax(-1)
    y = torch.randint(0, 4, (200,), generator=g)
    assert member_aucs(prob.cuda(), y.cuda()) == pytest.approx(member_aucs(prob, y), abs=1e-12)


@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_a_labelled_table_trains_on_cuda_with_each_precision(tmp_path, amp):
    # classification touches what regression does not: class weights, AUCs, the temperature fit
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400), "c": rng.choice(list("xyz"), 400)})
    df["label"] = np.where(df.a + (df.c == "x") > 0.3, "pos", "neg")
    df.to_csv(tmp_path / "c.csv", index=False)
    cfg = tiny_config(
        data={"name": "csv", "path": str(tmp_path / "c.csv"), "target": "label"},
        optim={"lr": 0.01},
        train={"max_epochs": 15, "device": "cuda", "amp": amp, "members": 2, "class_weights": "balanced"},
    )
    result = train(cfg, out=tmp_path / amp)
    assert result.metrics["test_accuracy"] > 0.8 and math.isfinite(result.metrics["test_log_loss"])
    skipped = [r.get("skipped_steps", 0) for r in result.history]
    assert all(s == 0 for s in skipped) if amp != "fp16" else sum(skipped) < len(result.history)
