"""The search's ensemble choice: scored as the user's probabilities are (at the fitted temperature), and
kept at the default's ensemble when the additions do not hold up on rows they were not chosen on."""

import pytest
import torch

from trainwell import calibration
from trainwell.tune.selection import bagged_caruana, caruana, log_losses, temperature_grid


def test_temperature_grid_spans_what_calibration_may_fit():
    smoothed, plain = temperature_grid(True), temperature_grid(False)
    assert smoothed[0] == pytest.approx(calibration.SMOOTHED_T_MIN) and 1.0 in smoothed
    assert plain[0] == 1.0 and plain[-1] == pytest.approx(calibration.T_RANGE[1])
    assert list(smoothed) == sorted(smoothed)


def test_log_losses_are_at_the_best_temperature_after_the_prior_shift():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(4, 50, 3, generator=g, dtype=torch.float64) * 2, dim=-1)
    y = torch.randint(0, 3, (50,), generator=g)
    cal = {"temperature": 1.0, "prior_shift": [0.3, 0.0, -0.2]}
    temps = (0.5, 1.0, 2.0)
    got = log_losses(probs, y, cal, temps)
    for m in range(4):
        each = [
            torch.nn.functional.nll_loss(calibration.apply(probs[m].log(), {**cal, "temperature": t}), y).item()
            for t in temps
        ]
        assert got[m].item() == pytest.approx(min(each), rel=1e-9)
    assert log_losses(probs, y, cal, None)[0].item() == pytest.approx(
        torch.nn.functional.nll_loss(calibration.apply(probs[0].log(), cal), y).item(), rel=1e-9
    )


def unsure_and_sharp(rows: int = 600) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Member 0 ranks the rows well but is unsure (as a network taught with label smoothing);
    member 1 is sure of itself and ranks them worse."""
    g = torch.Generator().manual_seed(1)
    signal = torch.randn(rows, generator=g) * 3
    y = (torch.rand(rows, generator=g) < torch.sigmoid(signal)).long()
    unsure = torch.stack([-signal, signal], dim=1) / 6
    sharp_signal = signal + torch.randn(rows, generator=g) * 2
    sharp = torch.stack([-sharp_signal, sharp_signal], dim=1) / 2
    return [unsure, sharp], y


def test_the_choice_weighs_the_ensemble_at_its_fitted_temperature_not_the_sharpest_member():
    outs, y = unsure_and_sharp()
    at_one = caruana("classification", outs, y, "loss", "min", start=[0])
    assert 1 in at_one.picks  # at temperature 1 the sure member lowers the unsure one's log loss
    fitted = caruana("classification", outs, y, "loss", "min", start=[0], temperatures=temperature_grid(True))
    assert set(fitted.picks) == {0}  # once a temperature sharpens it, the better ranking alone scores best


def test_additions_that_only_fit_the_rows_they_were_chosen_on_are_dropped():
    g = torch.Generator().manual_seed(2)
    y = torch.randint(0, 2, (300,), generator=g)  # labels no member can predict
    outs = [torch.zeros(300, 2)] + [torch.randn(300, 2, generator=g) for _ in range(12)]
    assert len(caruana("classification", outs, y, "loss", "min", start=[0]).picks) > 1  # chance fits all rows a bit
    chosen = bagged_caruana("classification", outs, y, "loss", "min", start=[0])
    assert chosen.held_out_gain is not None and chosen.held_out_gain < 0
    assert chosen.picks == [0]


def test_additions_that_hold_up_on_held_out_rows_are_kept():
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 2, (80,), generator=g)
    truth = torch.nn.functional.one_hot(y, 2).float() * 2 - 1
    outs = [truth + torch.randn(80, 2, generator=g) * 2.0, truth + torch.randn(80, 2, generator=g) * 0.7]
    chosen = bagged_caruana("classification", outs, y, "loss", "min", start=[0])
    assert chosen.held_out_gain > 0 and 1 in chosen.picks
    regression_y = torch.randn(80, 1, generator=g)
    preds = [torch.zeros(80, 1), regression_y + torch.randn(80, 1, generator=g) * 0.3]
    kept = bagged_caruana("regression", preds, regression_y, "loss", "min", start=[0])
    assert kept.held_out_gain > 0 and 1 in kept.picks
    noise = [torch.zeros(80, 1)] + [torch.randn(80, 1, generator=g) * 0.5 for _ in range(8)]
    assert bagged_caruana("regression", noise, regression_y, "loss", "min", start=[0]).picks == [0]


def test_the_greedy_step_at_the_temperatures_around_the_best_nearly_matches_scoring_at_all_of_them():
    from trainwell.tune.selection import loss_if_added, loss_scorer

    g = torch.Generator().manual_seed(4)
    outs = [torch.randn(120, 4, generator=g) * 3 for _ in range(8)]
    y = torch.randint(0, 4, (120,), generator=g)
    cal, temps = {"temperature": 1.0, "prior_shift": [0.1, 0.0, -0.3, 0.2]}, temperature_grid(True)
    counts = {0: 2, 3: 2, 5: 1}
    step = loss_if_added("classification", outs, y, cal, temps)(counts)
    whole = loss_scorer("classification", outs, y, cal, temps)
    exact = [whole({**counts, i: counts.get(i, 0) + 1}) for i in range(8)]
    # fewer temperatures never score better, and the addition chosen is the same
    assert all(a >= b - 1e-6 for a, b in zip(step, exact)) and step == pytest.approx(exact, rel=5e-3)
    assert min(range(8), key=step.__getitem__) == min(range(8), key=exact.__getitem__)
