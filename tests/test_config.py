import pytest

from trainwell.config import RunConfig, apply_overrides, load_config, parse_override
from trainwell.errors import ConfigError
from trainwell.presets import PRESETS


def test_defaults_validate():
    cfg = RunConfig.from_dict({})
    assert cfg.optim.name == "adamw" and cfg.model.hidden == [128, 64, 32] and cfg.model.dropout == 0.2


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"optim": {"lr": -1}}, ["optim.lr", "-1", "> 0"]),
        ({"model": {"dropout": 1.0}}, ["model.dropout", "1.0", "< 1"]),
        ({"train": {"patience": -2}}, ["train.patience", "-2", ">= 0"]),
        ({"train": {"max_epochs": "ten"}}, ["train.max_epochs", "'ten'", "int"]),
        ({"train": {"max_epoch": 3}}, ["unknown field train.max_epoch", "max_epochs"]),
        ({"trian": {}}, ["unknown config section", "trian"]),
        ({"optim": {"name": "adagrad"}}, ["unknown optimizer 'adagrad'", "adam, adamw, sgd"]),
        ({"schedule": {"name": "cyclic"}}, ["unknown schedule 'cyclic'", "cosine", "onecycle", "plateau"]),
        ({"model": {"norm": "group"}}, ["model.norm", "batch, layer, none"]),
        ({"train": {"early_stopping": 1}}, ["train.early_stopping", "bool"]),
        ({"data": {"name": "csv"}}, ["data.path"]),
    ],
)
def test_bad_values_are_refused_with_field_value_and_allowed(raw, words):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(raw)
    message = str(err.value)
    assert "\n" not in message
    for w in words:
        assert w in message


def test_int_accepted_for_float_and_round_trip():
    cfg = RunConfig.from_dict({"optim": {"lr": 1}})
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_overrides_parse_yaml_values():
    assert parse_override("train.max_epochs=50") == ("train.max_epochs", 50)
    assert parse_override("model.hidden=[32, 16]") == ("model.hidden", [32, 16])
    assert parse_override("train.clip_norm=null") == ("train.clip_norm", None)
    with pytest.raises(ConfigError):
        parse_override("max_epochs")
    with pytest.raises(ConfigError, match="unknown field"):
        apply_overrides({}, {"nosection.x": 1})


def test_words_yaml_reads_as_booleans_are_taken_back_where_a_word_is_expected():
    # YAML 1.1 reads `off` as False: `--set train.amp=off` and `amp: off` in a file must still mean "off"
    name, value = parse_override("train.amp=off")
    assert RunConfig.from_dict({"train": {"amp": value}}).train.amp == "off"
    with pytest.raises(ConfigError, match="class_weights = 'on' is not allowed: one of"):
        RunConfig.from_dict({"train": {"class_weights": True}})


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  max_epochs: 7\nmodel:\n  dropout: 0.3\n")
    cfg = load_config(path, preset="delivery-production", overrides={"train.max_epochs": 9})
    assert cfg.train.max_epochs == 9 and cfg.model.dropout == 0.3 and cfg.schedule.name == "plateau"


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_production_preset_is_the_seed_recipe():
    cfg = load_config(preset="delivery-production")
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adamw", 1e-3, 0.01)
    assert (cfg.model.norm, cfg.model.dropout, cfg.model.hidden) == ("batch", 0.2, [128, 64, 32])
    assert (cfg.schedule.name, cfg.schedule.patience, cfg.schedule.factor) == ("plateau", 10, 0.5)
    assert (cfg.train.batch_size, cfg.train.max_epochs, cfg.train.patience) == (64, 200, 20)


@pytest.mark.parametrize("name", PRESETS.names())
def test_every_preset_validates(name):
    load_config(preset=name)


def test_unknown_preset_lists_choices():
    with pytest.raises(ConfigError, match="delivery-production"):
        load_config(preset="nope")
