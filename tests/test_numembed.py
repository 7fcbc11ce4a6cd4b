"""Periodic embeddings of numeric columns (model.numeric_embedding): a member of a stack equals
itself alone, weight decay falls on the Linear weight only, and a run saves, loads and predicts
with the embedding (test_fastembed.py: the vectorised path equals the module path)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from trainwell.config import load_config
from trainwell.data.preprocess import numeric_columns
from trainwell.errors import ConfigError
from trainwell.inference import evaluate_run, load_run, predict_run
from trainwell.mlp import InputEmbedding, build_mlp
from trainwell.models import build_model
from trainwell.numembed import PeriodicEmbedding, periodic_backward, periodic_forward
from trainwell.optim import decay_split
from trainwell.planning import group_key
from trainwell.runner import train, train_runs
from trainwell.sections import ModelConfig
from trainwell.stack import flat_layout


def test_embedding_reads_each_numeric_column_alone():
    torch.manual_seed(0)
    emb = PeriodicEmbedding([0, 2], frequencies=3, width=2, sigma=1.0)
    x = torch.randn(6, 3)
    out = emb(x)
    assert out.shape == (6, 4)
    moved = x.clone()
    moved[:, 1] = 5.0  # a column it does not embed
    moved[:, 2] += 1.0  # the second embedded column: only its two outputs change
    again = emb(moved)
    assert torch.equal(again[:, :2], out[:, :2]) and not torch.allclose(again[:, 2:], out[:, 2:])


def test_weight_decay_falls_on_the_linear_weight_only():
    model = build_mlp(ModelConfig(hidden=[8], numeric_embedding="periodic"), (4,), 1)
    named = [(n, p) for n, p in model.named_parameters() if n.startswith("0.numeric.")]
    split = decay_split(named)
    assert (split.decay_tensors, split.no_decay_names) == (
        1,
        ("0.numeric.frequency", "0.numeric.phase", "0.numeric.bias"),
    )
    slots, decay_size = flat_layout(model)
    decayed = {s.name for s in slots if s.offset < decay_size}
    assert "0.numeric.weight" in decayed and "0.numeric.frequency" not in decayed


BASE = {"data.n": 300, "model.hidden": [16, 8], "train.max_epochs": 3, "train.batch_size": 32, "train.quiet": True}


def cfg(**changes):
    given = {"model.numeric_embedding": "periodic", **{k.replace("__", "."): v for k, v in changes.items()}}
    return load_config(overrides={**BASE, **given})


def strip(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_a_member_alone_equals_the_same_member_in_a_stack(tmp_path):
    common = {"model__dropout": 0.3, "train__ema_decay": 0.9, "train__clip_norm": 1.0}
    alone = train_runs([cfg(**common, train__seed=0)], [tmp_path / "alone"])[0]
    stack = train_runs(
        [cfg(**common, train__seed=s, model__numeric_sigma=0.1 * (1 + s)) for s in [3, 0, 1]],
        [tmp_path / f"s{i}" for i in range(3)],
    )
    together = stack[1]
    assert together.metrics["stacked_with"] == 3 and together.metrics["engine"] == "vectorised"
    assert strip(together.history) == strip(alone.history)
    assert together.metrics["test_mae"] == alone.metrics["test_mae"]


@pytest.mark.parametrize(
    "relu, n, rows, threads", [(False, 6, 97, 1), (True, 6, 512, 1), (False, 1, 64, 1), (False, 6, 512, 2)]
)
def test_the_closed_forms_give_a_member_the_same_bits_alone_and_among_five(relu, n, rows, threads):
    """Every member's output and gradients are computed with the same layouts whatever K: a
    reduction over a strided view (as a (1, ...) transpose gives) rounds differently."""
    torch.manual_seed(0)
    K, m, w = 5, 16, 3
    emb = PeriodicEmbedding(list(range(n)), m, w, 0.5, relu=relu)
    params = [torch.randn(K, n * m), torch.randn(K, n * m), torch.randn(K, n, m, w), torch.randn(K, n * w)]
    x, g = torch.randn(K, rows, n + 2), torch.randn(K, rows, n * w)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out, saved = periodic_forward(emb, x, tuple(params), K)
        grads = periodic_backward(emb, g, saved)
        for k in (0, 3):
            out_k, saved_k = periodic_forward(emb, x[k : k + 1], tuple(p[k : k + 1] for p in params), 1)
            assert torch.equal(out_k, out[k : k + 1])
            for alone, together in zip(periodic_backward(emb, g[k : k + 1], saved_k), grads):
                assert torch.equal(alone, together[k : k + 1])
    finally:
        torch.set_num_threads(before)


def mixed_table(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    amount = rng.normal(size=n)
    shop = rng.choice([f"shop{i}" for i in range(30)], n)
    colour = rng.choice(["red", "blue", "green"], n)
    day = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    y = np.where(amount > 0.3, 2.0, -1.0) + (colour == "red") + rng.normal(0, 0.2, n)
    df = pd.DataFrame({"amount": amount, "shop": shop, "colour": colour, "day": day.strftime("%Y-%m-%d"), "y": y})
    df.loc[::7, "amount"] = np.nan
    return df


def test_a_run_with_embedded_numbers_saves_loads_and_predicts(tmp_path):
    mixed_table().to_csv(tmp_path / "t.csv", index=False)
    data = {"data.name": "csv", "data.path": str(tmp_path / "t.csv"), "data.target": "y", "data.onehot_max_levels": 5}
    short = {"train.max_epochs": 3, "train.members": 2, "train.quiet": True}
    config = load_config(preset="tabular", overrides={**data, **short, "model.numeric_embedding": "periodic"})
    result = train(config, out=tmp_path / "run")
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["engine"] == "vectorised" and "engine_reason" not in metrics
    _, model, spec = load_run(result.run_dir)
    names = spec["feature_names"]
    # amount and the four date parts are embedded; the missing indicator, one-hot and code columns are not
    assert [names[i] for i in numeric_columns(spec)] == [
        "amount",
        "day.year",
        "day.month",
        "day.day_of_week",
        "day.day_of_year",
    ]
    member = model.members[0] if hasattr(model, "members") else model
    assert member[0].numeric.index.tolist() == numeric_columns(spec)
    assert evaluate_run(result.run_dir)["test_rmse"] == pytest.approx(metrics["test_rmse"], rel=1e-5)
    predicted = predict_run(result.run_dir, mixed_table().head(5).drop(columns="y"))
    assert len(predicted) == 5 and np.isfinite(predicted["predicted_y"]).all()


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("numeric_embedding", "pbld", "one of none, periodic, periodic-relu"),
        ("numeric_frequencies", 0, "an integer from 1 to 256"),
        ("numeric_width", 65, "an integer from 1 to 64"),
        ("numeric_sigma", 0, "a number > 0 and <= 100"),
    ],
)
def test_bad_numeric_embedding_settings_are_refused_in_one_line(field, value, allowed):
    with pytest.raises(ConfigError, match=f"model.{field} = .* is not allowed: {allowed}") as info:
        load_config(overrides={f"model.{field}": value})
    assert "\n" not in str(info.value)


def test_numeric_embedding_needs_a_table_and_an_mlp():
    with pytest.raises(ConfigError, match="cannot embed numeric columns"):
        build_model(ModelConfig(kind="cnn", numeric_embedding="periodic"), (3, 8, 8), 2, "cnn")
    with pytest.raises(ConfigError, match="embeds the columns of a table"):
        build_model(ModelConfig(kind="mlp", numeric_embedding="periodic"), (3, 8, 8), 2, "cnn")
    plain = build_model(ModelConfig(hidden=[4]), (3,), 1, "mlp")  # none: the MLP as before, no front
    assert not isinstance(plain[0], InputEmbedding)


def test_runs_with_different_embedding_layouts_train_apart():
    key = group_key(cfg())
    assert group_key(cfg(model__numeric_sigma=1.0)) == key  # sigma only draws the start: one stack
    for change in (
        {"model__numeric_width": 2},
        {"model__numeric_frequencies": 8},
        {"model__numeric_embedding": "none"},
    ):
        assert group_key(cfg(**change)) != key


def test_lr_factor_scales_the_embeddings_steps_and_nothing_else():
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    moved = {}
    for r in (1.0, 0.1):
        torch.manual_seed(0)
        emb = PeriodicEmbedding([0, 1], frequencies=4, width=2, sigma=0.3, lr_factor=r)
        start = emb(x).detach()
        before = r * emb.frequency.detach().clone()  # the frequencies the stored values stand for
        opt = torch.optim.Adam(emb.parameters(), lr=0.01)
        emb(x).sin().sum().backward()
        opt.step()
        moved[r] = (r * emb.frequency.detach() - before).abs()
        assert torch.allclose(start, moved.setdefault("start", start), atol=1e-6)  # the same function at the start
    assert torch.allclose(moved[0.1], 0.1 * moved[1.0], rtol=1e-3)
