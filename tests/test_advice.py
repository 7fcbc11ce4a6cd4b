"""Advice rules on synthetic histories: each fires on its pattern, with its numbers, and not otherwise."""

from __future__ import annotations

from trainwell import advice as adv
from trainwell import sweep_advice
from trainwell.advice import Context, advise
from trainwell.config import load_config


def rows(train, val, grad=None, clipped=None):
    grad = grad or [1.0] * len(train)
    clipped = clipped or [0.0] * len(train)
    return [
        {
            "epoch": i + 1,
            "train_loss": t,
            "val_loss": v,
            "lr": 1e-3,
            "grad_norm_mean": g,
            "grad_norm_max": g,
            "clipped_fraction": c,
        }
        for i, (t, v, g, c) in enumerate(zip(train, val, grad, clipped))
    ]


HEALTHY = rows([1.0, 0.5, 0.3, 0.25, 0.22, 0.21], [0.9, 0.45, 0.3, 0.26, 0.24, 0.235])


def test_healthy_run_gets_no_advice():
    assert advise(HEALTHY, Context(clip_norm=1.0, max_epochs=6)) == []


def test_growing_gap_says_regularise_more():
    h = rows([1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.03], [0.9, 0.5, 0.35, 0.3, 0.36, 0.45, 0.5])
    a = adv.growing_gap(h)
    assert a is not None and a.kind == adv.REGULARISE_MORE
    assert a.numbers["best_epoch"] == 4
    assert a.numbers["gap_at_best"] == 0.3 - 0.2 and abs(a.numbers["gap_at_end"] - 0.47) < 1e-12
    assert "0.3 (epoch 4)" in a.message and "regularise more" in a.message
    assert adv.growing_gap(HEALTHY) is None


def test_training_loss_that_will_not_fall_says_regularise_less():
    h = rows([1.0, 0.98, 0.97, 0.97, 0.96, 0.96], [0.99, 0.98, 0.97, 0.97, 0.97, 0.96])
    a = adv.stalled_training(h)
    assert a is not None and a.kind == adv.REGULARISE_LESS and "fell only 4.0%" in a.message


def test_training_loss_far_above_validation_says_regularise_less():
    h = rows([1.0, 0.6, 0.55, 0.52, 0.51, 0.5], [0.5, 0.3, 0.25, 0.22, 0.21, 0.2])
    a = adv.stalled_training(h)
    assert a is not None and a.numbers["ratio"] == 2.5 and "2.5×" in a.message
    assert (
        adv.stalled_training(rows([1.0, 0.6, 0.5, 0.4, 0.35, 0.32], [0.5, 0.3, 0.25, 0.22, 0.21, 0.2])) is None
    )  # 1.6×: Dropout's usual gap


def test_label_smoothing_lifting_the_training_loss_is_not_called_regularisation():
    # smoothing 0.1 over 10 classes keeps the training loss near 0.5 while the unsmoothed validation loss is 0.12
    h = rows([1.1, 0.6, 0.55, 0.52, 0.51, 0.5], [0.3, 0.18, 0.15, 0.13, 0.12, 0.12])
    assert adv.stalled_training(h) is not None
    assert adv.stalled_training(h, adv.Context(label_smoothing=0.1)) is None
    cfg = {"train": {"monitor": "val_loss", "label_smoothing": 0.1}}
    assert adv.context_from_config(cfg, None).label_smoothing == 0.1


def test_gradient_norm_far_above_clip_says_lr_too_high():
    h = rows([1.0] * 6, [1.0] * 6, grad=[30, 25, 12, 40, 22, 18], clipped=[1.0] * 6)
    a = adv.clipping_too_often(h, Context(clip_norm=1.0))
    assert a is not None and a.kind == adv.LR_TOO_HIGH and a.numbers["median_grad_norm"] == 23.5
    assert "24× the clip threshold 1" in a.message and "100% of steps clipped" in a.message
    assert adv.clipping_too_often(h, Context(clip_norm=5.0)) is None  # 23.5 < 10 × 5
    assert adv.clipping_too_often(h, Context(clip_norm=None)) is None  # no clipping: nothing to compare


def test_early_stopping_saved_epochs():
    val = [1.0, 0.5, 0.4] + [0.45] * 20
    h = rows([1.0] * 23, val)
    stopped = adv.early_stopping_value(
        h, Context(max_epochs=100, early_stopping=True, patience=20, stop_reason="early_stop")
    )
    assert stopped is not None and stopped.numbers == {
        "best_epoch": 3,
        "epochs_run": 23,
        "epochs_saved": 77,
        "stopped": 1.0,
    }
    ran_out = adv.early_stopping_value(h, Context(max_epochs=23, patience=5, stop_reason="max_epochs"))
    assert ran_out is not None and ran_out.numbers["epochs_saved"] == 15 and "would have saved 15" in ran_out.message


