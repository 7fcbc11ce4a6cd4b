"""compose: the one rule for data across layers — a data path means that file, whatever built-in
data a lower layer named; a built-in data set that reads no file beside a path is refused."""

from __future__ import annotations

import pytest

from trainwell.compose import compose
from trainwell.errors import ConfigError


@pytest.mark.parametrize(
    "layers",
    [
        {"preset": "tabular", "sets": {"data.path": "churn.csv", "data.target": "churn"}},
        {"preset": "delivery-production", "sections": {"data": {"path": "churn.csv", "target": "churn"}}},
        {"sections": {"data": {"path": "churn.csv", "target": "churn"}}},  # the default data is delivery
        {"base": {"data": {"name": "delivery", "n": 1000}}, "sets": {"data.path": "churn.csv", "data.target": "churn"}},
    ],
)
def test_a_data_path_means_that_file_whatever_the_presets_data(layers):
    cfg = compose(**layers)
    assert (cfg.data.name, cfg.data.path, cfg.data.target) == ("csv", "churn.csv", "churn")
    assert cfg.data.n == 3000  # the generator's fields are gone (their defaults remain, unread)


def test_a_folder_for_a_data_set_that_reads_one_keeps_its_name():
    cfg = compose(base={"data": {"name": "cifar10", "path": "old"}}, sets={"data.path": "cifar-10"})
    assert (cfg.data.name, cfg.data.path) == ("cifar10", "cifar-10")


@pytest.mark.parametrize(
    "layers",
    [
        {"sections": {"data": {"name": "delivery", "path": "churn.csv"}}},
        {"preset": "tabular", "sets": {"data.path": "churn.csv", "data.target": "y", "data.name": "digits"}},
        # a variant naming the built-in data over a base's file
        {"sections": {"data": {"path": "churn.csv", "target": "y"}}, "sets": {"data.name": "delivery"}},
    ],
)
def test_a_built_in_data_set_beside_a_path_is_refused(layers):
    with pytest.raises(ConfigError, match=r"data.path = 'churn.csv' is not allowed: null with data.name"):
        compose(**layers)
