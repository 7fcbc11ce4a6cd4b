"""curves.svg: one linear epoch axis in every panel, and round ticks between the ends."""

from __future__ import annotations

import math
import re

from trainwell.plots import curves_svg, log_ticks, nice_ticks


def _history(epochs: int) -> list[dict[str, float]]:
    return [
        {
            "epoch": e,
            "train_loss": 1.0 / e,
            "val_loss": 1.2 / e,
            "val_mae": 3.0 + 1.0 / e,
            "lr": 1e-3 * 0.5 ** (e // 10),
        }
        for e in range(1, epochs + 1)
    ]


def test_every_panel_has_the_same_linear_epoch_axis():
    svg = curves_svg(_history(52))
    assert "epoch (log scale)" not in svg  # the value axis may be logarithmic; the epoch axis never is
    assert svg.count(">epoch</text>") == 3
    assert "loss (log scale)" in svg and "learning rate (log scale)" in svg and "val mae</text>" in svg


def test_ticks_between_the_ends():
    svg = curves_svg(_history(52))
    epoch_labels = set(re.findall(r'text-anchor="middle" font-size="10">(\d+)</text>', svg))
    assert {"10", "20", "30", "40", "50"} <= epoch_labels
    assert nice_ticks(1, 52) == [10, 20, 30, 40, 50]
    assert nice_ticks(0.31, 0.87) == [0.4, 0.5, 0.6, 0.7, 0.8]
    assert [round(10**u, 6) for u in log_ticks(math.log10(5e-5), math.log10(2e-2))] == [1e-4, 1e-3, 1e-2]
    inside_a_decade = [round(10**u, 6) for u in log_ticks(math.log10(6.5e-4), math.log10(1e-3))]
    assert len(inside_a_decade) >= 2 and all(6.5e-4 <= v <= 1e-3 for v in inside_a_decade)


def test_an_ensembles_learning_rate_panel_shows_its_members_range():
    history = [{**row, "lr_min": row["lr"] / 2} for row in _history(20)]
    svg = curves_svg(history)
    assert "highest member" in svg and "lowest member" in svg
