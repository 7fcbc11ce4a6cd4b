"""Checkpoints: atomic writes, plain data only, refusal of torn, corrupt, foreign and malicious files."""

import os

import pytest
import torch

from conftest import tiny_config
from trainwell.checkpoint import BEST, FORMAT_VERSION, LAST, atomic_save, load_checkpoint, save_checkpoint
from trainwell.cli import main
from trainwell.errors import CheckpointError
from trainwell.runner import resume, train


class Exploit:
    """Unpickling this would create a file: a checkpoint must never run it."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck") / "run"
    train(tiny_config(train={"max_epochs": 2}), out=out)
    return out


def test_every_checkpoint_loads_with_weights_only(finished_run):
    for name in ("best.pt", "last.pt"):
        payload = torch.load(finished_run / name, weights_only=True)
        assert payload["format"] == "trainwell" and payload["version"] == FORMAT_VERSION


def test_atomic_save_leaves_no_temporary_files(tmp_path):
    atomic_save({"a": torch.ones(3)}, tmp_path / "x.pt")
    atomic_save({"a": torch.zeros(3)}, tmp_path / "x.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]
    assert torch.equal(torch.load(tmp_path / "x.pt", weights_only=True)["a"], torch.zeros(3))


def test_failed_write_keeps_the_old_file(tmp_path):
    save_checkpoint(LAST, {"x": 1}, tmp_path / "last.pt")
    with pytest.raises(Exception):  # noqa: B017  (pickling errors differ by Python version)
        save_checkpoint(LAST, {"x": lambda: 0}, tmp_path / "last.pt")  # unpicklable: the write fails midway
    assert load_checkpoint(tmp_path / "last.pt", LAST)["x"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_truncated_and_corrupt_files_are_refused(tmp_path, finished_run):
    data = (finished_run / "last.pt").read_bytes()
    (tmp_path / "torn.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pt").write_bytes(os.urandom(2000))
    for name in ("torn.pt", "junk.pt"):
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            load_checkpoint(tmp_path / name, LAST)


def test_foreign_files_are_refused(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not written by trainwell"):
        load_checkpoint(tmp_path / "other.pt", LAST)
    save_checkpoint(BEST, {"model": {}}, tmp_path / "best.pt")
    with pytest.raises(CheckpointError, match="expected 'last'"):
        load_checkpoint(tmp_path / "best.pt", LAST)
    torch.save({"format": "trainwell", "version": 99, "kind": "last"}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(tmp_path / "future.pt", LAST)


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"format": "trainwell", "version": 1, "kind": "last", "x": Exploit(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="other than plain data"):
        load_checkpoint(tmp_path / "evil.pt", LAST)
    assert not marker.exists()


def test_malicious_last_pt_via_cli_exits_2_without_running(tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny_config(train={"max_epochs": 1}), out=run)
    (run / "metrics.json").unlink()
    marker = tmp_path / "pwned"
    torch.save({"format": "trainwell", "version": 1, "kind": "last", "x": Exploit(marker)}, run / "last.pt")
    assert main(["resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "plain data" in err and not marker.exists()


def test_checkpoint_of_another_model_is_refused(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    train(tiny_config(train={"max_epochs": 1}), out=a)
    train(tiny_config(model={"hidden": [12]}, train={"max_epochs": 1}), out=b)
    (a / "best.pt").write_bytes((b / "best.pt").read_bytes())
    assert main(["evaluate", str(a)]) == 2
    err = capsys.readouterr().err
    assert "does not match the model" in err and err.count("\n") == 1
    # a last.pt from another run is refused by resume too, and the run's files stay as they were
    (a / "metrics.json").unlink()
    (a / "last.pt").write_bytes((b / "last.pt").read_bytes())
    before = (a / "best.pt").read_bytes()
    with pytest.raises(CheckpointError):
        resume(a, quiet=True)
    assert (a / "best.pt").read_bytes() == before


def test_stored_spec_of_a_real_run_passes_and_tampered_values_are_named(finished_run):
    from trainwell.checkpoint import validate_spec

    path = finished_run / "best.pt"
    spec = load_checkpoint(path, BEST)["spec"]
    assert validate_spec(spec, path) is spec
    tampered = [
        ("n_outputs", -1, "n_outputs -1"),
        ("input_shape", [0], "input_shape [0]"),
        ("input_shape", [10**9], "input_shape"),
        ("task", "ranking", "task 'ranking'"),
        ("model_kind", "os.system", "model_kind"),
        ("x_std", [0.0] * len(spec["x_std"]), "x_std"),
        ("x_mean", [float("inf")] * len(spec["x_mean"]), "x_mean"),
        ("x_mean", [1.0], "x_mean"),  # wrong length
        ("y_std", -1.0, "y_std"),
    ]
    for key, value, words in tampered:
        with pytest.raises(CheckpointError, match=words.replace("[", r"\[").replace("]", r"\]")) as err:
            validate_spec({**spec, key: value}, path)
        assert "\n" not in str(err.value) and len(str(err.value)) < 200
    with pytest.raises(CheckpointError, match="lacks task"):
        validate_spec({k: v for k, v in spec.items() if k != "task"}, path)