def test_not_finite_and_short_histories():
    out = advise(rows([1.0], [1.0]), Context(stop_reason="not_finite"), "loss became non-finite at epoch 1, step 3")
    assert [a.kind for a in out] == [adv.NOT_FINITE] and "epoch 1, step 3" in out[0].message
    assert advise([], Context()) == []
    nan_rows = rows([1.0, float("nan")] * 3, [1.0, 1.0] * 3)
    assert all(a.kind != adv.REGULARISE_LESS for a in advise(nan_rows))  # non-finite rows are skipped


def test_summary_counts_runs_per_kind():
    a = adv.Advice(adv.EARLY_STOPPING, "m1", {"epochs_saved": 10})
    b = adv.Advice(adv.EARLY_STOPPING, "m2", {"epochs_saved": 30})
    lines = adv.summarise([[a], [b], []])
    assert lines == ["early stopping: 2 of 3 runs (median 20 epochs saved); e.g. m1"]


def test_context_from_config():
    cfg = load_config(preset="delivery-production", overrides={"train.clip_norm": 1.0})
    ctx = adv.context_from_config(cfg, "early_stop")
    assert ctx == Context(clip_norm=1.0, max_epochs=200, early_stopping=True, patience=20, stop_reason="early_stop")


# ---- consistency: the rules read together ------------------------------------------------------


def test_one_run_never_gets_opposite_advice():
    # training loss 4.2× validation loss while validation rose from its best: regularisation holds training back
    h = rows([10, 8, 6, 5, 4.5, 4.2], [0.9, 0.8, 0.7, 0.9, 1.0, 1.0])
    assert [a.kind for a in advise(h)] == [adv.REGULARISE_LESS]
    assert "4.2× the validation loss" in advise(h)[0].message and "rule: over 2×" in advise(h)[0].message
    more = adv.Advice(adv.REGULARISE_MORE, "more")
    less = adv.Advice(adv.REGULARISE_LESS, "less")
    assert adv.reconcile([more, less]) == [less]


def test_a_learning_rate_too_high_is_not_told_to_rise():
    h = rows(
        [1.0, 0.98, 0.97, 0.97, 0.96, 0.96], [0.99, 0.98, 0.97, 0.97, 0.97, 0.96], grad=[30] * 6, clipped=[1.0] * 6
    )
    out = {a.kind: a.message for a in advise(h, Context(clip_norm=1.0))}
    assert set(out) == {adv.REGULARISE_LESS, adv.LR_TOO_HIGH}
    assert (
        "raise the learning rate" not in out[adv.REGULARISE_LESS]
        and "regularise less (rule: training loss fell by less than 10%)" in out[adv.REGULARISE_LESS]
    )


def test_each_message_states_its_rule():
    overfit = rows([1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.03], [0.9, 0.5, 0.35, 0.3, 0.36, 0.45, 0.5])
    assert (
        "(rule: the gap grew by over 10% of the best validation loss and validation loss ended over 5% above its best)"
        in adv.growing_gap(overfit).message
    )
    h = rows([1.0] * 6, [1.0] * 6, grad=[30] * 6)
    assert "(rule: median over 10× the threshold)" in adv.clipping_too_often(h, Context(clip_norm=1.0)).message


def test_plurals():
    h = rows([1.0] * 23, [1.0, 0.5, 0.4] + [0.45] * 20)
    one = adv.early_stopping_value(
        h, Context(max_epochs=24, early_stopping=True, patience=20, stop_reason="early_stop")
    )
    assert one.message.endswith("saved 1 epoch") and "1 epochs" not in one.message
    lines = adv.summarise([[adv.Advice(adv.EARLY_STOPPING, "m", {"epochs_saved": 1})]])
    assert lines == ["early stopping: 1 of 1 run (median 1 epoch saved); e.g. m"]
    assert adv.plural(0, "epoch") == "0 epochs" and adv.plural(1.5, "epoch") == "1.5 epochs"


def _sweep(dropouts, extra=None):
    configs = {f"d{d}": {"model.dropout": repr(d), "optim.lr": "0.001"} for d in dropouts}
    configs.update(extra or {})
    return configs


MORE = adv.Advice(adv.REGULARISE_MORE, "validation loss rose: regularise more", {})
LESS = adv.Advice(adv.REGULARISE_LESS, "regularise less", {})


