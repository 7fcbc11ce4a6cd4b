"""Category and numeric embeddings on the vectorised path: the same losses, gradients and outputs
as the module path, and a table with a many-level text column trains there."""

import contextlib
import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch

from trainwell.config import load_config
from trainwell.fastmlp import build_stack
from trainwell.losses import MemberLoss
from trainwell.mlp import build_mlp
from trainwell.runner import train
from trainwell.sections import ModelConfig


def embedded_inputs(K: int, rows: int, generator: torch.Generator) -> torch.Tensor:
    x = torch.randn(K, rows, 5, generator=generator)
    x[..., 1] = torch.randint(0, 8, (K, rows), generator=generator).float()  # 6 rows: codes 6 and 7 are unknown
    x[..., 3] = torch.randint(0, 4, (K, rows), generator=generator).float()
    return x


@pytest.mark.parametrize(
    "numeric, embedded",
    [
        ("none", [{"index": 1, "rows": 6, "width": 3}, {"index": 3, "rows": 4, "width": 2}]),
        ("periodic", [{"index": 1, "rows": 6, "width": 3}]),  # categories and numbers embedded (numembed.py)
        ("periodic-relu", None),  # numbers only
    ],
)
def test_embedded_mlp_steps_and_outputs_equal_the_module_path(numeric, embedded):
    torch.manual_seed(0)
    cfg = ModelConfig(
        hidden=[8, 8], norm="batch", dropout=0.0, numeric_embedding=numeric, numeric_frequencies=4, numeric_width=2
    )
    cfg.numeric_sigma = 0.5  # frequencies large enough that cos bends over the inputs' range (default 0.1)
    cfg.numeric_lr_factor = 0.1 if numeric == "periodic" else 1.0  # stored ÷ 0.1, used × 0.1: gradients × 0.1
    models = [build_mlp(cfg, (5,), 3, embedded, [0, 2, 4]) for _ in range(2)]
    fast = build_stack(copy.deepcopy(models), False, True)
    slow = build_stack(copy.deepcopy(models), False, False)
    assert (fast.engine, slow.engine) == ("vectorised", "module")
    g = torch.Generator().manual_seed(1)
    loss = MemberLoss("classification", torch.zeros(2, 1), None)
    for _ in range(2):  # two steps: the second starts from updated BatchNorm statistics
        x, y = embedded_inputs(2, 16, g), torch.randint(0, 3, (2, 16), generator=g)
        lf = fast.train_step(x, y, loss, [torch.Generator(), torch.Generator()])
        ls = slow.train_step(x, y, loss, [torch.Generator(), torch.Generator()])
        assert torch.allclose(lf, ls, atol=1e-6)
        assert torch.allclose(fast.grad, slow.grad, atol=1e-6)
        assert fast.grad.abs().sum() > 0
        for slot in fast.slots:  # every parameter of a numeric embedding gets a gradient
            part = fast.grad[:, slot.offset : slot.offset + slot.numel]
            assert ".numeric." not in slot.name or part.abs().sum() > 0, slot.name
    shared = embedded_inputs(1, 20, g)[0]
    out_fast = fast.outputs(shared, 7, contextlib.nullcontext, average=False)
    out_slow = slow.outputs(shared, 7, contextlib.nullcontext, average=False)
    assert torch.allclose(out_fast, out_slow, atol=1e-5)
    # the packed weights load into the module's own layout
    assert set(fast.packed_state_dict(fast.pack(0, average=False))) == set(models[0].state_dict())


@pytest.mark.parametrize("threads", [1, 2])
def test_a_member_with_tables_and_embedded_numbers_has_the_same_bits_alone_and_in_a_stack(threads):
    """Table rows are read and their gradients added per member in batch order, whatever K."""
    torch.manual_seed(0)
    cfg = ModelConfig(hidden=[16], norm="batch", dropout=0.2, numeric_embedding="periodic", numeric_frequencies=4)
    embedded = [{"index": 1, "rows": 6, "width": 3}, {"index": 3, "rows": 4, "width": 2}]
    models = [build_mlp(cfg, (5,), 1, embedded, [0, 2, 4]) for _ in range(3)]
    g = torch.Generator().manual_seed(1)
    x, y = embedded_inputs(3, 300, g), torch.randn(3, 300, 1, generator=g)
    loss = MemberLoss("regression", torch.zeros(3, 1), None)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        stack = build_stack(copy.deepcopy(models), False, True)
        losses = stack.train_step(x, y, loss, [torch.Generator().manual_seed(s) for s in (7, 8, 9)])
        for k in (0, 2):
            alone = build_stack([copy.deepcopy(models[k])], False, True)
            one = MemberLoss("regression", torch.zeros(1, 1), None)
            mine = alone.train_step(x[k : k + 1], y[k : k + 1], one, [torch.Generator().manual_seed(7 + k)])
            assert torch.equal(mine, losses[k : k + 1]) and torch.equal(alone.grad, stack.grad[k : k + 1])
    finally:
        torch.set_num_threads(before)


def test_clearing_only_the_rows_written_last_step_gives_the_gradients_of_clearing_whole_tables():
    """The tables' gradient rows of the step before are cleared, not the whole tables: the same
    bits step after step, also after the stack shrinks (its rows move) and under torchrun's flag."""
    torch.manual_seed(0)
    cfg = ModelConfig(hidden=[8], norm="batch", dropout=0.0)
    embedded = [{"index": 1, "rows": 6, "width": 3}, {"index": 3, "rows": 4, "width": 2}]
    models = [build_mlp(cfg, (5,), 1, embedded) for _ in range(3)]
    rows_only, whole = build_stack(copy.deepcopy(models), False, True), build_stack(copy.deepcopy(models), False, True)
    whole.shared_gradient = True  # another process's rows may be anywhere: whole tables are cleared
    g = torch.Generator().manual_seed(3)
    for step in range(4):
        if step == 2:  # a smaller stack: its rows moved
            rows_only, whole = rows_only.subset([0, 2]), whole.subset([0, 2])
        K = rows_only.K
        x, y = embedded_inputs(K, 12, g), torch.randn(K, 12, 1, generator=g)
        loss = MemberLoss("regression", torch.zeros(K, 1), None)
        for stack in (rows_only, whole):
            stack.train_step(x, y, loss, [torch.Generator() for _ in range(K)])
        assert torch.equal(rows_only.grad, whole.grad)
        with torch.no_grad():
            for stack in (rows_only, whole):
                stack.flat -= 0.1 * stack.grad


def test_table_with_a_many_level_text_column_trains_on_the_vectorised_path(tmp_path):
    rng = np.random.default_rng(0)
    shop = rng.choice([f"shop{i}" for i in range(40)], 600)
    effect = {f"shop{i}": rng.normal() for i in range(40)}
    amount = rng.normal(size=600)
    y = amount + np.array([effect[s] for s in shop]) + rng.normal(0, 0.3, 600)
    pd.DataFrame({"shop": shop, "amount": amount, "y": y.round(3)}).to_csv(tmp_path / "t.csv", index=False)
    overrides = {
        "data.name": "csv",
        "data.path": str(tmp_path / "t.csv"),
        "data.target": "y",
        "train.max_epochs": 3,
        "train.members": 2,
        "train.quiet": True,
    }
    result = train(load_config(preset="tabular", overrides=overrides), out=tmp_path / "run")
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["engine"] == "vectorised" and "engine_reason" not in metrics
