"""YAML with a budget: alias bombs, self-reference, depth and size are refused before anything walks them."""

import time

import pytest

from trainwell import safeyaml
from trainwell.config import parse_override
from trainwell.errors import ConfigError

LAUGHS = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
)


def test_ordinary_documents_load_like_safe_load():
    assert safeyaml.load("x: &x {a: 1}\ny: {<<: *x, b: [1, 2]}\n", "doc") == {"x": {"a": 1}, "y": {"a": 1, "b": [1, 2]}}
    assert safeyaml.load("", "doc") is None


def test_billion_laughs_is_refused_at_once():
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="expands to more than 1,000,000 characters"):
        safeyaml.load(LAUGHS, "doc")
    assert time.perf_counter() - started < 5  # linear in the distinct nodes, not in 9**9


def test_expanded_size_counts_every_use_of_an_alias():
    node = __import__("yaml").compose("a: &a [xx, yy]\nb: [*a, *a]\n")
    # a: 2 + (3 + 3) = 8; b: 2 + 8 + 8 = 18; keys "a", "b": 2 each; the mapping: 2
    assert safeyaml.expanded_size(node, "doc") == 2 + 2 + 8 + 2 + 18


@pytest.mark.parametrize(
    "text, words",
    [
        ("a: &a [*a]", "contains itself"),
        ("[" * 200 + "]" * 200, "levels deep"),
        ("# " + "x" * 2_000_000, "characters long"),
    ],
)
def test_hostile_shapes_are_refused(text, words):
    with pytest.raises(ConfigError, match=words):
        safeyaml.load(text, "doc")


def test_set_values_go_through_the_budget():
    with pytest.raises(ConfigError, match="--set model.hidden expands"):
        parse_override(
            "model.hidden=[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c "
            "[*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], "
            "&d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]]"
        )
    assert parse_override("train.max_epochs=5") == ("train.max_epochs", 5)
