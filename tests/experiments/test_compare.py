"""End to end: a small compare writes its files; an interrupted compare picks up where it stopped;
a failing run is recorded as failed without stopping the others."""

from __future__ import annotations

import csv
import os

import pytest

from trainwell.experiments import compare
from trainwell.experiments.spec import parse_experiment


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def two_by_two(tiny, stack=True):
    return parse_experiment(tiny(variants={"adam": {}, "sgd": {"optim.name": "sgd", "optim.lr": 0.01}}, stack=stack))


def test_two_variants_two_seeds_in_worker_processes(tmp_path, tiny):
    lines = []
    result = compare(two_by_two(tiny), tmp_path / "out", workers=2, say=lines.append)
    out = tmp_path / "out"
    for name in ("results.csv", "summary.csv", "report.md", "report.html", "experiment.yaml", "plots/curves.png"):
        assert (out / name).exists(), name
    rows = read_csv(out / "results.csv")
    assert [(r["variant"], r["seed"], r["status"]) for r in rows] == [
        ("adam", "0", "ok"),
        ("adam", "1", "ok"),
        ("sgd", "0", "ok"),
        ("sgd", "1", "ok"),
    ]
    assert all(float(r["test_mae"]) > 0 and r["epochs"] == "3" and r["run_dir"].startswith("runs/") for r in rows)
    summary = read_csv(out / "summary.csv")
    assert [s["variant"] for s in summary] == ["adam", "sgd"]
    adam, sgd = summary
    mean = (float(rows[0]["test_mae"]) + float(rows[1]["test_mae"])) / 2
    assert float(adam["test_mae_mean"]) == pytest.approx(mean, rel=1e-5)
    diff = (
        float(rows[2]["test_mae"])
        - float(rows[0]["test_mae"])
        + float(rows[3]["test_mae"])
        - float(rows[1]["test_mae"])
    ) / 2
    assert float(sgd["diff_vs_reference"]) == pytest.approx(diff, rel=1e-4) and sgd["paired_seeds"] == "2"
    assert adam["diff_vs_reference"] == ""  # the reference itself
    html = (out / "report.html").read_text()
    # the difference plot and the curves; no learning-rate plot, since every run keeps a constant rate
    assert (
        html.count("data:image/png;base64,") == 2
        and "linear regression" in html
        and "Advice" in html
        and "In short:" in html
    )
    assert (out / "plots" / "differences.png").exists() and not (out / "plots" / "lr.png").exists()
    assert "| adam | 2/2 |" in (out / "report.md").read_text()
    assert result.complete and result.failed == 0 and any("workers" in line for line in lines)


def test_interrupted_compare_keeps_finished_runs(tmp_path, tiny):
    out = tmp_path / "out"
    exp = two_by_two(tiny, stack=False)  # single-engine runs write last.pt every epoch
    compare(exp, out, workers=0, quiet=True, baselines=False)
    runs = out / "runs"
    kept = runs / "adam" / "seed-0" / "metrics.json"
    kept_time = kept.stat().st_mtime_ns
    (runs / "sgd" / "seed-1" / "metrics.json").unlink()  # as if stopped after its last epoch: last.pt remains
    resumed_best = runs / "sgd" / "seed-1" / "best.pt"
    resumed_best_time = resumed_best.stat().st_mtime_ns
    for f in (runs / "adam" / "seed-1").iterdir():  # as if it never started
        f.unlink()
    lines = []
    result = compare(exp, out, workers=0, say=lines.append, baselines=False)
    assert kept.stat().st_mtime_ns == kept_time  # finished: not rerun
    assert resumed_best.stat().st_mtime_ns == resumed_best_time  # resumed from last.pt: nothing left to train
    assert (runs / "sgd" / "seed-1" / "metrics.json").exists() and (runs / "adam" / "seed-1" / "metrics.json").exists()
    assert any("2 finished runs kept from an earlier compare; 2 to run" in line for line in lines)
    assert [r["status"] for r in result.rows] == ["ok"] * 4


def test_changed_plan_reruns_only_changed_runs(tmp_path, tiny):
    out = tmp_path / "out"
    compare(
        parse_experiment(tiny(variants={"a": {}, "b": {"optim.lr": 0.01}}, seeds=1)),
        out,
        workers=0,
        quiet=True,
        baselines=False,
    )
    a_time = (out / "runs" / "a" / "seed-0" / "metrics.json").stat().st_mtime_ns
    compare(
        parse_experiment(tiny(variants={"a": {}, "b": {"optim.lr": 0.02}}, seeds=1)),
        out,
        workers=0,
        quiet=True,
        baselines=False,
    )
    assert (out / "runs" / "a" / "seed-0" / "metrics.json").stat().st_mtime_ns == a_time
    assert "lr: 0.02" in (out / "runs" / "b" / "seed-0" / "config.yaml").read_text()


