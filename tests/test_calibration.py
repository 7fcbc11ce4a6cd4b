"""Calibrated probabilities: class weights no longer distort them, a temperature fitted on the
validation rows is saved in best.pt, and metrics.json, evaluate and predict agree."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from trainwell import calibration
from trainwell.checkpoint import BEST, load_checkpoint
from trainwell.config import load_config
from trainwell.data.tabular import features_for_prediction, read_table
from trainwell.errors import CheckpointError
from trainwell.inference import Ensemble, evaluate_run, load_run, predict_run
from trainwell.runner import train


def minority_table(n: int, seed: int) -> pd.DataFrame:
    """Two numbers and a text column; 'bad' on 5% of the rows, more likely at high risk."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(0, 1, n)
    other = rng.normal(0, 1, n)
    region = rng.choice(["a", "b", "c"], n)
    logit = 1.6 * risk + 0.5 * (region == "c") + rng.logistic(0, 1, n)
    label = np.where(logit >= np.quantile(logit, 0.95), "bad", "good")
    return pd.DataFrame({"risk": risk.round(3), "other": other.round(3), "region": region, "status": label})


def test_temperature_never_sharpens():
    # an under-confident model on rows it already gets right: sharpening would fit these rows, not new ones
    torch.manual_seed(0)
    true_logits = torch.randn(500, 3) * 1.5
    y = true_logits.argmax(1)
    cal = calibration.fit(torch.log_softmax(true_logits / 3, -1), y, None)
    assert cal["temperature"] == 1.0


def test_temperature_sharpens_a_model_trained_with_label_smoothing():
    # label smoothing teaches the network to stay unsure: only then may the temperature fall below 1, and a
    # saved temperature below 1 is read back
    torch.manual_seed(0)
    true_logits = torch.randn(4000, 3) * 1.5
    y = torch.distributions.Categorical(logits=true_logits).sample()
    cal = calibration.fit(torch.log_softmax(true_logits / 2, -1), y, None, smoothed=True)  # half as confident
    assert cal["temperature"] == pytest.approx(0.5, rel=0.12)
    assert calibration.fit(torch.log_softmax(true_logits / 2, -1), y, None)["temperature"] == 1.0
    assert calibration.problem(cal, 3) is None


def test_temperature_recovers_an_overconfident_model():
    torch.manual_seed(0)
    true_logits = torch.randn(4000, 3) * 1.5
    y = torch.distributions.Categorical(logits=true_logits).sample()
    cal = calibration.fit(torch.log_softmax(3 * true_logits, -1), y, None)  # three times too confident
    assert cal["temperature"] == pytest.approx(3.0, rel=0.12)
    assert cal["decision_shift"] == [0.0, 0.0, 0.0]


def test_prior_correction_undoes_class_weights():
    # a weighted network's probabilities q ∝ w·p: the correction must give p back
    p = torch.tensor([[0.95, 0.05], [0.6, 0.4]])
    w = torch.tensor([0.5, 10.0])
    q = torch.log(p * w / (p * w).sum(1, keepdim=True))
    cal = {"temperature": 1.0, "prior_shift": (-w.log()).tolist(), "decision_shift": w.log().tolist()}
    assert torch.allclose(calibration.apply(q, cal).exp(), p, atol=1e-6)
    # the decision still weighs the classes: the 5% row goes to class 1 once weighted (0.05·10 > 0.95·0.5)
    assert calibration.decision_scores(calibration.apply(q, cal), cal).argmax(1).tolist() == [1, 1]


def test_stored_calibration_is_checked():
    assert calibration.problem({"temperature": 1.0, "prior_shift": [0, 0], "decision_shift": [0, 0]}, 2) is None
    assert "temperature" in calibration.problem({"temperature": -1, "prior_shift": [0], "decision_shift": [0]}, 1)
    assert "prior_shift" in calibration.problem({"temperature": 1, "prior_shift": [0], "decision_shift": [0, 0]}, 2)


def minority_run(folder, **overrides):
    """The tabular preset, briefly, on a 5%-minority table (3,000 training rows, 2,000 test rows)."""
    minority_table(3000, 0).to_csv(folder / "train.csv", index=False)
    minority_table(2000, 1).to_csv(folder / "test.csv", index=False)
    settings = {
        "data.name": "csv",
        "data.path": str(folder / "train.csv"),
        "data.test_path": str(folder / "test.csv"),
        "data.target": "status",
        "train.members": 2,
        "train.max_epochs": 12,
        "train.quiet": True,
        "model.hidden": [32],
    }
    return train(load_config(preset="tabular", overrides=settings | overrides), out=folder / "run"), folder


