"""trainwell.search: a searched member equals the same configuration trained alone, a search
interrupted mid-stack continues to the same result, the ensemble is chosen on the selection
half, and bad input is one line."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from search_child import signalling_halver
from trainwell.checkpoint import BEST, load_checkpoint
from trainwell.cli import main
from trainwell.config import RunConfig
from trainwell.data import load_data
from trainwell.errors import ConfigError
from trainwell.inference import evaluate_run, load_run
from trainwell.runner import train_runs
from trainwell.stop_reasons import HALVED
from trainwell.tune import driver, search
from trainwell.tune.engine import run_stack, split_validation
from trainwell.tune.halving import halver, worse_share
from trainwell.tune.selection import caruana


def base_config(**train):
    return RunConfig.from_dict(tiny_config(train={"max_epochs": 6, "patience": 3, **train}))


def history_without_time(run_dir):
    rows = json.loads((run_dir / "history.json").read_text())
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def best_weights(run_dir):
    return load_checkpoint(run_dir / "best.pt", BEST)["model"]


def test_searched_member_equals_the_same_configuration_trained_alone(tmp_path):
    base = base_config()
    data = load_data(base.data)
    stop_data, _ = split_validation(data, 0)
    cfgs = []
    for i, (lr, wd, dropout) in enumerate([(3e-3, 0.01, 0.1), (1e-3, 0.1, 0.3), (8e-3, 0.001, 0.05)]):
        raw = base.to_dict()
        raw["name"], raw["optim"]["lr"], raw["optim"]["weight_decay"], raw["model"]["dropout"] = (
            f"c{i}",
            lr,
            wd,
            dropout,
        )
        cfgs.append(RunConfig.from_dict(raw))
    dirs = [tmp_path / "stack" / f"c{i}" for i in range(3)]
    run_stack(cfgs, dirs, stop_data, halver([2]))
    reasons = [json.loads((d / "metrics.json").read_text())["stop_reason"] for d in dirs]
    assert reasons.count(HALVED) == 2  # all but the best third of 3 stop at the rung
    for cfg, d in zip(cfgs, dirs):
        epochs = json.loads((d / "metrics.json").read_text())["epochs_run"]
        alone_cfg = RunConfig.from_dict({**cfg.to_dict(), "train": {**cfg.to_dict()["train"], "max_epochs": epochs}})
        alone = tmp_path / "alone" / d.name
        train_runs([alone_cfg], [alone], data=stop_data)
        assert history_without_time(alone) == history_without_time(d)
        mine, theirs = best_weights(d), best_weights(alone)
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_search_interrupted_mid_stack_continues_to_the_same_result(tmp_path, monkeypatch):
    base = base_config()
    straight = search(base, 5, out=tmp_path / "straight", seed=1)
    assert not straight.interrupted
    real = driver.halver
    monkeypatch.setattr(driver, "halver", signalling_halver(1, 2, signal.SIGINT))  # mid-stack, as Ctrl-C would
    stopped = search(base, 5, out=tmp_path / "stopped", seed=1)
    assert stopped.interrupted and "run the same command" in stopped.message
    assert (tmp_path / "stopped" / "report.md").exists() and not (tmp_path / "stopped" / "ensemble").exists()
    monkeypatch.setattr(driver, "halver", real)
    resumed = search(base, 5, out=tmp_path / "stopped", seed=1)
    assert not resumed.interrupted
    for d in sorted((tmp_path / "straight" / "runs").iterdir()):
        other = tmp_path / "stopped" / "runs" / d.name
        assert history_without_time(d) == history_without_time(other)
    a, b = (
        json.loads((p / "ensemble" / "metrics.json").read_text()) for p in (tmp_path / "straight", tmp_path / "stopped")
    )
    assert a == b


def test_search_killed_mid_stack_continues_to_the_same_result(tmp_path):
    """SIGKILL inside the stack, between spaced-out checkpoints: the same call continues
    from the stack's last save and ends where an uninterrupted search ends."""
    raw = tiny_config(train={"max_epochs": 8, "patience": 3})
    straight = search(raw, 5, out=tmp_path / "straight", seed=1)
    child = Path(__file__).with_name("search_child.py")
    proc = subprocess.run(
        [sys.executable, str(child), str(tmp_path / "killed"), json.dumps(raw), "5", "1", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (tmp_path / "killed" / "ensemble").exists()
    unfinished = [d for d in (tmp_path / "killed" / "runs").iterdir() if not (d / "metrics.json").exists()]
    assert any((d / "last.pt").exists() for d in unfinished)  # a stack stands part-way: it is resumed
    resumed = search(raw, 5, out=tmp_path / "killed", seed=1)
    for d in sorted((tmp_path / "straight" / "runs").iterdir()):
        assert history_without_time(d) == history_without_time(tmp_path / "killed" / "runs" / d.name)
        assert all(
            torch.equal(a, b)
            for a, b in zip(best_weights(d).values(), best_weights(tmp_path / "killed" / "runs" / d.name).values())
        )
    assert resumed.summary["ensemble_test"] == straight.summary["ensemble_test"]


def test_ensemble_is_chosen_on_the_selection_half_and_loads_like_a_run(tmp_path, monkeypatch):
    base = base_config(max_epochs=3)
    seen = {}
    real = driver.bagged_caruana

    def spy(task, outs, y, metric, mode, *rest):
        seen["y"] = y
        return real(task, outs, y, metric, mode, *rest)

    monkeypatch.setattr(driver, "bagged_caruana", spy)
    result = search(base, 3, out=tmp_path / "s", select_on="half")
    data = load_data(base.data)
    stop_half, select_half = split_validation(data, base.data.split_seed)
    assert torch.equal(seen["y"], select_half.y_val) and len(stop_half.y_val) + len(seen["y"]) == len(data.y_val)
    metrics = json.loads((result.ensemble_dir / "metrics.json").read_text())
    assert "other half" in metrics["selected_on"]
    evaluated = evaluate_run(result.ensemble_dir)
    assert evaluated["test_mae"] == pytest.approx(metrics["test_mae"], rel=1e-5)
    _, model, spec = load_run(result.ensemble_dir)
    assert spec["members"] == len(metrics["picks"])
    assert "Which settings mattered" in result.report.read_text()
    # whether the additions held up on the rows each bag left out is recorded and said
    assert metrics["selection_held_out_gain"] == result.summary["held_out_gain"]
    assert "each bag left out" in result.report.read_text()
    assert "<h2>Which settings mattered</h2>" in (result.out / "report.html").read_text()


def test_caruana_adds_with_replacement_and_keeps_the_best_prefix():
    y = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    low, high, far = y - 1.0, y + 1.0, y + 5.0
    chosen = caruana("regression", [far, low, high], y, "loss", "min")
    assert sorted(chosen.picks) == [1, 2] and chosen.score == pytest.approx(0.0)  # the two biases cancel
    exact = caruana("regression", [far, y.clone(), low], y, "loss", "min")
    assert exact.picks == [1] and exact.single_best == 1


def test_caruana_from_the_default_is_never_worse_than_the_default():
    y = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    low, high = y - 1.0, y + 1.0  # the "default's seeds": together they are exact
    good = y + 0.13  # the best single member, but biased (k × 0.13 is no whole number for k <= 25)
    chosen = caruana("regression", [good, low, high], y, "loss", "min", start=[1, 2])
    assert sorted(chosen.picks) == [1, 2] and chosen.score == pytest.approx(0.0)
    assert chosen.single_best == 0  # from the best single member alone, 25 steps cannot reach 0
    plain = caruana("regression", [good, low, high], y, "loss", "min")
    assert plain.score > 0.0 and chosen.score < plain.score
    added = caruana("regression", [y - 0.5, low, y + 3.0], y, "loss", "min", start=[1])
    assert added.picks[0] == 1 and added.score < 0.25  # additions to the start where they help (0.25: y - 0.5 alone)


def classification_config(tmp_path, **train):
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.iloc[:300, [0, 1, 2, 3, 7, 20, 21, 30]]
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    data = {"name": "csv", "path": str(tmp_path / "cancer.csv"), "target": "target", "task": "classification"}
    train = {"max_epochs": 4, "patience": 3, "members": 2, "class_weights": "auto", **train}
    return RunConfig.from_dict(tiny_config(data=data, train=train))


def test_the_ensemble_gets_its_own_temperature_and_never_loses_to_the_default_on_selection(tmp_path):
    from trainwell.build import class_weight
    from trainwell.calibration import fit
    from trainwell.outputs import ensemble_scores
    from trainwell.tune import ensemble

    base = classification_config(tmp_path)
    result = search(base, 3, out=tmp_path / "s", seed=2)
    data = load_data(base.data)
    metrics = json.loads((result.ensemble_dir / "metrics.json").read_text())
    _, model, spec = load_run(result.ensemble_dir)
    outs = [m(data.x_val) for m in model.members]  # each member's logits on every validation row
    expected = fit(
        ensemble_scores("classification", [o.detach() for o in outs])[0], data.y_val, class_weight(base, data)
    )
    assert spec["calibration"]["temperature"] == pytest.approx(expected["temperature"], rel=1e-6)
    assert evaluate_run(result.ensemble_dir)["test_log_loss"] == pytest.approx(metrics["test_log_loss"], rel=1e-5)
    s = result.summary
    assert s["ensemble_select"] <= s["default_select"] == metrics["default_selection_value"]
    default_seeds = ensemble.seeds_of(base, result.out / "default")
    assert [c.name for c in default_seeds] == ["default#0", "default#1"]  # candidates of the selection too
    default_metrics = json.loads((result.out / "default" / "metrics.json").read_text())
    assert default_metrics["stacked_with"] == 1 and default_metrics["stop_reason"] != HALVED  # trained first, alone
    alone = train_runs([base], [tmp_path / "alone"])[0].metrics  # on all validation rows, as the search's default
    assert alone["test_log_loss"] == default_metrics["test_log_loss"] and alone["test_accuracy"] == s["default_test"]


def test_a_search_with_nothing_finite_fails_with_exit_1(tmp_path, capsys, monkeypatch):
    from trainwell.tune import ensemble

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(json.dumps(tiny_config(train={"max_epochs": 2})))
    monkeypatch.setattr(ensemble, "finished", lambda run_dir: False)  # as when every loss became non-finite
    status = main(["train", str(cfg), "--out", str(tmp_path / "s"), "--search", "2", "--quiet"])
    err = capsys.readouterr().err
    assert status == 1 and "no configuration of the search trained to finite weights" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "s" / "ensemble").exists()


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_the_fast_loss_is_the_loss_test_metrics_gives(task):
    from trainwell.tune.selection import ensemble_score, loss_scorer

    g = torch.Generator().manual_seed(0)
    shape = (50, 1) if task == "regression" else (50, 3)
    outs = [torch.randn(shape, generator=g) for _ in range(4)]
    y = torch.randn(50, 1, generator=g) if task == "regression" else torch.randint(0, 3, (50,), generator=g)
    cal = (
        None
        if task == "regression"
        else {"temperature": 1.0, "prior_shift": [0.2, 0.0, -0.5], "decision_shift": [0.0] * 3}
    )
    counts = {0: 2, 3: 1}
    fast = loss_scorer(task, outs, y, cal)(counts)
    assert fast == pytest.approx(ensemble_score(task, outs, counts, y, "loss", 1.0, cal), rel=1e-5)


class FakeMember:
    def __init__(self, values, training=True):
        self.history = [{"val_loss": v} for v in values]
        self.stop_reason = None if training else "early_stop"
        self.cfg = RunConfig.from_dict(tiny_config())
        self.stopper = type("S", (), {"mode": "min"})()

    @property
    def training(self):
        return self.stop_reason is None


def test_halving_ranks_against_earlier_stacks():
    state = type("State", (), {"epoch": 2})()
    members = [FakeMember([0.9, 0.5]), FakeMember([0.8, 0.6]), FakeMember([0.7, 0.4], training=False)]
    trainer = type("T", (), {"members": members})()
    halver([2])(trainer, state)  # alone: the best third of three is the one at 0.4; the other two would stop
    assert [m.stop_reason for m in members] == [HALVED, HALVED, "early_stop"]
    members = [FakeMember([0.9, 0.5]), FakeMember([0.8, 0.6])]
    halver([2], {2: [0.1, 0.2, 0.3]})(type("T", (), {"members": members})(), state)
    assert [m.stop_reason for m in members] == [HALVED, HALVED]  # a worse stack stops early
    members = [FakeMember([0.9, 0.5])]
    halver([3], {2: [0.1]})(type("T", (), {"members": members})(), state)
    assert members[0].training  # not a rung


def test_worse_share_ranks_missing_values_last():
    assert worse_share([0.3, None, 0.1, 0.2], "min") == [0, 1]  # the best third of four, rounded up, is two
    assert worse_share([0.3, 0.1, 0.2], "max") == [1, 2]
    assert worse_share([0.3, 0.1, 0.2, 0.4, 0.5, 0.6, None], "min") == [3, 4, 5, 6]


@pytest.mark.parametrize(
    "argv, phrase",
    [
        (["--search", "0"], "a number of configurations from 1"),
        (["--search", "3", "--dials", ""], "the search space is empty"),
        (["--search", "3", "--dials", "label_smoothing"], "the search space is empty"),
        (["--search", "3", "--dials", "colour"], "search dial 'colour' is unknown"),
        (["--dials", "lr"], "say how large a search"),
        (["--time", "0"], "--time 0.0 is not allowed"),
        (["--search", "3", "--time", "0.000001"], "is too small: one epoch of the default run takes about"),
    ],
)
def test_bad_search_input_is_one_line_and_exit_2(tmp_path, capsys, argv, phrase):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(json.dumps(tiny_config()))
    status = main(["train", str(cfg), "--out", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    assert status == 2 and phrase in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_config_file_may_ask_for_a_search(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(json.dumps({**tiny_config(train={"max_epochs": 2}), "search": 2}))
    assert main(["train", str(cfg), "--out", str(tmp_path / "s"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "The searched ensemble" in out and (tmp_path / "s" / "ensemble" / "best.pt").exists()
    assert len(json.loads((tmp_path / "s" / "search.json").read_text())["configs"]) == 2
    cfg.write_text(json.dumps({**tiny_config(), "search": 0}))
    assert main(["train", str(cfg), "--out", str(tmp_path / "t")]) == 2
    assert "search = 0 is not allowed" in capsys.readouterr().err


def test_a_different_search_in_the_same_folder_is_refused(tmp_path):
    base = base_config(max_epochs=2)
    search(base, 2, out=tmp_path / "s")
    with pytest.raises(Exception, match="holds a different search"):
        search(base, 3, out=tmp_path / "s")
    with pytest.raises(ConfigError, match="cannot be searched"):
        search(RunConfig.from_dict(tiny_config(model={"kind": "cnn"})), 2, out=tmp_path / "t")


def test_scikit_learn_estimators_take_search():
    from sklearn.datasets import load_breast_cancer, load_diabetes

    from trainwell.sklearn import TrainwellClassifier, TrainwellRegressor

    X, y = load_diabetes(return_X_y=True)
    reg = TrainwellRegressor(hidden=(16,), max_epochs=4, patience=2, search=3, random_state=0).fit(X[:300], y[:300])
    assert reg.predict(X[300:]).shape == (len(X) - 300,) and reg.search_summary_["trials"] == 3
    again = TrainwellRegressor(hidden=(16,), max_epochs=4, patience=2, search=3, random_state=0).fit(X[:300], y[:300])
    assert (again.predict(X[300:]) == reg.predict(X[300:])).all()  # seeded: the same search, the same ensemble
    X, y = load_breast_cancer(return_X_y=True)
    clf = TrainwellClassifier(hidden=(16,), max_epochs=3, search=2, random_state=0).fit(X, y)
    proba = clf.predict_proba(X[:5])
    assert proba.shape == (5, 2) and abs(proba.sum(1) - 1).max() < 1e-5
    with pytest.raises(ValueError, match="cannot be combined with module="):
        TrainwellClassifier(search=2, module=lambda i, o: torch.nn.Linear(i, o)).fit(X, y)


def test_numeric_embeddings_are_a_layout_dial_searched_by_default_and_auto_keeps_the_default_stack():
    from trainwell.planning import group_key
    from trainwell.tune import space

    base = base_config()
    dials = space.space_around(base, "classification", train_rows=400)
    searched = {d.name for d in space.restrict(dials, None, "classification")}
    assert searched == {"lr", "weight_decay", "dropout", "schedule", "numeric_embedding"}  # no smoothing, widths
    named = space.restrict(dials, ["numeric_embedding", "lr", "label_smoothing"], "classification")
    assert {d.name for d in named} == {"numeric_embedding", "lr", "label_smoothing"}
    embedding = next(d for d in named if d.name == "numeric_embedding")
    assert embedding.values == ("none", "periodic")
    on, off = (space.apply(base, {"numeric_embedding": v, "lr": 1e-3}, f"c{v}") for v in embedding.values)
    assert (on.model.numeric_embedding, off.model.numeric_embedding) == ("none", "periodic")
    assert group_key(on) != group_key(off)  # another layout: another stack
    auto = RunConfig.from_dict({**base.to_dict(), "model": {**base.to_dict()["model"], "numeric_embedding": "auto"}})
    values = next(d for d in space.space_around(auto, "regression", 400) if d.name == "numeric_embedding").values
    assert values == ("auto", "periodic")  # auto is none on 400 rows of unknown width: the other side is periodic
    narrow = next(d for d in space.space_around(auto, "regression", 400, embeddable=8) if d.name == "numeric_embedding")
    assert narrow.values == ("auto", "none")  # auto is periodic on a narrow table: the other side is none
    same = space.apply(auto, {"numeric_embedding": "auto", "lr": 3e-3}, "c1")
    assert group_key(same) == group_key(auto)  # the default's own setting: the default's stack


def test_a_finished_search_run_again_with_the_same_config_gives_the_same_ensemble(tmp_path):
    # the second call finds every stack finished: it only chooses and saves again, loading each run with the
    # config it trained with (the base's "auto" embedding resolved there, not the unresolved one given here)
    # and the runs are not trained again: their plan, with "auto" batch and embedding, matches the resolved values
    # their config.yaml holds
    raw = base_config().to_dict()
    base = RunConfig.from_dict(
        {**raw, "model": {**raw["model"], "numeric_embedding": "auto"}, "train": {**raw["train"], "batch_size": "auto"}}
    )
    first = search(base, 4, out=tmp_path / "s", seed=2)
    assert not first.interrupted
    assert base.model.numeric_embedding == "auto"  # the caller's config is not resolved in place
    metrics = (tmp_path / "s" / "ensemble" / "metrics.json").read_text()
    histories = {d.name: history_without_time(d) for d in (tmp_path / "s" / "runs").iterdir()}
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "s").glob("*/*/metrics.json")}
    written[tmp_path / "s" / "default" / "metrics.json"] = (
        (tmp_path / "s" / "default" / "metrics.json").stat().st_mtime_ns
    )
    again = search(base, 4, out=tmp_path / "s", seed=2)
    assert not again.interrupted
    assert {p: p.stat().st_mtime_ns for p in written} == written
    assert {d.name: history_without_time(d) for d in (tmp_path / "s" / "runs").iterdir()} == histories
    assert json.loads((tmp_path / "s" / "ensemble" / "metrics.json").read_text()) == json.loads(metrics)


def test_the_search_ensemble_decides_labels_as_the_default_run_does():
    # class_weights "decision" (the tabular preset's): trained unweighted, labels decided balanced, in the ensemble too
    from types import SimpleNamespace

    from trainwell import calibration
    from trainwell.tune import ensemble

    raw = base_config().to_dict()
    base = RunConfig.from_dict({**raw, "train": {**raw["train"], "class_weights": "decision"}})
    g = torch.Generator().manual_seed(0)
    y_train = (torch.rand(400, generator=g) < 0.1).long()  # a 10% minority
    data = SimpleNamespace(task="classification", y_train=y_train, y_val=y_train[:100], n_outputs=2)
    val_outs = [torch.randn(100, 2, generator=g) for _ in range(3)]
    picks = [SimpleNamespace(cfg=base)] * 3
    cal = ensemble.calibrate(base, data, val_outs, picks)
    scores = torch.stack([torch.log_softmax(o, 1) for o in val_outs]).exp().mean(0).log()
    balanced = calibration.balanced_weights(y_train, 2)
    assert cal["decision_shift"] == calibration.fit(scores, data.y_val, None, False, balanced)["decision_shift"]
    assert cal["decision_shift"] != [0.0, 0.0]
