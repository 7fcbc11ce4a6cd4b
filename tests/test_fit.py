"""The one loop for K members: a member's numbers do not depend on its partners; stacks and
ensembles use the same ingredients as single runs."""

import json

import pytest

from trainwell.config import load_config
from trainwell.inference import evaluate_run, predict_run
from trainwell.runner import train, train_runs

BASE = {"data.n": 300, "model.hidden": [16, 8], "train.max_epochs": 3, "train.batch_size": 32, "train.quiet": True}


def cfg(**changes):
    return load_config(overrides={**BASE, **{k.replace("__", "."): v for k, v in changes.items()}})


def strip(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_a_member_alone_equals_the_same_member_in_a_stack_of_eight(tmp_path):
    """BatchNorm, dropout 0.3, weight averaging: each member owns its shuffle and dropout
    generators, so its history is bit-identical alone and among seven partners."""
    common = {"model__dropout": 0.3, "train__ema_decay": 0.9, "train__clip_norm": 1.0}
    alone = train_runs([cfg(**common, train__seed=0)], [tmp_path / "alone"])[0]
    stack = train_runs(
        [cfg(**common, train__seed=s, optim__lr=1e-3 * (1 + s)) for s in [3, 0, 1, 2, 4, 5, 6, 7]],
        [tmp_path / f"s{i}" for i in range(8)],
    )
    together = stack[1]
    assert together.metrics["stacked_with"] == 8 and together.metrics["engine"] == "vectorised"
    assert strip(together.history) == strip(alone.history)
    assert {k: v for k, v in together.metrics.items() if k not in ("wall_seconds", "stacked_with")} == {
        k: v for k, v in alone.metrics.items() if k not in ("wall_seconds", "stacked_with")
    }


@pytest.mark.parametrize(
    "members",
    [
        [  # Adam L2, AdamW with decay on everything and one-cycle, clipping with a step schedule
            {"optim__name": "adam", "optim__weight_decay": 0.01, "train__seed": 0},
            {
                "optim__name": "adamw",
                "optim__weight_decay": 0.1,
                "optim__decay_norm_and_bias": True,
                "schedule__name": "onecycle",
                "train__seed": 1,
            },
            {
                "optim__name": "adamw",
                "train__clip_norm": 0.3,
                "schedule__name": "step",
                "schedule__step_size": 1,
                "train__seed": 2,
            },
        ],
        [  # SGD plain, momentum with Nesterov and L2, plateau
            {
                "optim__name": "sgd",
                "optim__lr": 0.01,
                "optim__momentum": 0.0,
                "optim__weight_decay": 0.0,
                "train__seed": 0,
            },
            {
                "optim__name": "sgd",
                "optim__lr": 0.02,
                "optim__nesterov": True,
                "optim__weight_decay": 0.01,
                "schedule__name": "plateau",
                "train__seed": 3,
            },
        ],
    ],
)
def test_stacked_runs_equal_single_runs(tmp_path, members):
    cfgs = [cfg(**m) for m in members]
    results = train_runs(cfgs, [tmp_path / f"s{i}" for i in range(len(cfgs))])
    for i, c in enumerate(cfgs):
        single = train(c, out=tmp_path / f"single{i}")
        assert strip(results[i].history) == strip(single.history)
        assert results[i].metrics["test_mae"] == single.metrics["test_mae"]
        for name in ("config.yaml", "metrics.json", "history.csv", "best.pt", "last.pt"):
            assert (tmp_path / f"s{i}" / name).exists() or name == "config.yaml"


def test_non_finite_member_fails_alone(tmp_path):
    cfgs = [
        cfg(optim__name="sgd", optim__lr=1e10, model__norm="none", train__seed=0),
        cfg(optim__name="sgd", optim__lr=0.01, model__norm="none", train__seed=1),
    ]
    results = train_runs(cfgs, [tmp_path / "a", tmp_path / "b"])
    assert results[0].stop_reason == "not_finite" and "non-finite" in results[0].message
    assert results[1].ok and results[1].metrics["epochs_run"] == 3


def test_stack_shrinks_when_most_members_stop_and_numbers_do_not_change(tmp_path):
    cfgs = [
        cfg(train__max_epochs=m, train__seed=i, optim__lr=lr)
        for i, (m, lr) in enumerate([(1, 1e-3), (1, 2e-3), (2, 3e-3), (6, 4e-3)])
    ]
    results = train_runs(cfgs, [tmp_path / f"s{i}" for i in range(4)])
    assert [r.metrics["epochs_run"] for r in results] == [1, 1, 2, 6]
    single = train(cfgs[3], out=tmp_path / "single")
    assert strip(results[3].history) == strip(single.history)


def test_classification_with_label_smoothing_and_class_weights_in_a_stack(tmp_path):
    import numpy as np

    rs = np.random.RandomState(0)
    x = rs.normal(size=(300, 3))
    label = np.array(["a", "b", "c"])[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)]
    path = tmp_path / "d.csv"
    path.write_text("f1,f2,f3,label\n" + "\n".join(f"{a},{b},{c},{d}" for (a, b, c), d in zip(x, label)))
    data = {
        "data__name": "csv",
        "data__path": str(path),
        "data__target": "label",
        "train__monitor": "val_balanced_accuracy",
        "train__class_weights": "balanced",
    }
    cfgs = [cfg(**data, train__seed=0), cfg(**data, train__seed=1, train__label_smoothing=0.1)]
    results = train_runs(cfgs, [tmp_path / "s0", tmp_path / "s1"])
    for i, c in enumerate(cfgs):
        single = train(c, out=tmp_path / f"single{i}")
        assert strip(results[i].history) == strip(single.history)
    m = results[0].metrics
    assert {"test_accuracy", "test_balanced_accuracy", "test_macro_f1", "test_log_loss", "test_roc_auc"} <= set(m)
    assert results[0].history[0]["val_balanced_accuracy"] >= 0


