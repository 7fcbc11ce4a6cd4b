"""Row splits that match scikit-learn's train_test_split(test_size=f, random_state=s) exactly.

Reimplemented (and tested against scikit-learn) so that importing trainwell stays fast.
"""

from __future__ import annotations

import math

import numpy as np


def train_test_indices(n_rows: int, test_fraction: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx) in the order train_test_split returns the rows."""
    n_test = math.ceil(test_fraction * n_rows)
    n_train = n_rows - n_test
    if n_train < 1 or n_test < 1:
        raise ValueError(f"cannot split {n_rows} rows with test fraction {test_fraction}")
    perm = np.random.RandomState(random_state).permutation(n_rows)
    return perm[n_test : n_test + n_train], perm[:n_test]


def three_way(
    n_rows: int, test_fraction: float, val_fraction: float, random_state: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Test first, then validation out of the rest: (train_idx, val_idx, test_idx)."""
    rest, test = train_test_indices(n_rows, test_fraction, random_state)
    tr, va = train_test_indices(len(rest), val_fraction, random_state)
    return rest[tr], rest[va], test
