"""Command line: parses arguments and calls the library; nothing else.

Exit statuses: 0 done; 1 failed (a run's loss became non-finite, or the system refused, e.g. a full disk) or `check`
found warnings; 2 bad input (one line on stderr, never a traceback); 130 interrupted (Ctrl-C, SIGINT or SIGTERM,
however it arrives); 141 standard output closed early (`| head`). Only the standard library is imported at start-up,
so --help and argument errors answer at once; torch and pandas are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
from typing import Any, Sequence

from .cli_parser import EXIT_BAD_INPUT, build_parser
from .errors import TrainwellError
from .signals import interrupts_noticed

EXIT_TRAINING_FAILED = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a reader that went away


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
    # the config file asks for a search (--dials or --cluster alone: refused there)
    if trials is not None or args.dials is not None or args.cluster is not None:
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
    result = search(cfg, trials, out=args.out, dials=dials, say=say, seconds=args.time, cluster=args.cluster)
    print(*result.lines(), sep="\n", file=sys.stderr if result.interrupted or result.failed else sys.stdout)
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_TRAINING_FAILED if result.failed else 0  # a failed run, not bad input


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
            f"trainwell: warning: {metrics['rows_seen_in_training']} of {metrics['rows']} rows of {args.data} "
            f"are rows the run "
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
            f"'trainwell {args.command}' does not run under torchrun; only train and resume do (a compare "
            f"spreads runs over processes itself)"
        )


HANDLERS = {
    "train": cmd_train,
    "lr-find": cmd_lr_find,
    "resume": cmd_resume,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "presets": cmd_presets,
    "check": cmd_check,
    "compare": cmd_compare,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(HANDLERS).parse_args(argv)
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


def run() -> None:
    """The `trainwell` command and `python -m trainwell`: main(), then exit with its status.
    Before the interpreter's teardown every object still alive is moved out of the cyclic garbage
    collector's reach (gc.freeze): its final collections walked every object torch, pandas,
    scikit-learn and matplotlib had made, 0.7-0.9 s after a command's work was done (1.25 s after
    a schedules compare's 8.5 s, 2 cores). Reference counting still releases the objects, atexit
    handlers still run (multiprocessing joins its workers), and every file trainwell writes has
    been closed (and fsynced) before main() returns; tests call main() and are unaffected."""
    status = main()
    gc.freeze()
    sys.exit(status)


if __name__ == "__main__":
    run()
