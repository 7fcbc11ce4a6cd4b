"""The LR finder: a learning-rate range test on a copy of a run, its files, and `lr: auto`.

The test trains a deep copy of the model with a fresh optimizer carrying the original's state,
drawing batches and augmentation from forks of the run's generators and dropout from a forked
global generator, so the run itself is left exactly as it was: a run started afterwards is
identical to one started without the test. Only `range_test_trainer` knows the training engine;
the arithmetic lives in lr_range.py.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from . import lr_range, paths, rundir
from .build import build_trainer
from .compose import compose
from .errors import ConfigError, TrainwellError
from .loop import Trainer, clip_gradients, gather
from .optim import FlatOptimizer
from .run_config import RunConfig
from .sections import AUTO

CSV_NAME, PLOT_NAME = "lr_find.csv", "lr_find.png"
PLACEHOLDER_LR = 1e-3  # builds the trainer while the lr is still "auto"; the test sets its own rates


def forked(gen: torch.Generator) -> torch.Generator:
    """A new generator in the same state: drawing from it leaves `gen` untouched."""
    g = torch.Generator(device=gen.device)
    g.set_state(gen.get_state())
    return g


def batches(n: int, batch_size: int, gen: torch.Generator, device: torch.device) -> Iterator[torch.Tensor]:
    """Index batches of full size from successive shuffles, for as long as they are wanted."""
    size = min(batch_size, n)
    while True:
        perm = torch.randperm(n, generator=gen).to(device)
        for i in range(0, n - size + 1, size):
            yield perm[i : i + size]


def trainer_step(t: Trainer) -> Callable[[float], float]:
    """step(lr) -> loss on a copy of t's (single) member and optimizer state; t is never touched."""
    member = t.members[0]
    stack = t.stack.copy()
    optimizer = FlatOptimizer(stack.flat, stack.grad, stack.decay_size, [member.cfg.optim])
    for name, buf in t.optimizer.state.items():  # the copy continues from the original's moments
        optimizer.state[name].copy_(buf)
    optimizer.steps[0].copy_(t.optimizer.steps[0])
    gens = {k: forked(g) for k, g in member.generators.items()}
    order = batches(len(t.data.x_train), t.batch_size, gens["shuffle"], t.device)

    def step(lr: float) -> float:
        idx = next(order).unsqueeze(0)
        x, y = t.data.inputs(gather(t.data.x_train, idx)), gather(t.data.y_train, idx)
        if t.data.augment is not None:
            x = t.data.augment(x[0], gens["augment"]).unsqueeze(0)
        with t.autocast():
            losses = stack.train_step(x, y, t.loss_fn, [gens["dropout"]])
        clip_gradients(stack.grad, [member.cfg.train.clip_norm])  # as the run would clip
        optimizer.step([0], [lr])
        return float(losses[0])

    return step


def range_test_trainer(
    t: Trainer, steps: int = lr_range.STEPS, start: float = lr_range.START_LR, end: float = lr_range.END_LR
) -> lr_range.RangeTest:
    devices = [t.device.index or 0] if t.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # dropout draws from the global generator
        test = lr_range.run_range_test(trainer_step(t), start, end, steps)
    if len(test.lrs) < 4:  # the diverging step is left out, and suggestions need three more
        raise TrainwellError(
            f"the range test diverged after {len(test.lrs)} steps from lr {start:g}; there is nothing to suggest"
        )
    return test


@dataclass
class LrFindResult:
    test: lr_range.RangeTest
    suggestions: dict[str, float]
    suggested: float  # by lr_range.AUTO_RULE
    out: Path | None

    def lines(self) -> list[str]:
        return self.test.summary() + ([f"written: {self.out / CSV_NAME}, {self.out / PLOT_NAME}"] if self.out else [])


def write_csv(test: lr_range.RangeTest, path: Path) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["lr", "loss", "smoothed_loss"])
    writer.writerows(
        [f"{lr:.6g}", f"{loss:.6g}", f"{sm:.6g}"] for lr, loss, sm in zip(test.lrs, test.losses, test.smoothed)
    )
    rundir.write_text_atomic(path, buf.getvalue())


