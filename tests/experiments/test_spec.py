"""Experiment files: shape checks, variants, grids, seeds, and up-front validation of every config."""

from __future__ import annotations

import pytest

from trainwell.errors import ConfigError
from trainwell.experiments.spec import expand, load_experiment, parse_experiment, slug


def test_named_variants_dotted_and_nested(tiny):
    exp = parse_experiment(
        tiny(variants={"sgd": {"optim.name": "sgd"}, "adamw": {"optim": {"name": "adamw", "lr": 1e-2}}})
    )
    assert list(exp.variants) == ["sgd", "adamw"]
    assert exp.variants["adamw"] == {"optim.name": "adamw", "optim.lr": 1e-2}
    assert exp.reference == "sgd" and exp.seeds == [0, 1]
    runs = expand(exp)
    assert [(r.variant, r.seed) for r in runs] == [("sgd", 0), ("sgd", 1), ("adamw", 0), ("adamw", 1)]
    assert runs[2].config.optim.lr == 1e-2 and runs[2].config.train.seed == 0
    assert runs[0].config.model.hidden == [16, 8]  # from the base


def test_grid_is_every_combination_named_by_field(tiny):
    exp = parse_experiment(tiny(grid={"model.dropout": [0.0, 0.3], "optim.lr": [1e-3, 1e-2, 0.1]}))
    assert len(exp.variants) == 6
    assert "dropout=0.3,lr=0.01" in exp.variants
    assert exp.variants["dropout=0,lr=0.1"] == {"model.dropout": 0.0, "optim.lr": 0.1}


def test_named_variants_times_grid(tiny):
    exp = parse_experiment(tiny(variants={"a": {}, "b": {"optim.name": "sgd"}}, grid={"model.dropout": [0.0, 0.5]}))
    assert list(exp.variants) == ["a/dropout=0", "a/dropout=0.5", "b/dropout=0", "b/dropout=0.5"]
    assert exp.variants["b/dropout=0.5"] == {"optim.name": "sgd", "model.dropout": 0.5}


def test_no_variants_runs_the_base(tiny):
    exp = parse_experiment(tiny(seeds=[3, 7]))
    assert list(exp.variants) == ["base"] and exp.seeds == [3, 7]
    assert [r.config.train.seed for r in expand(exp)] == [3, 7]


def test_base_from_preset_with_set():
    exp = parse_experiment(
        {"base": {"preset": "delivery-production", "set": {"train.max_epochs": 7}}, "variants": {"x": {}}}
    )
    cfg = expand(exp)[0].config
    assert cfg.train.max_epochs == 7 and cfg.optim.name == "adamw"


def test_overrides_apply_to_every_run_after_the_variant(tiny):
    exp = parse_experiment(tiny(variants={"a": {"train.max_epochs": 9}}))
    assert {r.config.train.max_epochs for r in expand(exp, {"train.max_epochs": 2})} == {2}


@pytest.mark.parametrize(
    "change, words",
    [
        ({"variants": {"a": {"optim.lrr": 1}}}, "unknown field optim.lrr"),
        ({"variants": {"a": {"optim.lr": -1}}}, "optim.lr = -1.0 is not allowed"),
        ({"variants": {"a": {"optim.name": "lion"}}}, "unknown optimizer 'lion'"),
        ({"grid": {"model.norm": ["batch", "group"]}}, "model.norm = 'group'"),
    ],
)
def test_bad_variant_fails_before_any_run(tiny, change, words):
    exp = parse_experiment(tiny(**change))
    with pytest.raises(ConfigError) as err:
        expand(exp)
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"variantz": {}}, "unknown experiment key 'variantz'"),
        ({"seeds": 0}, "seeds = 0"),
        ({"seeds": [1, 1]}, "distinct"),
        ({"seeds": "three"}, "seeds = 'three'"),
        ({"grid": {"model.dropout": 0.1}}, "non-empty list"),
        ({"variants": {"a": {"dropout": 0.1}}}, "is not a field"),
        ({"variants": {"a": {}}, "reference": "b"}, "reference = 'b' is not a variant"),
        ({"base": {"preset": "nope"}}, "unknown preset 'nope'"),
        ({"base": {"presett": "x"}}, "unknown key base.presett"),
        ({"stack": "yes"}, "stack = 'yes'"),
    ],
)
def test_bad_experiment_shape(tiny, change, words):
    with pytest.raises(ConfigError) as err:
        parse_experiment(tiny(**change))
    assert words in str(err.value)


def test_not_a_mapping():
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_experiment([1, 2])


def test_file_with_relative_config(tmp_path):
    (tmp_path / "base.yaml").write_text("model: {hidden: [8]}\ntrain: {max_epochs: 2}\n")
    (tmp_path / "exp.yaml").write_text(
        "base: {config: base.yaml, data: {n: 200}}\nvariants: {a: {optim.lr: 0.01}}\nseeds: 1\n"
    )
    exp = load_experiment(tmp_path / "exp.yaml")
    assert exp.name == "exp"
    cfg = expand(exp)[0].config
    assert cfg.model.hidden == [8] and cfg.data.n == 200 and cfg.optim.lr == 0.01


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_experiment(tmp_path / "nope.yaml")


def test_with_seeds_and_slug(tiny):
    exp = parse_experiment(tiny()).with_seeds(4)
    assert exp.seeds == [0, 1, 2, 3]
    with pytest.raises(ConfigError):
        exp.with_seeds(0)
    assert slug("adam with L2") == "adam-with-L2" and slug("dropout=0.1,lr=1") == "dropout=0.1-lr=1"


def test_metric_names_any_metric_trainwell_computes(tiny):
    from trainwell.metric_names import default_metric

    assert parse_experiment(tiny(metric="roc_auc")).metric == "test_roc_auc"
    assert parse_experiment(tiny(metric="test_rmse")).metric == "test_rmse"
    assert parse_experiment(tiny()).with_metric("log_loss").metric == "test_log_loss"
    with pytest.raises(ConfigError, match="metric = 'auc' is not allowed: a metric trainwell computes: one of mae"):
        parse_experiment(tiny(metric="auc"))
    # the defaults: RMSE for regression; log loss, or ROC AUC when classes are weighted; the lessons' own metric
    assert default_metric("csv", "regression", False) == "rmse"
    assert default_metric("csv", "classification", False) == "log_loss"
    assert default_metric("csv", "classification", True) == "roc_auc"
    assert default_metric("delivery", "regression", False) == "mae"
