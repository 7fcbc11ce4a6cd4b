"""Searching configurations around the default as stacks, halving them, and keeping the best as
an ensemble: `trainwell.search(config, trials)` and `trainwell train --search N`.

space.py (the dials, as data), sampler.py (scrambled Sobol points), halving.py (successive
halving inside a stack), selection.py (Caruana's ensemble selection), plan.py (the plan and its
folder), engine.py (training stacks, continuing from disk), ensemble.py (the saved ensemble),
report.py (which settings mattered) and driver.py (all of it in order).
"""

from __future__ import annotations

from .driver import SearchResult, search
from .plan import SearchConfig

__all__ = ["search", "SearchResult", "SearchConfig"]
