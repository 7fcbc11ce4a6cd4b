"""The scikit-learn estimators: sklearn's own estimator checks, and the places people use them."""

import pickle

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from trainwell.sklearn import TrainwellClassifier, TrainwellRegressor

# small and quick: the checks fit a few hundred times
FAST = {"hidden": (16,), "max_epochs": 15, "batch_size": 32, "lr": 1e-2, "patience": 5, "random_state": 0}

# Checks a stochastic net could fail, each with its reason. None is needed today: with random_state
# set, a fit is bit-for-bit repeatable on the CPU (so check_fit_idempotent, check_pipeline_consistency
# and the not-an-array checks hold), and 15 epochs reach the accuracy and R² the train checks demand.
EXPECTED_FAILURES: dict[str, str] = {}


def expected_failures(estimator):
    return EXPECTED_FAILURES


@parametrize_with_checks(
    [TrainwellRegressor(**FAST), TrainwellClassifier(**FAST)], expected_failed_checks=expected_failures
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def blobs(n=120, seed=0):
    rs = np.random.RandomState(seed)
    x = rs.normal(size=(n, 4))
    return x, np.where(x[:, 0] - x[:, 2] > 0, "up", "down")


def test_pipeline_gridsearch_and_cross_validation():
    x, y = blobs()
    pipe = make_pipeline(StandardScaler(), TrainwellClassifier(**{**FAST, "max_epochs": 8}))
    search = GridSearchCV(
        pipe, {"trainwellclassifier__hidden": [(8,), (16,)], "trainwellclassifier__lr": [1e-2, 3e-2]}, cv=2
    )
    search.fit(x, y)
    assert (
        set(search.best_params_) == {"trainwellclassifier__hidden", "trainwellclassifier__lr"}
        and search.best_score_ > 0.8
    )
    scores = cross_val_score(TrainwellRegressor(**{**FAST, "max_epochs": 8}), x, x[:, 0] * 3 + x[:, 1], cv=3)
    assert len(scores) == 3 and scores.min() > 0.7


def test_dataframes_pickle_clone_and_untouched_global_generators():
    x, y = blobs()
    df = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    state = np.random.get_state()[1].copy()
    clf = TrainwellClassifier(**FAST).fit(df, y)
    assert np.array_equal(np.random.get_state()[1], state)  # NumPy's global generator as it was
    assert (
        list(clf.feature_names_in_) == ["a", "b", "c", "d"]
        and clf.n_features_in_ == 4
        and list(clf.classes_) == ["down", "up"]
    )
    proba = clf.predict_proba(df)
    assert proba.shape == (120, 2) and np.allclose(proba.sum(1), 1) and clf.score(df, y) > 0.85
    again = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(again.predict_proba(df), proba)
    twin = clone(clf).fit(df, y)  # same random_state: the same network
    assert np.array_equal(twin.predict_proba(df), proba)
    assert clf.n_epochs_ == len(clf.history_) <= FAST["max_epochs"]


def test_a_module_of_ones_own():
    from torch import nn

    x, y = blobs()
    reg = TrainwellRegressor(
        **FAST, module=lambda n_in, n_out: nn.Sequential(nn.Linear(n_in, 8), nn.Tanh(), nn.Linear(8, n_out))
    )
    reg.fit(x, x @ np.array([1.0, -2.0, 0.5, 0.0]))
    assert isinstance(reg.model_[1], nn.Tanh) and reg.score(x, x @ np.array([1.0, -2.0, 0.5, 0.0])) > 0.8
