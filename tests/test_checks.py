"""The model check: one small model per rule with the mistake (found) and fixed (not found);
the order modules run in, not the order they are defined in, decides."""

import pytest
import torch
from torch import nn

import trainwell
from trainwell.checks import WARNING
from trainwell.errors import ConfigError

ROWS = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
IMAGES = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def found(model, sample=ROWS, **settings):
    """{rule: [findings]} of a check."""
    report = trainwell.check(model, sample, **settings)
    out = {}
    for f in report.findings:
        out.setdefault(f.rule, []).append(f)
    return out


class Reordered(nn.Module):
    """Defined BatchNorm first, run Linear first: only the run order counts."""

    def __init__(self, bias=True):
        super().__init__()
        self.bn = nn.BatchNorm1d(16)
        self.lin = nn.Linear(8, 16, bias=bias)

    def forward(self, x):
        return self.bn(self.lin(x))


def test_bias_before_batchnorm_counts_the_dead_parameters():
    [f] = found(nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU()))["bias-before-batchnorm"]
    assert f.severity == WARNING and f.modules == ("0 (Linear)", "1 (BatchNorm1d)")
    assert f.cost.startswith("16 dead parameters") and "bias=False" in f.fix
    [f] = found(Reordered())["bias-before-batchnorm"]
    assert f.modules == ("lin (Linear)", "bn (BatchNorm1d)")
    conv = nn.Sequential(nn.Conv2d(3, 6, 3), nn.MaxPool2d(2), nn.BatchNorm2d(6))  # a pool passes the bias on
    [f] = found(conv, IMAGES)["bias-before-batchnorm"]
    assert f.cost.startswith("6 dead parameters") and f.modules[1] == "1 (MaxPool2d)"
    assert found(Reordered(bias=False)) == {}
    assert found(nn.Sequential(nn.Conv2d(3, 6, 3, bias=False), nn.BatchNorm2d(6)), IMAGES) == {}


def test_a_bias_that_batchnorm_does_not_cancel_is_not_reported():
    # defined next to each other but not connected: the Linear's output goes through a ReLU first
    relu_between = nn.Sequential(nn.Linear(8, 16), nn.ReLU(inplace=True), nn.BatchNorm1d(16))
    assert "bias-before-batchnorm" not in found(relu_between)
    # (N, 5, 4) → Linear(4, 5): the bias lies along the last dimension, BatchNorm1d's channels along dimension 1
    sideways = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5))
    assert "bias-before-batchnorm" not in found(sideways, torch.randn(4, 5, 4))


def test_dropout_feeding_batchnorm():
    [f] = found(nn.Sequential(nn.Linear(8, 16, bias=False), nn.Dropout(0.2), nn.BatchNorm1d(16)))[
        "dropout-before-batchnorm"
    ]
    assert f.severity == WARNING and f.modules == ("1 (Dropout)", "2 (BatchNorm1d)") and "after the BatchNorm" in f.fix
    # any kind of Dropout, and through parameter-free modules in between
    maps = nn.Sequential(nn.Dropout2d(0.2), nn.MaxPool2d(2), nn.BatchNorm2d(3))
    assert [f.modules for f in found(maps, IMAGES)["dropout-before-batchnorm"]] == [
        ("0 (Dropout2d)", "1 (MaxPool2d)", "2 (BatchNorm2d)")
    ]
    # the lessons' block, repeated: Dropout feeds the next Linear, whose output BatchNorm sees
    fixed = nn.Sequential(
        nn.Linear(8, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(16, 16, bias=False), nn.BatchNorm1d(16),
    )  # fmt: skip
    assert found(fixed) == {}


def test_elementwise_dropout_on_feature_maps():
    def net(drop):
        return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), drop, nn.Flatten())

    [f] = found(net(nn.Dropout(0.2)), IMAGES)["elementwise-dropout-on-maps"]
    assert f.modules == ("3 (Dropout)",) and "nn.Dropout2d" in f.fix and "4-D" in f.cost
    assert found(net(nn.Dropout2d(0.2)), IMAGES) == {}
    after_flatten = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Dropout(0.2))  # 2-D: element-wise is right
    assert found(after_flatten, IMAGES) == {}


def test_activation_before_batchnorm_is_information():
    model = nn.Sequential(nn.Linear(8, 16, bias=False), nn.ReLU(), nn.BatchNorm1d(16))
    report = trainwell.check(model, ROWS)
    assert [f.rule for f in report.findings] == ["activation-before-batchnorm"] and report.warnings == ()
    assert found(nn.Sequential(nn.Linear(8, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU())) == {}


def test_a_last_batch_of_one_with_batchnorm():
    model = nn.Sequential(nn.Linear(8, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU())
    [f] = found(model, train_size=129, batch_size=64)["last-batch-of-one"]
    assert "trainwell drops it" in f.cost and "1 of 129 rows" in f.cost and "e.g. 65" in f.fix
    assert found(model, train_size=130, batch_size=64) == {}
    assert found(nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16)), train_size=129, batch_size=64) == {}


