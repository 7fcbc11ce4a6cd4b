"""trainwell's command-line arguments: every command, its arguments and their help, and nothing that runs.

Only the standard library is imported, so --help and argument errors answer at once."""

from __future__ import annotations

import argparse
from typing import Callable, NoReturn

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of usage + error
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


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


Handler = Callable[[argparse.Namespace], int]
Add = Callable[[str, str], argparse.ArgumentParser]


def build_parser(handlers: dict[str, Handler]) -> argparse.ArgumentParser:
    """trainwell's arguments; `handlers` maps each command's name to the function that runs it."""
    parser = OneLineParser(prog="trainwell", description="Train PyTorch networks with the production recipe.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=handlers[name])
        return p

    _training_commands(add)
    _run_commands(add)
    _compare_commands(add)
    return parser


def _training_commands(add: Add) -> None:
    """train and lr-find: what to train, and where its files go."""
    p = add("train", "train a network and write a run directory")
    _run_arguments(p)
    p.add_argument("--out", help="run directory (default: runs/NAME-TIMESTAMP; with --search runs/NAME-searchN)")
    p.add_argument("--search", type=int, metavar="N", help="N configurations around the default, the best kept")
    p.add_argument("--time", type=float, metavar="SECONDS", help="a search's training-time budget (alone: 64 at most)")
    p.add_argument(
        "--dials",
        help="with --search: the dials to vary, comma-separated (default: those within one stack; see the README)",
    )
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="with --search: train its stacks on a Dask cluster, tcp://host:8786 or 'local' (needs trainwell[cluster])",
    )

    p = add("lr-find", "learning-rate range test: suggested rates, lr_find.png and lr_find.csv")
    _run_arguments(p)
    p.add_argument("--steps", type=int, default=100, help="optimizer steps of the test (default 100)")
    p.add_argument("--out", help="folder for lr_find.csv and lr_find.png (default: runs/NAME-lr-find-TIMESTAMP)")


def _run_commands(add: Add) -> None:
    """resume, evaluate and predict (commands on a run directory), presets, and check (a model of one's own)."""
    p = add("resume", "continue an interrupted run from its last.pt")
    p.add_argument("run_dir")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="train.max_epochs (may only grow) or train.quiet"
    )
    p.add_argument("--quiet", action="store_true")

    p = add("evaluate", "test metrics of a run's best weights")
    p.add_argument("run_dir")
    p.add_argument("--data", help="labelled CSV to evaluate on (default: the run's own test split)")

    p = add("predict", "predict the target for the rows of a CSV")
    p.add_argument("run_dir")
    p.add_argument("input", help="CSV with the run's feature columns")
    p.add_argument(
        "--out", help="write predictions here (default: standard output); its folder is created when missing"
    )
    p.add_argument(
        "--force", action="store_true", help="replace an existing --out file (never the input or a run's own files)"
    )

    add("presets", "list the built-in presets")

    p = add("check", "check a model of one's own against the lessons' rules (exit 1: warnings)")
    _check_arguments(p)


def _compare_commands(add: Add) -> None:
    """compare and demo: experiments over seeds, with a report."""
    p = add("compare", "compare training choices over seeds: an experiment file or a built-in one")
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
        "the main job: the tabular lesson's comparisons and the recipe ablation on delivery, with a report",
    )
    p.add_argument("--out", help="output folder (default: reports/demo)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per variant (default 3)")
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument("--quiet", action="store_true", help="no per-run progress lines")
