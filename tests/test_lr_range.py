"""The range test's arithmetic on synthetic loss curves (no training)."""

import math

import pytest

from trainwell import lr_range as R


def curve(lr):
    """A falling stretch steepest at lr 1e-3, a floor, and a blow-up past 1e-1."""
    x = math.log10(lr)
    return 1.5 - math.tanh(1.5 * (x + 3)) + math.exp(3 * (x + 1))


def test_schedule_is_evenly_spaced_on_the_log_axis():
    lrs = R.lr_schedule(1e-6, 1.0, 7)
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1.0)
    assert [math.log10(b / a) for a, b in zip(lrs, lrs[1:])] == pytest.approx([1.0] * 6)
    with pytest.raises(ValueError):
        R.lr_schedule(1.0, 0.1, 10)


def test_smoothing_is_bias_corrected():
    assert R.smooth([5.0, 5.0, 5.0]) == pytest.approx([5.0, 5.0, 5.0])  # no pull towards 0 at the start
    noisy = [1 + (-1) ** i * 0.5 for i in range(200)]
    assert max(abs(v - 1) for v in R.smooth(noisy)[100:]) < 0.02


def test_suggestions_on_a_known_curve():
    lrs = R.lr_schedule(1e-7, 10, 200)
    losses = [curve(lr) for lr in lrs]
    s = R.suggest(lrs, losses)
    assert s["steepest"] == pytest.approx(1e-3, rel=0.15)
    lowest = lrs[losses.index(min(losses))]
    assert s["minimum/10"] == pytest.approx(lowest / 10) and 1e-3 < lowest < 1e-1
    # the valley is the whole falling stretch from the start to the minimum: its middle on the log axis
    assert math.log10(s["valley"]) == pytest.approx((math.log10(1e-7) + math.log10(lowest)) / 2, abs=0.1)
    assert R.spread_decades({"a": 1e-3, "b": 1e-2}) == pytest.approx(1.0)


def test_the_test_stops_once_the_loss_passes_four_times_its_best():
    test = R.run_range_test(curve, 1e-7, 100.0, 150)
    assert test.stop_reason.startswith("stopped: loss above 4x")
    assert test.smoothed[-1] > 4 * min(test.smoothed[:-1]) and all(
        v <= 4 * min(test.smoothed[: i + 1]) for i, v in enumerate(test.smoothed[:-1])
    )
    assert len(test.lrs) < 150 and test.lrs[-1] < 100
    # the smoothed curve lags the raw one by about 20 steps: the steepest point moves right, by under a decade
    assert 1e-3 < test.suggestions["steepest"] < 1e-2


def test_non_finite_losses_stop_the_test():
    test = R.run_range_test(lambda lr: math.nan if lr > 1e-2 else 1.0 - lr, 1e-5, 1.0, 30)
    assert test.stop_reason == "stopped: loss not finite" and all(lr <= 1.1e-2 for lr in test.lrs[:-1])


def test_summary_names_every_rule_and_the_spread():
    test = R.run_range_test(curve, 1e-7, 100.0, 150)
    text = "\n".join(test.summary())
    assert all(rule in text for rule in R.RULES) and "decades" in text and "(used by 'auto')" in text
