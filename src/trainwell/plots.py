"""curves.png: losses, the validation metric and the learning rate against epochs."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curves(history: list[dict[str, Any]], path: Path, title: str = "", best_epoch: int | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    metric = next((k for k in ("val_mae", "val_accuracy") if history and k in history[0]), None)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    ax.plot(epochs, [r["train_loss"] for r in history], label="train loss")
    ax.plot(epochs, [r["val_loss"] for r in history], label="validation loss")
    ax.set(xlabel="epoch", ylabel="loss", title="loss")
    if history and all(r["train_loss"] > 0 and r["val_loss"] > 0 for r in history):
        ax.set_yscale("log")
    if metric:
        axes[1].plot(epochs, [r[metric] for r in history], color="tab:green")
        axes[1].set(xlabel="epoch", ylabel=metric, title=metric.replace("_", " "))
    axes[2].plot(epochs, [r["lr"] for r in history], color="tab:purple")
    axes[2].set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    axes[2].set_yscale("log")
    for a in axes[:2]:
        if best_epoch is not None:
            a.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch {best_epoch}")
    axes[0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