def plot(test: lr_range.RangeTest, suggestions: dict[str, float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(test.lrs, test.losses, color="0.75", linewidth=0.8, label="loss per step")
    ax.plot(test.lrs, test.smoothed, color="tab:blue", label="smoothed loss")
    for (rule, lr), colour in zip(suggestions.items(), ("tab:red", "tab:green", "tab:orange")):
        ax.axvline(lr, color=colour, linestyle="--", label=f"{rule}: {lr:.2g}")
    finite = [v for v in test.smoothed if math.isfinite(v)]
    ax.set_ylim(min(finite) - 0.05 * abs(min(finite)), min(max(finite), lr_range.STOP_FACTOR * min(finite)) * 1.05)
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def with_placeholder_lr(cfg: RunConfig) -> RunConfig:
    """A copy whose "auto" rates are numbers, so that the trainer can be built, with one member:
    an ensemble's members share one config, so the test on the first member gives the rate for all."""
    placeholders: dict[str, Any] = {"train.members": 1}
    if cfg.optim.lr == AUTO:
        placeholders["optim.lr"] = PLACEHOLDER_LR
    if cfg.schedule.max_lr == AUTO:
        placeholders["schedule.max_lr"] = None
    return compose(base=cfg, sets=placeholders, quiet=True)


def find_for_config(cfg: RunConfig, out: Path | None, steps: int = lr_range.STEPS, **given: Any) -> LrFindResult:
    """Build the run the config describes, range-test a copy of it, write the files into `out`
    (created only once the test has succeeded, so a failed test leaves no folder behind).
    `given`: a model, data or loss of one's own, as build.build_trainer takes them."""
    trainer, _, _ = build_trainer([with_placeholder_lr(cfg)], [out or Path(".")], [lambda *a, **k: None], **given)
    test = range_test_trainer(trainer, steps=steps)
    sugg = test.suggestions
    if out is not None:
        paths.prepare_dir(out, "--out")
        write_csv(test, out / CSV_NAME)
        plot(test, sugg, out / PLOT_NAME, title=f"learning-rate range test: {cfg.name}")
    return LrFindResult(test, sugg, sugg[lr_range.AUTO_RULE], out)


def lr_find(
    config: RunConfig | dict[str, Any], out: str | Path | None = None, steps: int = lr_range.STEPS
) -> LrFindResult:
    """Range-test the run a config describes; writes lr_find.csv and lr_find.png into `out`."""
    if steps < 4:
        raise ConfigError(f"a range test of {steps} steps is too short: give 4 or more (100 is usual)")
    cfg = compose(base=config)
    if out is not None and any((Path(out) / name).exists() for name in (CSV_NAME, PLOT_NAME)):
        raise TrainwellError(f"--out {str(out)!r} already holds a range test (lr_find.csv/png); choose another folder")
    folder = rundir.check_run_out(out) if out is not None else rundir.default_run_dir(f"{cfg.name}-lr-find")
    return find_for_config(cfg, folder, steps)


def resolve_auto_lr(
    cfg: RunConfig, run_dir: Path, say: Callable[[str], None] = lambda _: None, **given: Any
) -> RunConfig:
    """Replace "auto" in optim.lr / schedule.max_lr by the range test's suggestion (files go into run_dir)."""
    if AUTO not in (cfg.optim.lr, cfg.schedule.max_lr):
        return cfg
    result = find_for_config(cfg, run_dir, **given)
    suggested = {}
    if cfg.optim.lr == AUTO:
        suggested["optim.lr"] = result.suggested
    if cfg.schedule.max_lr == AUTO:
        suggested["schedule.max_lr"] = result.suggested
    cfg = compose(base=cfg, sets=suggested)
    fields = list(suggested)
    for line in result.lines():
        say(line)
    say(f"{' and '.join(fields)} = {result.suggested:.3g} (the {lr_range.AUTO_RULE} suggestion)")
    return cfg


__all__ = ["lr_find", "LrFindResult", "range_test_trainer", "resolve_auto_lr"]