@pytest.mark.parametrize("stack", [True, False])
def test_failing_run_does_not_stop_the_others(tmp_path, tiny, stack):
    exp = parse_experiment(
        tiny(
            variants={
                "ok": {"optim.name": "sgd", "optim.lr": 0.01},
                "diverges": {"optim.name": "sgd", "optim.lr": 1e10},
            },
            seeds=1,
            stack=stack,
        )
    )
    result = compare(exp, tmp_path / "out", workers=0, quiet=True, baselines=False)
    rows = {r["variant"]: r for r in result.rows}
    assert rows["ok"]["status"] == "ok"
    assert rows["diverges"]["status"] == "failed" and "non-finite" in rows["diverges"]["error"]
    assert result.failed == 1
    assert "diverges seed 0: failed" in (tmp_path / "out" / "report.md").read_text()


def test_exception_in_a_run_is_recorded(tmp_path, tiny):
    # a batch larger than the training split fails inside the run, not at validation
    exp = parse_experiment(tiny(variants={"ok": {}, "huge-batch": {"train.batch_size": 4096}}, seeds=1, stack=False))
    result = compare(exp, tmp_path / "out", workers=0, quiet=True, baselines=False)
    rows = {r["variant"]: r for r in result.rows}
    assert rows["ok"]["status"] == "ok" and rows["huge-batch"]["status"] == "failed"
    assert "fewer than one batch" in rows["huge-batch"]["error"]


def test_threads_per_worker():
    from trainwell.experiments.runner import threads_per_worker

    assert (
        threads_per_worker(2, 2) == 1
        and threads_per_worker(1, 2) == 2
        and threads_per_worker(4, 2) == 1
        and threads_per_worker(2, 16) == 8
    )
    assert os.cpu_count()


EXECUTION_COLUMNS = ("wall_seconds", "threads", "stacked_with")  # how a run was executed, not what it computed


def results_without_execution(path):
    return [{k: v for k, v in r.items() if k not in EXECUTION_COLUMNS} for r in read_csv(path)]


def dropout_stack(tiny):
    base = {"model.norm": "batch", "model.dropout": 0.3, "train.ema_decay": 0.9}
    return parse_experiment(
        tiny(
            variants={"a": base, "b": {**base, "optim.lr": 0.01}, "c": {**base, "optim.name": "sgd", "optim.lr": 0.02}},
            seeds=2,
        )
    )


def test_worker_count_does_not_change_results(tmp_path, tiny):
    """Stacks are cut differently for one and two workers; members own their generators, so
    results.csv is the same but for how the runs were executed."""
    compare(dropout_stack(tiny), tmp_path / "one", workers=1, quiet=True, baselines=False)
    compare(dropout_stack(tiny), tmp_path / "two", workers=2, quiet=True, baselines=False)
    one, two = read_csv(tmp_path / "one" / "results.csv"), read_csv(tmp_path / "two" / "results.csv")
    assert {r["stacked_with"] for r in one} != {r["stacked_with"] for r in two} or len(one) == 6
    assert results_without_execution(tmp_path / "one" / "results.csv") == results_without_execution(
        tmp_path / "two" / "results.csv"
    )


KILLER = """
import os, signal, sys
import trainwell.runbook as runbook
from trainwell.experiments import compare
from trainwell.experiments.spec import parse_experiment
import json
calls = {"n": 0}
save = runbook.save_last
def save_then_maybe_die(*a, **k):
    save(*a, **k)
    calls["n"] += 1
    if calls["n"] == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
runbook.save_last = save_then_maybe_die
compare(parse_experiment(json.loads(sys.argv[1])), sys.argv[2], workers=0, quiet=True, baselines=False)
"""


