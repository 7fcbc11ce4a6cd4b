"""Command line: parses arguments and calls the library; nothing else.

Exit statuses: 0 done; 1 failed (a run's loss became non-finite, or the system refused, e.g. a full disk) or `check`
found warnings; 2 bad input (one line on stderr, never a traceback); 130 interrupted (Ctrl-C, SIGINT or SIGTERM,
however it arrives); 141 standard output closed early (`| head`). Only the standard library is imported at start-up,
so --help and argument errors answer at once; torch and pandas are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any, Callable, NoReturn, Sequence

from .errors import TrainwellError
from .signals import interrupts_noticed

EXIT_BAD_INPUT = 2
EXIT_TRAINING_FAILED = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a reader that went away


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of usage + error
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _overrides(pairs: Sequence[str] | None) -> dict[str, Any]:
    from .layers import parse_override  # lazy for start-up: it imports PyYAML

    return dict(parse_override(p) for p in pairs or [])


def _config(args: argparse.Namespace) -> tuple[Any, Any]:
    """The RunConfig that train's and lr-find's arguments describe, and the `search: N` its file asks for."""
    from .compose import compose_search  # lazy for start-up: only train and lr-find compose a config

    overrides = _overrides(args.set)
    if args.data:
        overrides.update({"data.name": "csv", "data.path": args.data})
        if args.target is None:
            raise TrainwellError("--data needs --target COLUMN naming the column to predict")
        overrides["data.target"] = args.target
        if not args.preset and not args.config:  # a table on its own gets the production recipe
            from pathlib import Path

            args.preset = "tabular"
            overrides.setdefault("name", Path(args.data).stem)
    elif args.target or args.test_data:
        raise TrainwellError("--target and --test-data go with --data CSV")
    if args.test_data:
        overrides["data.test_path"] = args.test_data
    if args.task:
        overrides["data.task"] = args.task
    if args.seed is not None:
        overrides["train.seed"] = args.seed
    if args.quiet:
        overrides["train.quiet"] = True
    if not (args.config or args.preset or args.data):
        raise TrainwellError(
            "say what to train: a CONFIG file, --preset NAME (see 'trainwell presets') or --data CSV --target COLUMN"
        )
    return compose_search(preset=args.preset, file=args.config, sets=overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from .distributed import is_follower
    from .rundir import check_run_out
    from .runner import train

    if args.search is not None or args.time is not None:
        return cmd_search(args, *_config(args))
    if args.out is not None and not is_follower():  # under torchrun rank 0 checks and writes it
        check_run_out(args.out)  # refuse a bad --out before reading any input
    cfg, trials = _config(args)
    if trials is not None or args.dials is not None:  # the config file asks for a search (--dials alone: refused there)
        return cmd_search(args, cfg, trials)
    result = train(cfg, out=args.out)
    if is_follower():
        return _report(result)
    from .advice import for_result

    for line in for_result(result):
        print(f"advice: {line}")
    return _report(result)


def cmd_search(args: argparse.Namespace, cfg: Any, trials: Any) -> int:
    """train --search N (or a config's search: N): configurations around the default, the best kept as an ensemble."""
    from .tune import search

    dials = [d.strip() for d in args.dials.split(",") if d.strip()] if args.dials is not None else None
    say = (lambda _t: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    trials = args.search if args.search is not None else trials  # --search N wins over the file's
    result = search(cfg, trials, out=args.out, dials=dials, say=say, seconds=args.time)
    print(*result.lines(), sep="\n", file=sys.stderr if result.interrupted else sys.stdout)
    return EXIT_INTERRUPTED if result.interrupted else 0


def _report(result: Any) -> int:
    from .distributed import is_follower
    from .loop import INTERRUPTED, NOT_FINITE

    if is_follower():  # a torchrun process other than rank 0: rank 0 reports
        return {INTERRUPTED: EXIT_INTERRUPTED, NOT_FINITE: EXIT_TRAINING_FAILED}.get(result.stop_reason, 0)
    if result.stop_reason == INTERRUPTED:
        if result.config is not None and result.config.train.quiet:  # otherwise progress has printed it
            print(f"trainwell: {result.message}", file=sys.stderr)
        return EXIT_INTERRUPTED
    shown = {
        k: v
        for k, v in result.metrics.items()
        if k.startswith("test_") or k in ("epochs_run", "best_epoch", "wall_seconds")
    }
    print(json.dumps(shown, indent=2))
    print(f"results in {result.run_dir}  (history.csv, metrics.json, curves.svg, best.pt)")
    if result.stop_reason == NOT_FINITE:
        print(f"trainwell: {result.message}", file=sys.stderr)
        return EXIT_TRAINING_FAILED
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    from .lr_find import lr_find

    for line in lr_find(_config(args)[0], out=args.out, steps=args.steps).lines():
        print(line)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from .paths import check_text
    from .runner import resume

    check_text(args.run_dir, "run directory")
    return _report(resume(args.run_dir, overrides=_overrides(args.set), quiet=True if args.quiet else None))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .inference import evaluate_run

    metrics = evaluate_run(args.run_dir, args.data)
    print(json.dumps(metrics, indent=2))
    if metrics.get("rows_seen_in_training"):
        print(
            f"trainwell: warning: {metrics['rows_seen_in_training']} of {metrics['rows']} rows of {args.data} are rows the run "
            "trained or validated on; these test_* metrics flatter the model: evaluate on rows it never saw",
            file=sys.stderr,
        )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .inference import predict_run

    result = predict_run(args.run_dir, args.input, args.out, overwrite=args.force)
    if args.out is None:
        result.to_csv(sys.stdout, index=False)
    else:
        print(f"{len(result)} predictions written to {args.out}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from .presets import describe

    rows = describe()
    width = max(len(n) for n, _ in rows)
    for name, text in rows:
        print(f"{name:<{width}}  {text}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from . import experiments as ex

    if args.list:
        for name, text in ex.presets.describe():
            print(f"{name:<12}  {text}")
        return 0
    overrides = _overrides(args.set)
    if args.data_path:  # that file (or folder) for every run, whatever the experiment's data (compose.py)
        overrides["data.path"] = args.data_path
    if args.target:
        overrides["data.target"] = args.target
    exp = ex.resolve(args.experiment, args.preset, overrides, args.seeds).with_metric(args.metric)
    out = args.out or f"{ex.DEFAULT_ROOT}/{ex.spec.slug(exp.name)}"
    result = ex.compare(exp, out, workers=args.workers, overrides=overrides, quiet=args.quiet, cluster=args.cluster)
    if result.missing:  # interrupted before every run finished
        return _interrupted([result], args)
    print(ex.console_summary(result))
    print(f"report: {result.out / 'report.html'}  (results.csv, summary.csv, report.md)")
    return 0


def _interrupted(results: list[Any], args: argparse.Namespace) -> int:
    """One line: how many runs finished and the command that continues (the report covers the finished ones)."""
    import shlex

    from . import experiments as ex

    print(ex.interrupted_line(results, shlex.join(["trainwell", *getattr(args, "argv", [])])), file=sys.stderr)
    return EXIT_INTERRUPTED


def cmd_demo(args: argparse.Namespace) -> int:
    from . import experiments as ex

    results, report = ex.demo(
        args.out or f"{ex.DEFAULT_ROOT}/demo", seeds=args.seeds, workers=args.workers, quiet=args.quiet
    )
    if any(r.missing for r in results):
        return _interrupted(results, args)
    print(ex.suite_summary(results))
    print(f"report: {report}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """The lessons' rules on a model of one's own: 0 nothing to warn about, 1 warnings."""
    from .check_io import check_command

    report = check_command(args.model, args.input_shape, args.input_dtype, args.batch_size, args.train_size)
    print(json.dumps(report.to_dicts(), indent=2) if args.json else "\n".join(report.lines()))
    return 1 if report.warnings else 0


def _check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="MODULE:CALLABLE, e.g. nets:Net or nets.py:Net (called with no arguments)")
    p.add_argument("--input-shape", required=True, help="one sample's shape without the batch, e.g. 3,32,32 or 8")
    p.add_argument("--input-dtype", default="float32", help="float32 (default), float64 or int64")
    p.add_argument("--batch-size", type=int, help="training batch size (default: train.batch_size's)")
    p.add_argument("--train-size", type=int, help="training rows: checks for a last batch of one row")
    p.add_argument("--json", action="store_true", help="the findings as JSON")


def _run_arguments(p: argparse.ArgumentParser) -> None:
    """What to train: the arguments train and lr-find share."""
    p.add_argument("config", nargs="?", help="YAML config file (sections data, model, optim, schedule, train)")
    p.add_argument("--preset", help="start from a named preset (see 'trainwell presets'); combines with --data")
    p.add_argument("--data", help="CSV or Parquet file to train on (alone: starts from the 'tabular' preset)")
    p.add_argument("--target", help="name of the target column in --data")
    p.add_argument("--test-data", help="separate test file (otherwise 20%% of --data is held out)")
    p.add_argument(
        "--task",
        choices=["regression", "classification"],
        help="default: inferred from the target (asked for when ambiguous)",
    )
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a field, e.g. train.max_epochs=50 (repeatable)"
    )
    p.add_argument("--seed", type=int, help="training seed (train.seed)")
    p.add_argument("--quiet", action="store_true", help="no live progress display")


Add = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trainwell", description="Train PyTorch networks with the production recipe.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=fn)
        return p

    _training_commands(add)
    _run_commands(add)
    _compare_commands(add)
    return parser


def _training_commands(add: Add) -> None:
    """train and lr-find: what to train, and where its files go."""
    p = add("train", cmd_train, "train a network and write a run directory")
    _run_arguments(p)
    p.add_argument("--out", help="run directory (default: runs/NAME-TIMESTAMP; with --search runs/NAME-searchN)")
    p.add_argument("--search", type=int, metavar="N", help="N configurations around the default, the best kept")
    p.add_argument("--time", type=float, metavar="SECONDS", help="a search's training-time budget (alone: 64 at most)")
    p.add_argument("--dials", help="with --search: the dials to vary, comma-separated (default: all; see the README)")

    p = add("lr-find", cmd_lr_find, "learning-rate range test: suggested rates, lr_find.png and lr_find.csv")
    _run_arguments(p)
    p.add_argument("--steps", type=int, default=100, help="optimizer steps of the test (default 100)")
    p.add_argument("--out", help="folder for lr_find.csv and lr_find.png (default: runs/NAME-lr-find-TIMESTAMP)")


def _run_commands(add: Add) -> None:
    """resume, evaluate and predict (commands on a run directory), presets, and check (a model of one's own)."""
    p = add("resume", cmd_resume, "continue an interrupted run from its last.pt")
    p.add_argument("run_dir")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="train.max_epochs (may only grow) or train.quiet"
    )
    p.add_argument("--quiet", action="store_true")

    p = add("evaluate", cmd_evaluate, "test metrics of a run's best weights")
    p.add_argument("run_dir")
    p.add_argument("--data", help="labelled CSV to evaluate on (default: the run's own test split)")

    p = add("predict", cmd_predict, "predict the target for the rows of a CSV")
    p.add_argument("run_dir")
    p.add_argument("input", help="CSV with the run's feature columns")
    p.add_argument(
        "--out", help="write predictions here (default: standard output); its folder is created when missing"
    )
    p.add_argument(
        "--force", action="store_true", help="replace an existing --out file (never the input or a run's own files)"
    )

    add("presets", cmd_presets, "list the built-in presets")

    p = add("check", cmd_check, "check a model of one's own against the lessons' rules (exit 1: warnings)")
    _check_arguments(p)


def _compare_commands(add: Add) -> None:
    """compare and demo: experiments over seeds, with a report."""
    p = add("compare", cmd_compare, "compare training choices over seeds: an experiment file or a built-in one")
    p.add_argument("experiment", nargs="?", help="experiment YAML (base, variants and/or grid, seeds)")
    p.add_argument("--preset", help="a built-in experiment instead of a file (see --list)")
    p.add_argument("--list", action="store_true", help="list the built-in experiments")
    p.add_argument("--seeds", type=int, help="seeds per variant (0..N-1), replacing the experiment's")
    p.add_argument(
        "--data",
        "--data-path",
        dest="data_path",
        help="CSV/Parquet file (or data folder) for every run, whatever data the experiment names; "
        "cnn-upgrade: a CIFAR-10 folder moves it to cifar10",
    )
    p.add_argument("--target", help="name of the target column in --data")
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument(
        "--metric",
        help="test metric that ranks the variants, e.g. rmse, roc_auc, log_loss (default: RMSE for regression; "
        "log loss for classification, ROC AUC when classes are weighted; the lessons' data keep their lesson's)",
    )
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a field in every run, e.g. train.max_epochs=20"
    )
    p.add_argument("--out", help="output folder (default: reports/NAME); an interrupted compare continues there")
    p.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run on a Dask cluster: a scheduler address (tcp://host:8786) or 'local' (needs trainwell[cluster])",
    )

    p = add(
        "demo",
        cmd_demo,
        "the main job: the tabular lesson's comparisons and the recipe ablation on delivery, with a report",
    )
    p.add_argument("--out", help="output folder (default: reports/demo)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per variant (default 3)")
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument("--quiet", action="store_true", help="no per-run progress lines")


def _quiet_stdout() -> None:
    """After a broken pipe: point standard output at /dev/null so the flush at exit is silent."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _say(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(f"trainwell: {text}", file=sys.stderr)


def only_train_under_torchrun(args: argparse.Namespace) -> None:
    from .distributed import launch

    if launch() is not None and args.func not in (cmd_train, cmd_resume):
        raise TrainwellError(
            f"'trainwell {args.command}' does not run under torchrun; only train and resume do (a compare spreads runs over processes itself)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse has printed its one line (or --help)
        return int(stop.code or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    args.argv = argv  # an interrupted compare prints the command that continues it
    with interrupts_noticed() as noticed:
        try:
            only_train_under_torchrun(args)
            status = args.func(args)
        except TrainwellError as exc:
            _say(f"error: {exc}")
            return EXIT_INTERRUPTED if noticed() else EXIT_BAD_INPUT
        except KeyboardInterrupt:
            _say("interrupted")
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            _quiet_stdout()
            return EXIT_BROKEN_PIPE
        except OSError as exc:  # the system refused a file: one line, not a traceback
            where = f": {exc.filename}" if exc.filename else ""
            _say(f"error: {exc.strerror or exc}{where}"[:300])
            return EXIT_TRAINING_FAILED
        if status == 0 and noticed():
            _say("interrupted (the command had finished its work)")
            return EXIT_INTERRUPTED
        return status


if __name__ == "__main__":
    sys.exit(main())
