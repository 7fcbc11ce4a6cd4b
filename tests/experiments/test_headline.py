"""The headline's wording, from synthetic results: a clear difference, an unclear one (with the
seeds that would settle it), a classical model beating every network, and the noise floor."""

from __future__ import annotations

from trainwell.experiments.headline import headline, wrapped
from trainwell.experiments.stats import seeds_needed

from .synthetic import result_from

REF = [3.0, 3.1, 3.2, 3.05]
LINEAR = {"model": "linear regression", "test_mae": 2.5}
BOOSTING = {"model": "gradient boosting", "test_mae": 4.0}
FLOOR = {"model": "generating function (noise floor)", "test_mae": 2.9}


def text(result) -> str:
    return " ".join(headline(result))


def test_a_clear_difference_is_named_with_its_size(tmp_path):
    worse = [x + d for x, d in zip(REF, [0.5, 0.52, 0.47, 0.51])]
    t = text(result_from(tmp_path, {"recipe": REF, "no dropout": worse}))
    assert t.startswith(
        "Best: recipe, with a mean test MAE of 3.088 (lower is better); it beats the runner-up, no dropout, by 0.5"
    )
    assert "more than noise explains" in t
    assert (
        "Against the reference, recipe, distinguishable from noise at 95% (paired by seed): no dropout is worse by 0.5."
        in t
    )
    assert "seeds" not in t.split("no dropout is worse by 0.5.")[1]  # nothing undecided: no seed count


def test_an_unclear_difference_says_how_many_seeds_would_settle_it(tmp_path):
    other = [x + d for x, d in zip(REF, [0.1, -0.08, 0.05, 0.03])]
    result = result_from(tmp_path, {"adam": REF, "adamw": other})
    t = text(result)
    assert "No difference from the reference, adam, is distinguishable from noise at 95%: adamw (+0.025)." in t
    row = next(r for r in result.summary if r["variant"] == "adamw")
    n = seeds_needed(row["diff_vs_reference"], row["diff_std"])
    assert n is not None and n > 4  # more than the 4 seeds run
    assert f"a paired comparison would need roughly {n} seeds (adamw) to show them" in t
    assert "which noise alone could explain" in t  # the runner-up is within noise too


def test_a_tiny_difference_needs_more_seeds_than_is_practical(tmp_path):
    other = [x + d for x, d in zip(REF, [0.1, -0.1, 0.1, -0.099])]
    t = text(result_from(tmp_path, {"a": REF, "b": other}))
    assert "more than 200 (b: too small a difference to matter)" in t


def test_a_linear_model_that_beats_every_network_says_the_network_is_not_worth_it(tmp_path):
    t = text(result_from(tmp_path, {"recipe": REF, "no dropout": [x + 0.3 for x in REF]}, baselines=[LINEAR, BOOSTING]))
    assert (
        "A linear model (linear regression, 2.5) beats every network here by 0.59 (best network: recipe, 3.088, "
        "95% interval 2.952 to 3.223): the network is not worth it on this data." in t
    )


def test_a_baseline_inside_the_interval_is_only_level(tmp_path):
    t = text(result_from(tmp_path, {"recipe": REF}, baselines=[{"model": "linear regression", "test_mae": 3.05}]))
    assert (
        "beats the mean of the network here by 0.038" in t and "at best level with it" in t and "not worth it" not in t
    )


def test_a_network_that_beats_the_baselines_and_the_noise_floor(tmp_path):
    result = result_from(tmp_path, {"recipe": REF, "plain": [x + 0.4 for x in REF]}, baselines=[BOOSTING, FLOOR])
    t = text(result)
    assert (
        "The best network, recipe (3.088), beats the best classical baseline, gradient boosting (4), by 0.91, "
        "beyond its 95% interval; 2 of 2 variants beat it." in t
    )
    assert (
        "The noise floor (the formula that generated the data, without its noise) is 2.9: the best network, "
        "recipe, is 0.19 above it, so at most 0.19 is left to gain." in t
    )


def test_a_single_variant_is_described_not_compared(tmp_path):
    t = text(result_from(tmp_path, {"recipe": REF}))
    assert t == "recipe scores a test MAE of 3.088 over 4 seeds (95% interval 2.952 to 3.223)."


def test_accuracy_is_higher_is_better(tmp_path):
    acc = {"upgraded": [0.91, 0.92, 0.915], "plain": [0.85, 0.86, 0.852]}
    t = text(
        result_from(
            tmp_path,
            acc,
            metric="test_accuracy",
            reference="plain",
            baselines=[{"model": "logistic regression", "test_accuracy": 0.8}],
        )
    )
    assert t.startswith(
        "Best: upgraded, with a mean test accuracy of 0.915 (higher is better); it beats the runner-up, plain, by 0.061"
    )
    assert (
        "upgraded is better by 0.061" in t
        and "beats the best classical baseline, a linear model (logistic regression, 0.8)" in t
    )


def test_unfinished_runs_are_left_out(tmp_path):
    t = text(result_from(tmp_path, {"a": REF, "b": [None] * 4}))
    assert t.startswith("a scores a test MAE of 3.088")  # b has no finished run: nothing to compare with
    assert (
        text(result_from(tmp_path, {"a": [None, None]})) == "No run has finished yet, so there is nothing to compare."
    )
    assert (
        "the reference, a, has no finished run"
        in text(result_from(tmp_path, {"a": [None] * 4, "b": REF, "c": REF})).lower()
    )


def test_wrapped_for_the_terminal():
    lines = wrapped(["word " * 60]).splitlines()
    assert len(lines) > 1 and all(len(line) <= 100 and line.startswith("  ") for line in lines)


def test_an_ablation_speaks_of_ingredients_sorted_by_size(tmp_path):
    values = {
        "full recipe": REF,
        "no clipping": [x + d for x, d in zip(REF, [0.01, -0.01, 0.02, 0.0])],
        "no dropout": [x + d for x, d in zip(REF, [0.2, 0.22, 0.19, 0.21])],
        "no batchnorm": [x + d for x, d in zip(REF, [0.1, -0.05, 0.2, 0.0])],
    }
    t = text(result_from(tmp_path, values, name="ablation"))
    assert (
        "Taking one ingredient away from the full recipe, distinguishable from noise at 95% (paired by seed): "
        "no dropout is worse by 0.21." in t
    )
    assert "Not distinguishable from noise: no batchnorm (+0.063), no clipping (+0.005)." in t  # the larger first