@pytest.fixture(scope="module")
def weighted_run(tmp_path_factory):
    # the weighting that used to distort the probabilities
    return minority_run(tmp_path_factory.mktemp("minority"), **{"train.class_weights": "balanced"})


def test_minority_probability_matches_the_true_rate(weighted_run):
    result, folder = weighted_run
    predicted = predict_run(result.run_dir, folder / "test.csv")
    truth = (pd.read_csv(folder / "test.csv")["status"] == "bad").mean()
    assert abs(predicted["probability_bad"].mean() - truth) < 0.015
    # the network's own outputs, uncorrected: the balanced weights push the 5% class far above its rate
    _, model, spec = load_run(result.run_dir)
    x = features_for_prediction(read_table(folder / "test.csv", None, "test file"), spec, "test file")
    with torch.no_grad():
        raw = torch.softmax(model(x), -1)[:, spec["classes"].index("bad")].mean().item()
    assert raw > truth + 0.1


def test_metrics_evaluate_and_predict_agree(weighted_run):
    result, folder = weighted_run
    spec = load_checkpoint(result.run_dir / "best.pt", BEST)["spec"]
    assert spec["classes"] == ["bad", "good"] and spec["calibration"]["prior_shift"][0] < 0
    again = evaluate_run(result.run_dir)
    assert again["test_log_loss"] == pytest.approx(result.metrics["test_log_loss"], rel=1e-5)
    predicted = predict_run(result.run_dir, folder / "test.csv")
    y = (pd.read_csv(folder / "test.csv")["status"] == "bad").to_numpy()
    p = predicted["probability_bad"].clip(1e-12, 1 - 1e-12)
    log_loss = -np.mean(np.where(y, np.log(p), np.log(1 - p)))
    assert log_loss == pytest.approx(result.metrics["test_log_loss"], rel=1e-4)
    # labels follow the balanced decision: recall of the 5% class far above what 'most probable' gives
    recall = (predicted["predicted_status"][y] == "bad").mean()
    assert recall == pytest.approx(result.metrics["test_balanced_accuracy"] * 2 - _specificity(predicted, y), abs=1e-9)
    assert recall > 0.5


def _specificity(predicted: pd.DataFrame, y: np.ndarray) -> float:
    return float((predicted["predicted_status"][~y] == "good").mean())


def test_tampered_calibration_is_refused(weighted_run, tmp_path):
    result, _ = weighted_run
    copy = shutil.copytree(result.run_dir, tmp_path / "copy")
    path = copy / "best.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["spec"]["calibration"]["temperature"] = math.inf
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="calibration temperature"):
        load_run(copy)


def test_start_line_says_what_the_monitor_optimises_and_how_labels_are_decided():
    weighted = calibration.describe(True, "val_loss")
    assert "class-weighted log loss" in weighted and "balanced" in weighted and "prior removed" in weighted
    plain = calibration.describe(False, "val_roc_auc")
    assert "roc auc" in plain and "most probable class" in plain and "prior" not in plain


def test_members_spread_is_of_the_corrected_probabilities_of_the_predicted_label(weighted_run):
    result, folder = weighted_run
    predicted = predict_run(result.run_dir, folder / "test.csv")
    _, model, spec = load_run(result.run_dir)
    x = features_for_prediction(read_table(folder / "test.csv", None, "test file"), spec, "test file")
    with torch.no_grad():
        outs = model.member_outputs(x)  # (members, rows, classes)
    label = torch.tensor([spec["classes"].index(c) for c in predicted["predicted_status"]])
    rows = torch.arange(len(label))
    corrected = calibration.apply(outs, spec["calibration"]).exp()[:, rows, label].std(0).numpy()
    raw = torch.softmax(outs, -1)[:, rows, label].std(0).numpy()
    assert np.allclose(predicted["members_std_probability"], corrected, atol=1e-6)
    assert not np.allclose(predicted["members_std_probability"], raw, atol=1e-3)  # the weights' prior is undone