def test_the_most_regularised_variant_is_not_told_to_regularise_more_when_less_did_better():
    configs = _sweep([0.0, 0.1, 0.3, 0.7])
    means = {"d0.0": 3.6, "d0.1": 3.4, "d0.3": 3.5, "d0.7": 3.9}
    per_variant = {"d0.0": [[]], "d0.1": [[]], "d0.3": [[MORE]], "d0.7": [[MORE], [MORE]]}
    out = sweep_advice.check_sweep(per_variant, configs, means, lower_better=True)
    assert out["d0.3"][0][0].kind == adv.KEEP  # 0.7, further that way, did worse
    (verdict,), _ = out["d0.7"]
    assert verdict.kind == adv.REGULARISE_LESS
    assert (
        "dropout 0.7 is already the strongest here and d0.1 (dropout 0.1) scored better (3.4 against 3.9): "
        "regularise less, not more" in verdict.message
    )
    assert per_variant["d0.7"] == [[MORE], [MORE]]  # the input is not changed


def test_a_variant_whose_stronger_neighbours_all_did_worse_is_told_to_keep_its_setting():
    configs = _sweep([0.0, 0.3, 0.5, 0.7])
    means = {"d0.0": 4.2, "d0.3": 3.8, "d0.5": 3.85, "d0.7": 4.9}
    out = sweep_advice.check_sweep(
        {"d0.0": [[MORE]], "d0.3": [[MORE]], "d0.5": [[]], "d0.7": [[]]}, configs, means, lower_better=True
    )
    assert out["d0.0"] == [[MORE]]  # 0.3 did better: the sweep agrees
    ((keep,),) = out["d0.3"]
    assert (
        keep.kind == adv.KEEP
        and "every variant with more dropout scored worse (dropout 0.5 (3.85), 0.7 (4.9) against 3.8 here): keep "
        "dropout 0.3"
        in keep.message
    )


def test_the_least_regularised_variant_is_not_told_to_regularise_less_when_more_did_better():
    configs = _sweep([0.0, 0.3])
    out = sweep_advice.check_sweep(
        {"d0.0": [[LESS]], "d0.3": [[]]}, configs, {"d0.0": 0.8, "d0.3": 0.9}, lower_better=False
    )
    assert out["d0.0"][0][0].kind == adv.REGULARISE_MORE and "regularise more, not less" in out["d0.0"][0][0].message


def test_variants_that_differ_in_more_than_regularisation_are_no_sweep():
    configs = {"a": {"model.dropout": "0.7", "optim.lr": "0.001"}, "b": {"model.dropout": "0.1", "optim.lr": "0.01"}}
    per_variant = {"a": [[MORE]], "b": [[]]}
    assert sweep_advice.check_sweep(per_variant, configs, {"a": 3.9, "b": 3.4}, lower_better=True) == per_variant


def test_a_variant_gets_at_most_one_terminal_line():
    stop = adv.Advice(adv.EARLY_STOPPING, "m", {"epochs_saved": 3})
    assert (
        adv.brief([[stop], [stop, LESS], []]) == "early stopping would save 3 epochs (2 of 3), regularise less (1 of 3)"
    )
    assert adv.brief([[MORE], [LESS]]) == "regularisation unclear (more in 1 of 2, less in 1 of 2)"
    assert adv.brief([[], []]) == ""
    lines = adv.summarise([[MORE], [LESS], [LESS]])
    assert lines[0].startswith("regularisation: the runs disagree (more in 1, less in 2 of 3 runs)")


def test_flat_config_leaves_out_what_runs_of_a_variant_differ_in():
    cfg = load_config(preset="delivery-production")
    flat = sweep_advice.flat_config(cfg)
    assert flat["model.dropout"] == "0.2" and "train.seed" not in flat and "optim.lr" in flat


def test_the_best_epoch_follows_the_runs_monitor():
    """Early-stopping advice names the epoch the run's own rule picked (metrics.json's best_epoch)."""
    history = [
        {"epoch": e, "train_loss": 1.0 / e, "val_loss": 0.5 + abs(e - 3) * 0.01, "val_accuracy": 0.5 + 0.01 * min(e, 9)}
        for e in range(1, 31)
    ]
    by_loss = adv.early_stopping_value(history, adv.Context(patience=5))
    assert by_loss is not None and by_loss.message.startswith("best epoch 3 of 30")
    ctx = adv.context_from_config({"train": {"monitor": "val_accuracy", "mode": "auto", "patience": 5}}, "max_epochs")
    assert (ctx.monitor, ctx.mode) == ("val_accuracy", "max")
    by_accuracy = adv.early_stopping_value(history, ctx)
    assert by_accuracy is not None and by_accuracy.message.startswith("best epoch 9 of 30")
    assert "did not improve val_accuracy" in by_accuracy.message
