"""`trainwell compare`, `trainwell demo` and the advice `trainwell train` prints: bad input exits 2 with one line."""

from __future__ import annotations

import pytest
import yaml

from trainwell.cli import main

from .conftest import tiny_experiment


def write(tmp_path, raw):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize(
    "variants, words",
    [
        ({"a": {"optim.lrr": 1}}, "unknown field optim.lrr"),
        ({"a": {"optim.lr": "fast"}}, "optim.lr = 'fast' is not allowed"),
        ({"a": {"model.norm": "group"}}, "model.norm = 'group'"),
    ],
)
def test_bad_experiment_exits_2_before_any_run(tmp_path, capsys, variants, words):
    path = write(tmp_path, tiny_experiment(variants=variants))
    assert main(["compare", path, "--out", str(tmp_path / "out"), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out" / "runs").exists()  # nothing ran


@pytest.mark.parametrize(
    "argv, words",
    [
        (["compare"], "name one experiment"),
        (["compare", "--preset", "nope"], "unknown experiment preset 'nope'"),
        (["compare", "missing.yaml"], "does not exist"),
        (["compare", "--preset", "optimizers", "--seeds", "0"], "--seeds 0"),
        (["compare", "--preset", "optimizers", "--workers", "-1"], "--workers -1"),
        (["compare", "--preset", "optimizers", "--set", "optim.lr=-1"], "optim.lr = -1"),
    ],
)
def test_bad_arguments_exit_2(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_list_presets(capsys):
    assert main(["compare", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("optimizers", "batchnorm", "dropout", "schedules", "recipe", "ablation", "cnn-upgrade"):
        assert name in out


def test_compare_prints_summary_and_report(tmp_path, capsys):
    path = write(tmp_path, tiny_experiment(variants={"a": {}, "b": {"optim.lr": 0.01}}, seeds=1))
    assert main(["compare", path, "--out", str(tmp_path / "out"), "--workers", "0", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Δ vs a (paired)" in out and f"report: {tmp_path / 'out' / 'report.html'}" in out


def test_train_prints_advice(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    # a clip threshold far below the gradient norms: the advice says the learning rate is too high
    cfg.write_text(
        yaml.safe_dump(
            {
                **tiny_experiment()["base"],
                "train": {"max_epochs": 2, "batch_size": 32, "clip_norm": 0.001, "quiet": True},
            }
        )
    )
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 0
    assert "advice: learning rate too high: the median pre-clip gradient norm" in capsys.readouterr().out


def test_missing_data_folder_exits_2_before_any_run(tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "compare",
                "--preset",
                "cnn-upgrade",
                "--data-path",
                str(tmp_path / "no-cifar"),
                "--seeds",
                "1",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "variant 'plain'" in err and err.count("\n") == 1
    assert not (out / "runs").exists()


def test_interrupted_compare_prints_one_line_with_the_command_to_continue(tmp_path, capsys, monkeypatch):
    import trainwell.experiments as ex

    from .synthetic import result_from

    unfinished = result_from(tmp_path, {"a": [3.0, 3.1], "b": [3.2, None]})
    monkeypatch.setattr(ex, "compare", lambda *a, **k: unfinished)
    monkeypatch.chdir(tmp_path)
    argv = ["compare", "--preset", "optimizers", "--seeds", "2", "--out", "my out"]
    assert main(argv) == 130
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err
        == "interrupted: 3 of 4 runs finished; the report covers those; to continue, run: trainwell compare "
        "--preset optimizers --seeds 2 --out 'my out'\n"
    )
    # a command too long for one short line: the line says to run it again instead
    assert main([*argv[:-1], "x" * 150]) == 130
    assert capsys.readouterr().err.endswith("the report covers those; run the same command again to continue\n")


def test_an_interrupt_after_every_run_finished_prints_the_summary(tmp_path, capsys, monkeypatch):
    import trainwell.experiments as ex

    from .synthetic import result_from

    done = result_from(tmp_path, {"a": [3.0, 3.1], "b": [3.2, 3.3]})
    done.complete = False  # Ctrl-C came while the last runs were finishing
    monkeypatch.setattr(ex, "compare", lambda *a, **k: done)
    assert main(["compare", "--preset", "optimizers", "--out", str(tmp_path)]) == 0
    assert "In short:" in capsys.readouterr().out