def test_a_stack_killed_mid_compare_resumes_exactly(tmp_path, tiny):
    """SIGKILL inside a stack (after its 9th last.pt write: mid-epoch 2 of a 3-member stack),
    then the same compare again: every run ends as in an uninterrupted compare."""
    import json
    import signal
    import subprocess
    import sys

    raw = tiny(
        variants={
            "a": {"model.dropout": 0.2, "model.norm": "batch"},
            "b": {"model.dropout": 0.2, "model.norm": "batch", "optim.lr": 0.01},
        },
        seeds=[0, 1],
    )
    raw["base"]["train"] = {**raw["base"]["train"], "checkpoint_every_steps": 3, "max_epochs": 4}
    compare(parse_experiment(raw), tmp_path / "straight", workers=0, quiet=True, baselines=False)
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, json.dumps(raw), str(tmp_path / "killed"), "9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not list((tmp_path / "killed" / "runs").glob("*/*/metrics.json"))  # killed before any run finished
    compare(parse_experiment(raw), tmp_path / "killed", workers=0, quiet=True, baselines=False)
    assert results_without_execution(tmp_path / "straight" / "results.csv") == results_without_execution(
        tmp_path / "killed" / "results.csv"
    )
    for run in ("a/seed-0", "b/seed-1"):
        h1, h2 = (
            json.loads((tmp_path / d / "runs" / run / "history.json").read_text()) for d in ("straight", "killed")
        )
        assert [{k: v for k, v in r.items() if k != "seconds"} for r in h1] == [
            {k: v for k, v in r.items() if k != "seconds"} for r in h2
        ]


def test_ctrl_c_while_workers_start_exits_130_promptly(tmp_path, tiny):
    """Ctrl-C (SIGINT to the process group) in a compare's first second: the workers are still
    importing; the runs they were about to start must not train to their end (here ~minutes)."""
    import signal
    import subprocess
    import sys
    import time

    import yaml

    raw = tiny(variants={"a": {}, "b": {"optim.lr": 0.01}}, seeds=[0, 1])
    raw["base"]["data"] = {"name": "delivery", "n": 3000}
    raw["base"]["train"] = {**raw["base"]["train"], "max_epochs": 5000}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(raw))
    argv = [sys.executable, "-m", "trainwell", "compare", str(tmp_path / "exp.yaml"), "--workers", "2"]
    # a test run as a background job inherits SIGINT ignored, which the compare (like any background job) keeps:
    # the compare starts with Ctrl-C at its default, as from a terminal
    proc = subprocess.Popen(
        [*argv, "--out", str(tmp_path / "out")],
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    while " jobs) on " not in (line := proc.stderr.readline()) and line:  # the pool is about to start
        pass
    time.sleep(0.3)  # the workers are being spawned or are importing torch
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-1500:]
    assert time.monotonic() - started < 45, "the compare waited for runs that started after Ctrl-C"
    assert "interrupted: 0 of 4 runs finished" in err


def test_lr_auto_in_a_variant_of_an_ensemble(tmp_path, tiny):
    """The range test runs in the worker on one member; the found rate is what config.yaml records."""
    import yaml

    raw = tiny(variants={"fixed": {}, "auto": {"optim.lr": "auto"}}, seeds=[0])
    raw["base"]["train"] = {**raw["base"]["train"], "members": 2}
    result = compare(parse_experiment(raw), tmp_path / "out", workers=0, quiet=True, baselines=False)
    assert [r["status"] for r in result.rows] == ["ok", "ok"], [r["error"] for r in result.rows]
    lr = yaml.safe_load((tmp_path / "out" / "runs" / "auto" / "seed-0" / "config.yaml").read_text())["optim"]["lr"]
    assert isinstance(lr, float) and (tmp_path / "out" / "runs" / "auto" / "seed-0" / "lr_find.csv").exists()


def test_a_finished_compare_of_auto_configs_run_again_keeps_every_run(tmp_path, tiny):
    # "auto" batch, step budget and numeric embedding are resolved when a run is built, and config.yaml holds the
    # resolved values: the plan matches them, so a finished compare of the tabular preset's fields trains nothing again
    raw = tiny(variants={"adam": {}, "lower": {"optim.lr": 1e-3}}, seeds=1)
    raw["base"]["train"].update(batch_size="auto", max_steps="auto", val_every="auto")
    raw["base"]["model"]["numeric_embedding"] = "auto"
    exp = parse_experiment(raw)
    out = tmp_path / "out"
    compare(exp, out, workers=0, quiet=True, baselines=False)
    written = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/*/metrics.json")}
    assert len(written) == 2
    lines = []
    result = compare(exp, out, workers=0, say=lines.append, baselines=False)
    assert result.complete and {p: p.stat().st_mtime_ns for p in written} == written
    assert any("2 finished runs kept from an earlier compare; 0 to run" in line for line in lines)


def test_a_damaged_config_yaml_retrains_its_run_instead_of_hanging_or_crashing(tmp_path, tiny):
    out = tmp_path / "out"
    exp = parse_experiment(tiny(variants={"a": {}, "b": {"optim.lr": 0.01}}, seeds=1))
    compare(exp, out, workers=0, quiet=True, baselines=False)
    kept = out / "runs" / "a" / "seed-0" / "metrics.json"
    kept_time = kept.stat().st_mtime_ns
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, n in zip("abcdefgh", "bcdefghi")
    )
    (out / "runs" / "b" / "seed-0" / "config.yaml").write_text(laughs)  # 10**9 values once its aliases expand
    lines = []
    compare(exp, out, workers=0, say=lines.append, baselines=False)
    assert kept.stat().st_mtime_ns == kept_time  # untouched: not rerun
    assert "lr: 0.01" in (out / "runs" / "b" / "seed-0" / "config.yaml").read_text()  # trained again
    assert any("1 finished run kept from an earlier compare; 1 to run" in line for line in lines)
