"""data/target.py: notes about the target read by the start lines."""

import numpy as np

from trainwell.data.target import balance_notes


def test_a_dominant_class_is_named_with_what_judges_the_model_and_what_balances_the_decision():
    y = np.array([0] * 95 + [1] * 5)
    (note,) = balance_notes(y, ["good", "bad"])
    assert "'good' is 95.0% of the training rows" in note
    assert "balanced accuracy or ROC AUC" in note and "balances the label decision" in note
    assert balance_notes(np.array([0] * 60 + [1] * 40), ["good", "bad"]) == []
