"""Live progress: a redrawing line on a terminal, plain rate-limited lines in a log file."""

import io

from trainwell.progress import Progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def row(epoch):
    return {"epoch": epoch, "train_loss": 0.5, "val_loss": 0.4, "lr": 1e-3, "grad_norm_mean": 1.0, "seconds": 2.0}


def run_epochs(progress, clock, epochs, steps, seconds_per_step):
    progress("start", lines=["model: mlp"], notes=[], max_epochs=epochs)
    for e in range(1, epochs + 1):
        for s in range(1, steps + 1):
            clock.now += seconds_per_step
            progress("step", step=s, steps=steps, rows=s * 512, loss=lambda: 0.25)
        progress("epoch_end", row=row(e))
    progress("end", stop_reason="max_epochs")


def test_terminal_redraws_one_line_within_an_epoch():
    clock, out = Clock(), Terminal()
    run_epochs(Progress(stream=out, clock=clock), clock, epochs=2, steps=100, seconds_per_step=0.05)
    text = out.getvalue()
    assert text.count("\r\x1b[2K  step ") >= 20 and "rows/s" in text and "ETA" in text and "train 0.2500" in text
    assert text.count("\n") == 3  # the start line and one plain line per epoch: steps never add lines
    assert "\r\x1b[2Kepoch 2/2" in text  # the live line is cleared before a plain line


def log_text(path, run):
    with open(path, "w+") as out:
        run(out)
        out.seek(0)
        return out.read()


def test_log_file_gets_at_most_a_line_per_second_and_early_life(tmp_path):
    clock = Clock()
    text = log_text(
        tmp_path / "a.log",
        lambda out: run_epochs(Progress(stream=out, clock=clock), clock, epochs=50, steps=10, seconds_per_step=0.01),
    )  # 0.1 s epochs
    lines = text.splitlines()
    assert "\r" not in text
    epochs = [line for line in lines if line.startswith("epoch")]
    assert epochs[0].startswith("epoch  1/50") and epochs[-1].startswith("epoch 50/50")  # first and last always
    assert len(epochs) <= 5 * 1 + 2  # 5 s of training: at most one line per second (+ first and last)
    clock = Clock()
    text = log_text(
        tmp_path / "b.log",
        lambda out: run_epochs(Progress(stream=out, clock=clock), clock, epochs=1, steps=1000, seconds_per_step=0.05),
    )  # a 50 s epoch
    steps = [line for line in text.splitlines() if line.startswith("  step")]
    assert steps and 1 <= len(steps) <= 1 + 50 / 10  # the first after ~1 s, then every 10 s
    assert steps[0].startswith("  step 21/1000")  # 1.05 s into the epoch: progress shows within 2 s


def test_quiet_shows_only_what_loading_inferred():
    clock, out = Clock(), Terminal()
    progress = Progress(quiet=True, stream=out, clock=clock)
    progress("start", lines=["model: mlp"], notes=["task: regression"], max_epochs=1)
    progress("step", step=5, steps=10, rows=100, loss=lambda: 1.0)
    progress("epoch_end", row=row(1))
    assert out.getvalue() == "task: regression\n"
