"""Means, standard deviations and Student-t intervals, checked against values worked by hand."""

from __future__ import annotations

import math

import pytest

from trainwell.experiments.stats import estimate, paired_difference, t_quantile


def test_t_quantiles():
    assert t_quantile(1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile(2) == pytest.approx(4.3027, abs=1e-4)
    assert t_quantile(30) == pytest.approx(2.0423, abs=1e-4)


def test_estimate_by_hand():
    # mean 2.5; squared deviations 2.25+0.25+0.25+2.25 = 5, /3 → std √(5/3); t(3) = 3.18245
    e = estimate([1.0, 2.0, 3.0, 4.0])
    assert e.n == 4 and e.mean == 2.5
    assert e.std == pytest.approx(math.sqrt(5 / 3))
    assert e.half_width == pytest.approx(3.182446 * math.sqrt(5 / 3) / 2, rel=1e-6)
    assert (e.low, e.high) == pytest.approx((2.5 - e.half_width, 2.5 + e.half_width))
    assert e.excludes_zero()  # [0.446, 4.554]


def test_one_value_has_no_interval_and_non_finite_are_dropped():
    e = estimate([3.0, float("nan"), None, float("inf")])
    assert e.n == 1 and e.mean == 3.0 and math.isnan(e.std) and math.isnan(e.half_width)
    assert estimate([]).n == 0 and math.isnan(estimate([]).mean)


def test_paired_difference_uses_shared_seeds_only():
    variant = {0: 1.0, 1: 2.0, 2: 3.5, 5: 100.0}
    reference = {0: 0.5, 1: 1.0, 2: 2.0, 3: 9.0}
    d = paired_difference(variant, reference)  # differences 0.5, 1.0, 1.5
    assert d.n == 3 and d.mean == pytest.approx(1.0) and d.std == pytest.approx(0.5)
    assert d.half_width == pytest.approx(4.302653 * 0.5 / math.sqrt(3), rel=1e-6)
    assert d.low == pytest.approx(1 - 1.242069, abs=1e-5)
    assert d.excludes_zero() is False  # low < 0 < high


def test_pairing_removes_shared_seed_noise():
    # both variants swing with the seed; the paired difference is a constant 0.1
    ref = {0: 3.0, 1: 3.5, 2: 4.0}
    var = {s: v + 0.1 for s, v in ref.items()}
    d = paired_difference(var, ref)
    assert d.mean == pytest.approx(0.1) and d.std == pytest.approx(0.0, abs=1e-12) and d.excludes_zero()
    assert estimate(list(var.values())).half_width > 1.0  # unpaired, the interval is wide