class Scaled(nn.Module):
    """A per-channel scale of its own, and a position table it asks to keep undecayed."""

    def __init__(self, scale_shape=(1, 8), listed=("pos",)):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(scale_shape))
        self.pos = nn.Parameter(torch.zeros(4, 8))
        self.lin = nn.Linear(8, 2)
        self.listed = listed

    def no_weight_decay(self):
        return set(self.listed)

    def forward(self, x):
        return self.lin(x * self.scale.view(1, -1) + self.pos)


def test_weight_decay_on_vectors_and_on_what_no_weight_decay_lists():
    by_fix = {f.fix: f for f in found(Scaled())["weight-decay-misplaced"]}
    vector = next(f for fix, f in by_fix.items() if "p.view" in fix)
    listed = next(f for fix, f in by_fix.items() if "optim.weight_decay: 0" in fix)
    assert vector.modules == ("scale",) and vector.cost.startswith("8 parameters")
    assert listed.modules == ("pos",) and "no_weight_decay()" in listed.cost and listed.cost.startswith("32 parameters")
    assert found(Scaled(scale_shape=(8,), listed=())) == {}
    assert found(Scaled(), weight_decay=0.0) == {}  # nothing decays at all
    [f] = found(nn.Sequential(nn.Linear(8, 4), nn.LayerNorm(4)), decay_norm_and_bias=True)["weight-decay-misplaced"]
    assert f.modules == ("0.bias, 1.weight, 1.bias",) and f.cost.startswith("12 parameters")
    assert found(nn.Linear(1, 4), torch.randn(4, 1)) == {}  # a (4, 1) weight of torch's own Linear is a matrix


def test_eval_mode_and_frozen_parameters():
    model = nn.Sequential(nn.Linear(8, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))
    assert found(model) == {}
    [f] = found(model.eval())["eval-mode"]
    assert f.modules == ("(model)",) and "model.train()" in f.fix
    model.train()
    model[1].eval()
    [f] = found(model)["eval-mode"]
    assert f.modules == ("1",) and "puts them back in train mode" in f.cost
    model.train()
    model[0].weight.requires_grad_(False)
    [f] = found(model)["frozen-parameters"]
    assert f.severity == "info" and f.modules == ("0.weight",) and f.cost.startswith("128 of 177 parameters")


def test_the_check_leaves_model_statistics_modes_and_random_state_as_they_were():
    model = nn.Sequential(nn.Linear(8, 16, bias=False), nn.BatchNorm1d(16), nn.Dropout(0.5), nn.Linear(16, 1))
    model[2].eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    trainwell.check(model, ROWS)
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [m.training for m in model] == [True, True, False, True]


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown check setting 'batch'"):
        trainwell.check(nn.Linear(8, 1), ROWS, batch=3)
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1"):
        trainwell.check(nn.Linear(8, 1), ROWS, batch_size=0)
    with pytest.raises(ConfigError, match="must be a torch.nn.Module"):
        trainwell.check("net", ROWS)


def own_models():
    """(name, model, sample) for every preset's model, and the MLP with each norm and with embedded categories."""
    from trainwell.config import ModelConfig, load_config
    from trainwell.models import build_model
    from trainwell.presets import PRESETS

    for preset in PRESETS.names():
        model_cfg = load_config(preset=preset).model
        for kind in ["mlp", "cnn"] if model_cfg.kind == "auto" else [model_cfg.kind]:
            sample = IMAGES if kind.startswith("cnn") else ROWS
            yield f"{preset}:{kind}", build_model(model_cfg, tuple(sample.shape[1:]), 3, kind), sample
    for norm in ("batch", "layer", "none"):
        yield f"mlp-{norm}", build_model(ModelConfig(norm=norm), (8,), 1, "mlp"), ROWS
    embedded = [{"index": 1, "rows": 4, "width": 2}]
    yield "mlp-embedded", build_model(ModelConfig(), (8,), 1, "mlp", embedded), ROWS.abs().round()


def test_trainwells_own_models_have_nothing_to_warn_about():
    checked = {name: trainwell.check(model, sample).findings for name, model, sample in own_models()}
    assert {"delivery-production:mlp", "mlp-batch", "mlp-embedded"} <= set(checked) and any("cnn" in n for n in checked)
    assert {name: found for name, found in checked.items() if found} == {}
