"""Command line: parses arguments and calls the library; nothing else.

Bad input of any kind exits with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, NoReturn, Sequence

from .errors import TrainwellError

EXIT_BAD_INPUT = 2
EXIT_TRAINING_FAILED = 1
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of usage + error
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _overrides(pairs: Sequence[str] | None) -> dict[str, Any]:
    from .config import parse_override

    return dict(parse_override(p) for p in pairs or [])


def _config(args: argparse.Namespace) -> Any:
    """The RunConfig that train's and lr-find's arguments describe."""
    from .config import load_config

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
        raise TrainwellError("say what to train: a CONFIG file, --preset NAME (see 'trainwell presets') or --data CSV --target COLUMN")
    return load_config(args.config, preset=args.preset, overrides=overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from .runner import train

    result = train(_config(args), out=args.out)
    from .experiments.advice import for_result

    for line in for_result(result):
        print(f"advice: {line}")
    return _report(result)


def _report(result: Any) -> int:
    from .fit import INTERRUPTED, NOT_FINITE

    if result.stop_reason == INTERRUPTED:
        return EXIT_INTERRUPTED
    shown = {k: v for k, v in result.metrics.items() if k.startswith("test_") or k in ("epochs_run", "best_epoch", "wall_seconds")}
    print(json.dumps(shown, indent=2))
    print(f"results in {result.run_dir}  (history.csv, metrics.json, curves.svg, best.pt)")
    if result.stop_reason == NOT_FINITE:
        print(f"trainwell: {result.message}", file=sys.stderr)
        return EXIT_TRAINING_FAILED
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    from .lr_find import lr_find

    for line in lr_find(_config(args), out=args.out, steps=args.steps).lines():
        print(line)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from .runner import resume

    return _report(resume(args.run_dir, overrides=_overrides(args.set), quiet=True if args.quiet else None))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .inference import evaluate_run

    print(json.dumps(evaluate_run(args.run_dir, args.data), indent=2))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .inference import predict_run

    result = predict_run(args.run_dir, args.input, args.out)
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
    if args.data_path:
        overrides["data.path"] = args.data_path
    exp = ex.resolve(args.experiment, args.preset, overrides, args.seeds)
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

    results, report = ex.demo(args.out or f"{ex.DEFAULT_ROOT}/demo", seeds=args.seeds, workers=args.workers, quiet=args.quiet)
    if any(r.missing for r in results):
        return _interrupted(results, args)
    print(ex.suite_summary(results))
    print(f"report: {report}")
    return 0


def _run_arguments(p: argparse.ArgumentParser) -> None:
    """What to train: the arguments train and lr-find share."""
    p.add_argument("config", nargs="?", help="YAML config file (sections data, model, optim, schedule, train)")
    p.add_argument("--preset", help="start from a named preset (see 'trainwell presets'); combines with --data")
    p.add_argument("--data", help="CSV or Parquet file to train on (alone: starts from the 'tabular' preset)")
    p.add_argument("--target", help="name of the target column in --data")
    p.add_argument("--test-data", help="separate test file (otherwise 20%% of --data is held out)")
    p.add_argument("--task", choices=["regression", "classification"], help="default: inferred from the target (asked for when ambiguous)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field, e.g. train.max_epochs=50 (repeatable)")
    p.add_argument("--seed", type=int, help="training seed (train.seed)")
    p.add_argument("--quiet", action="store_true", help="no live progress display")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trainwell", description="Train PyTorch networks with the production recipe.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {}

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=fn)
        commands[name] = fn
        return p

    p = add("train", cmd_train, "train a network and write a run directory")
    _run_arguments(p)
    p.add_argument("--out", help="run directory (default: runs/NAME-TIMESTAMP)")

    p = add("lr-find", cmd_lr_find, "learning-rate range test: suggested rates, lr_find.png and lr_find.csv")
    _run_arguments(p)
    p.add_argument("--steps", type=int, default=100, help="optimizer steps of the test (default 100)")
    p.add_argument("--out", help="folder for lr_find.csv and lr_find.png (default: runs/NAME-lr-find-TIMESTAMP)")

    p = add("resume", cmd_resume, "continue an interrupted run from its last.pt")
    p.add_argument("run_dir")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="train.max_epochs (may only grow) or train.quiet")
    p.add_argument("--quiet", action="store_true")

    p = add("evaluate", cmd_evaluate, "test metrics of a run's best weights")
    p.add_argument("run_dir")
    p.add_argument("--data", help="labelled CSV to evaluate on (default: the run's own test split)")

    p = add("predict", cmd_predict, "predict the target for the rows of a CSV")
    p.add_argument("run_dir")
    p.add_argument("input", help="CSV with the run's feature columns")
    p.add_argument("--out", help="write predictions here (default: standard output)")

    add("presets", cmd_presets, "list the built-in presets")

    p = add("compare", cmd_compare, "compare training choices over seeds: an experiment file or a built-in one")
    p.add_argument("experiment", nargs="?", help="experiment YAML (base, variants and/or grid, seeds)")
    p.add_argument("--preset", help="a built-in experiment instead of a file (see --list)")
    p.add_argument("--list", action="store_true", help="list the built-in experiments")
    p.add_argument("--seeds", type=int, help="seeds per variant (0..N-1), replacing the experiment's")
    p.add_argument("--data-path", help="data folder or file for every run (cnn-upgrade: a CIFAR-10 folder moves it to cifar10)")
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field in every run, e.g. train.max_epochs=20")
    p.add_argument("--out", help="output folder (default: reports/NAME); an interrupted compare continues there")
    p.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    p.add_argument("--cluster", metavar="ADDRESS", help="run on a Dask cluster: a scheduler address (tcp://host:8786) or 'local' (needs trainwell[cluster])")

    p = add("demo", cmd_demo, "the main job: the tabular lesson's comparisons and the recipe ablation on delivery, with a report")
    p.add_argument("--out", help="output folder (default: reports/demo)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per variant (default 3)")
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse has printed its one line (or --help)
        return int(stop.code or 0)
    args.argv = argv  # an interrupted compare prints the command that continues it
    try:
        return args.func(args)
    except TrainwellError as exc:
        print(f"trainwell: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("trainwell: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