def test_predict_runs_each_member_once_per_chunk(weighted_run, monkeypatch):
    """The prediction and the members' spread come from one pass of the members, not two."""
    result, folder = weighted_run
    calls = []
    real = Ensemble.member_outputs
    monkeypatch.setattr(Ensemble, "member_outputs", lambda self, x: calls.append(len(x)) or real(self, x))
    predicted = predict_run(result.run_dir, folder / "test.csv")
    assert calls == [len(predicted)]  # 2,000 rows: one chunk, one pass
    monkeypatch.undo()
    _, model, spec = load_run(result.run_dir)
    x = features_for_prediction(read_table(folder / "test.csv", None, "test file"), spec, "test file")
    with torch.no_grad():
        expected = calibration.apply(model(x), spec["calibration"]).exp()[:, 1].numpy()
    assert np.allclose(predicted[f"probability_{spec['classes'][1]}"], expected, atol=1e-6)


def test_a_run_with_label_smoothing_saves_a_sharpening_temperature(tmp_path):
    # a separable table: trained to answer at most 1 − ε/2 = 0.85, the network is under-confident on every row
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (600, 2))
    table = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": np.where(x[:, 0] > 0, "yes", "no")})
    table.to_csv(tmp_path / "t.csv", index=False)
    overrides = {
        "data.name": "csv",
        "data.path": str(tmp_path / "t.csv"),
        "data.target": "label",
        "train.label_smoothing": 0.3,
        "train.members": 1,
        "train.max_epochs": 15,
        "train.quiet": True,
        "model.hidden": [32],
    }
    result = train(load_config(preset="tabular", overrides=overrides), out=tmp_path / "run")
    temperature = load_checkpoint(result.run_dir / "best.pt", BEST)["spec"]["calibration"]["temperature"]
    assert calibration.SMOOTHED_T_MIN <= temperature < 0.8
    assert evaluate_run(result.run_dir)["test_log_loss"] == pytest.approx(result.metrics["test_log_loss"], rel=1e-5)


def test_the_tabular_preset_smooths_labels_and_lets_the_temperature_undo_it():
    cfg = load_config(preset="tabular")
    assert cfg.train.label_smoothing == 0.1 and cfg.optim.lr == 3e-3  # read at batch 64 (scaling.py)


# train.class_weights "decision" (the tabular preset's): the network trains unweighted, so its probabilities need
# no prior correction, and the label decision is still balanced


def test_decision_weights_move_the_labels_and_leave_the_probabilities():
    torch.manual_seed(0)
    logits = torch.randn(500, 2)
    y = torch.distributions.Categorical(logits=logits).sample()
    w = calibration.balanced_weights(torch.tensor([0] * 95 + [1] * 5), 2)
    assert torch.allclose(w, torch.tensor([100 / 190, 10.0]))  # rows / (classes × rows of the class)
    cal = calibration.fit(torch.log_softmax(logits, -1), y, None, decision_weight=w)
    assert cal["prior_shift"] == [0.0, 0.0]  # trained unweighted: nothing to undo
    assert cal["decision_shift"] == pytest.approx(w.log().tolist())
    p = torch.tensor([[0.93, 0.07]]).log()  # 0.07 · 10 > 0.93 · 0.53: the balanced label is the rare class
    assert calibration.apply(p, cal).exp().tolist()[0] == pytest.approx([0.93, 0.07])
    assert calibration.decision_scores(calibration.apply(p, cal), cal).argmax(1).tolist() == [1]
    line = calibration.describe(False, "val_loss", "decision")
    assert "optimises the log loss" in line and "balanced" in line and "prior" not in line


def test_the_tabular_preset_trains_unweighted_and_decides_balanced():
    assert load_config(preset="tabular").train.class_weights == "decision"


@pytest.fixture(scope="module")
def decided_run(tmp_path_factory):
    return minority_run(tmp_path_factory.mktemp("decided"))


def test_minority_probability_matches_the_true_rate_and_labels_stay_balanced(decided_run):
    result, folder = decided_run
    spec = load_checkpoint(result.run_dir / "best.pt", BEST)["spec"]
    assert spec["calibration"]["prior_shift"] == [0.0, 0.0] and spec["calibration"]["decision_shift"][0] > 2
    predicted = predict_run(result.run_dir, folder / "test.csv")
    y = (pd.read_csv(folder / "test.csv")["status"] == "bad").to_numpy()
    assert abs(predicted["probability_bad"].mean() - y.mean()) < 0.015
    # the most probable class would rarely say 'bad' on a 5% class; the balanced decision finds most of them
    assert (predicted["predicted_status"][y] == "bad").mean() > 0.5
    assert (predicted["probability_bad"][y] > 0.5).mean() < (predicted["predicted_status"][y] == "bad").mean()