def test_an_ensemble_trains_its_members_together_and_predicts_with_their_average(tmp_path):
    ens = train(cfg(train__members=3, train__max_epochs=4), out=tmp_path / "ens")
    m = ens.metrics
    assert m["members"] == 3 and len(m["members_test_mae"]) == 3 and m["members_test_mae_std"] > 0
    # member k is the run with seed + k: member 0 alone
    alone = train(cfg(train__max_epochs=4), out=tmp_path / "alone")
    assert m["members_test_mae"][0] == pytest.approx(alone.metrics["test_mae"], rel=1e-5)
    assert m["test_mae"] < m["members_test_mae_mean"]  # averaging three noisy members helps on this data
    assert evaluate_run(tmp_path / "ens")["test_mae"] == pytest.approx(m["test_mae"], rel=1e-5)
    assert ens.history[0]["members_training"] == 3
    from trainwell.data.delivery import FEATURES, generate

    x, _ = generate(5, 1)
    rows = tmp_path / "rows.csv"
    rows.write_text(",".join(FEATURES) + "\n" + "\n".join(",".join(map(str, r)) for r in x))
    pred = predict_run(tmp_path / "ens", rows)
    assert len(pred) == 5 and "predicted_delivery_minutes" in pred
    assert (pred["members_std_delivery_minutes"] > 0).all()  # three members never agree to the last digit


def test_an_ensemble_resumes_exactly(tmp_path):
    c = cfg(train__members=2, train__max_epochs=4, train__early_stopping=False)
    straight = train(c, out=tmp_path / "straight")
    stopped = train(c, out=tmp_path / "stopped", emit=_interrupt_after(2))
    assert stopped.stop_reason == "interrupted"
    from trainwell.runner import resume

    again = resume(tmp_path / "stopped", quiet=True)
    assert strip(again.history) == strip(straight.history)
    assert again.metrics["test_mae"] == straight.metrics["test_mae"]


def _interrupt_after(epoch):
    import os
    import signal

    def emit(event, **p):
        if event == "epoch_end" and p["row"]["epoch"] == epoch:
            os.kill(os.getpid(), signal.SIGINT)

    return emit


def test_module_path_ensemble_of_cnns(tmp_path):
    c = load_config(
        overrides={
            "data.name": "digits",
            "model.kind": "cnn",
            "model.channels": [4, 8],
            "model.head_width": 16,
            "train.max_epochs": 1,
            "train.members": 2,
            "train.quiet": True,
        }
    )
    result = train(c, out=tmp_path / "cnn")
    assert result.metrics["engine"] == "module" and result.metrics["members"] == 2
    assert json.loads((tmp_path / "cnn" / "metrics.json").read_text())["test_accuracy"] > 0.1


def test_runs_with_and_without_dropout_never_share_a_stack(tmp_path):
    from trainwell.planning import group_key

    with_dropout, without = cfg(model__dropout=0.3), cfg(model__dropout=0.0)
    assert group_key(with_dropout) != group_key(without) and group_key(with_dropout) == group_key(
        cfg(model__dropout=0.5)
    )


def test_the_fast_path_computes_what_the_module_path_does_with_bias_free_linears(tmp_path):
    """trainwell's MLP has no Linear bias before BatchNorm; the vectorised path's hand-written
    forward and backward must agree with autograd on the same modules (no dropout: the two paths
    draw dropout masks from different streams)."""
    from trainwell.models import build_model
    from trainwell.seeding import seed_everything

    config = cfg(model__dropout=0.0, train__seed=4)
    fast = train(config, out=tmp_path / "fast")
    seed_everything(4)
    data_shape, outputs = (4,), 1  # delivery: four features, one target
    model = build_model(config.model, data_shape, outputs, "mlp")
    assert model[0].bias is None and model[1].__class__.__name__ == "BatchNorm1d"
    module = train(config, out=tmp_path / "module", model=model)
    assert (fast.metrics["engine"], module.metrics["engine"]) == ("vectorised", "module")
    assert [r["val_loss"] for r in fast.history] == pytest.approx([r["val_loss"] for r in module.history], rel=1e-4)
