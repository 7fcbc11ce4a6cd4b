"""Defaults that scale with the table: the documented rules, resolved from the training rows."""

import math

import pytest

from trainwell.scaling import AUTO, STEP_BUDGET, auto_batch_size, resolve, validations_per_pass


@pytest.mark.parametrize(
    "rows, batch", [(100, 64), (2_040, 64), (10_000, 128), (40_000, 256), (203_916, 512), (5_000_000, 1024)]
)
def test_auto_batch_is_the_power_of_two_nearest_the_root_of_the_rows(rows, batch):
    assert auto_batch_size(rows) == batch


def test_lr_scales_with_the_root_of_the_batch_only_when_the_batch_is_chosen():
    auto = resolve(AUTO, AUTO, AUTO, train_rows=203_916)
    assert auto.batch_size == 512 and auto.lr_factor == pytest.approx(math.sqrt(8))
    assert resolve(512, AUTO, AUTO, train_rows=203_916).lr_factor == 1.0  # the user's batch keeps the user's lr
    assert resolve(AUTO, AUTO, AUTO, train_rows=203_916, scale_lr=False).lr_factor == 1.0
    assert resolve(AUTO, AUTO, AUTO, train_rows=2_040).lr_factor == 1.0  # small tables: batch 64, as before


def test_a_minimum_batch_raises_small_tables_only_and_scales_their_lr():
    small = resolve(AUTO, AUTO, AUTO, train_rows=2_040, min_batch=256)
    assert small.batch_size == 256 and small.lr_factor == pytest.approx(2.0)  # √(256/64)
    assert "batch 256 (auto: power of two nearest √2,040 rows, raised to train.auto_batch_min)" in small.describe(
        2_040, lr=2e-3
    )
    big = resolve(AUTO, AUTO, AUTO, train_rows=203_916, min_batch=256)
    assert big.batch_size == 512 and "raised" not in big.describe(203_916, lr=2e-3)  # √rows already chose more
    assert resolve(128, None, 1.0, train_rows=2_040, min_batch=256).batch_size == 128  # the user's batch stands
    assert auto_batch_size(5_000_000, 2048) == 2048
    assert auto_batch_size(100, 128) == 64  # fewer rows than the minimum: 64, as before


@pytest.mark.parametrize("rows, batch", [(2_400, 128), (4_096, 128), (4_097, 256), (5_120, 256), (40_000, 256)])
def test_a_pass_of_over_32_steps_at_the_minimum_doubles_it_once(rows, batch):
    assert auto_batch_size(rows, 128) == batch  # the tabular preset's minimum
    assert auto_batch_size(203_916, 128) == 512  # √rows chose more already: unchanged
    assert auto_batch_size(5_000) == 64  # the default minimum, 64, is not raised: the lessons' batch stands
    line = resolve(AUTO, None, 1.0, train_rows=5_120, min_batch=128).describe(5_120, lr=6e-3)
    assert (
        "batch 256 (auto: power of two nearest √5,120 rows, raised to train.auto_batch_min, doubled: over 32 " in line
    )


def test_auto_batch_min_must_be_a_power_of_two():
    from trainwell.config import load_config
    from trainwell.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train.auto_batch_min = 100 is not allowed: a power of two"):
        load_config(preset="tabular", overrides={"train.auto_batch_min": 100})


def test_step_budget_and_validation_cadence():
    big = resolve(AUTO, AUTO, AUTO, train_rows=203_916)
    assert big.max_steps == STEP_BUDGET and big.validations_per_pass == 5
    assert big.steps_per_validation(203_916) == math.ceil(math.ceil(203_916 / 512) / 5)
    # one validation per pass: 60 passes, or 1,200 steps where the passes are short
    assert resolve(AUTO, AUTO, AUTO, train_rows=40_000).max_steps == 60 * math.ceil(40_000 / 256)
    assert resolve(128, AUTO, AUTO, train_rows=2_771).max_steps == 60 * 22
    assert resolve(64, AUTO, AUTO, train_rows=1_000).max_steps == 1_200  # 16 steps a pass: 75 passes
    small = resolve(64, None, AUTO, train_rows=2_040)
    assert small.max_steps is None and small.validations_per_pass == 1 and small.steps_per_validation(2_040) == 32
    assert validations_per_pass(10_000, 0.25) == 4 and validations_per_pass(10_000, 1) == 1


def test_start_line_names_each_choice_and_its_override():
    line = resolve(AUTO, AUTO, AUTO, train_rows=203_916).describe(203_916, lr=1e-3 * math.sqrt(8))
    assert line.startswith("scale: batch 512 (auto: power of two nearest √203,916 rows)")
    assert "lr 0.00283 (optim.lr 0.001 × √(512/64))" in line and "at most 4,000 steps" in line
    assert "validation every 1/5 pass (80 steps)" in line and "train.val_every" in line


def test_validations_within_a_pass_and_the_step_budget(tmp_path, tiny):
    from trainwell.runner import train

    # 272 training rows at batch 32: 9 steps per pass, validated every 3 steps
    result = train(tiny(train={"val_every": 0.25, "max_epochs": 50, "max_steps": 10}), out=tmp_path / "run")
    assert len(result.history) == 4  # 12 steps ≥ the budget of 10 after the 4th validation
    assert result.stop_reason == "max_epochs" and result.metrics["epochs_run"] == 4
    whole = train(tiny(train={"max_epochs": 2}), out=tmp_path / "whole")
    assert len(whole.history) == 2  # val_every 1: one validation per pass, as before


def test_auto_is_resolved_once_printed_and_saved(tmp_path, tiny, capsys):
    import yaml

    from trainwell.runner import train

    cfg = tiny(train={"batch_size": "auto", "max_steps": "auto", "val_every": "auto", "quiet": False})
    train(cfg, out=tmp_path / "run")
    err = capsys.readouterr().err
    assert "scale: batch 64 (auto: power of two nearest √272 rows), at most 1,200 steps (240 passes)" in err
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]
    assert (saved["batch_size"], saved["max_steps"], saved["val_every"]) == (64, 1_200, 1.0)


def test_auto_numeric_embedding_is_periodic_only_on_tables_validated_within_a_pass():
    from trainwell.config import load_config
    from trainwell.scaling import auto_numeric_embedding, scale_configs

    assert auto_numeric_embedding(AUTO, 203_916) == "periodic"
    assert auto_numeric_embedding(AUTO, 50_000) == "none" and auto_numeric_embedding(AUTO, 10_000) == "none"
    assert auto_numeric_embedding("none", 203_916) == "none"  # the user's choice stands
    big = load_config(preset="tabular")
    assert big.model.numeric_embedding == AUTO
    scaled = scale_configs([big], 203_916)
    assert big.model.numeric_embedding == "periodic" and scaled.numeric_embedding == "periodic"
    assert "numeric embedding periodic (auto: periodic above 50,000 rows)" in scaled.describe(203_916, lr=1e-3)
    small = load_config(preset="tabular")
    assert scale_configs([small], 10_000).numeric_embedding == "none" and small.model.numeric_embedding == "none"
