"""Drawing configurations: scrambled Sobol points (scipy.stats.qmc) mapped onto the dials.

A quasi-random sequence covers the space more evenly than independent draws at the same
count, which matters at the 16-64 trials a search affords; scipy keeps it. The first
configuration is always the default itself, so the search never has less to choose from.
"""

from __future__ import annotations

import warnings
from typing import Any

from .space import Dial


def draw(dials: list[Dial], n: int, seed: int) -> list[dict[str, Any]]:
    """n - 1 points of a scrambled Sobol sequence (seeded) as dial values, in drawing order."""
    if n <= 1:
        return []
    from scipy.stats import qmc

    sampler = qmc.Sobol(d=len(dials), scramble=True, seed=seed)
    with warnings.catch_warnings():  # Sobol's balance is best at powers of two; any count is still valid
        warnings.simplefilter("ignore", UserWarning)
        points = sampler.random(n - 1)
    return [{dial.name: dial.value(float(u)) for dial, u in zip(dials, row)} for row in points]
