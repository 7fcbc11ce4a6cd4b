import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from trainwell.metrics import member_aucs


def _probs(k, n, c, seed, ties=False):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(k, n, c, generator=g)
    if ties:  # a coarse grid: many rows share a score
        logits = (logits * 2).round() / 2
    return logits.softmax(-1).double()


@pytest.mark.parametrize("classes,ties", [(2, False), (2, True), (5, False), (5, True)])
def test_auc_of_every_member_matches_scikit_learn_with_ties(classes, ties):
    prob = _probs(3, 200, classes, seed=classes, ties=ties)
    y = torch.randint(0, classes, (200,), generator=torch.Generator().manual_seed(1))
    got = member_aucs(prob, y)
    for k in range(3):
        p = prob[k].numpy()
        want = roc_auc_score(y.numpy(), p[:, 1]) if classes == 2 else roc_auc_score(y.numpy(), p, multi_class="ovr")
        assert got[k] == pytest.approx(want, abs=1e-12)


def test_classes_absent_from_the_labels_are_skipped_and_none_scorable_is_nan():
    prob = _probs(2, 50, 3, seed=0)
    y = torch.tensor([0, 1] * 25)  # class 2 never occurs
    want = np.mean([roc_auc_score((y == c).numpy(), prob[0, :, c].numpy()) for c in (0, 1)])
    assert member_aucs(prob, y)[0] == pytest.approx(want, abs=1e-12)
    assert all(np.isnan(member_aucs(prob[:, :, :2], torch.zeros(50, dtype=torch.long))))
