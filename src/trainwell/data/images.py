"""Image data held as uint8 tensors (N, C, H, W); batches are normalised and augmented whole.

Augmentation — random crop with zero padding and horizontal flips — works on a whole batch at
once on the batch's device, drawing its randomness from the run's own generator, so it is
reproducible and resumable. There is no per-image Python.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from ..sections import DataConfig
from .bundle import DataBundle
from .registry import DATASETS
from .splits import three_way, train_test_indices


def random_crop_flip(x: torch.Tensor, gen: torch.Generator, padding: int, flip: bool) -> torch.Tensor:
    """Per-image random crops of the zero-padded batch (same size as the input) and flips."""
    n, _, h, w = x.shape
    if padding > 0:
        padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
        # one random offset per image, drawn on the CPU generator, then gathered with index maths
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen).to(x.device)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]  # (n,1,h,1)
        cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]  # (n,1,1,w)
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    if flip:
        flips = (torch.rand(n, generator=gen) < 0.5).to(x.device)
        x = torch.where(flips[:, None, None, None], x.flip(3), x)
    return x


def image_bundle(
    splits: tuple[tuple[np.ndarray, np.ndarray], ...],
    classes: list[str],
    padding: int,
    flip: bool,
    mean: list[float] | None = None,
    std: list[float] | None = None,
) -> DataBundle:
    """Wrap (x uint8 (N,C,H,W), labels) for train/val/test; normalisation from the training split unless given."""
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits
    for name, x, y in (("training", x_tr, y_tr), ("validation", x_va, y_va), ("test", x_te, y_te)):
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != x_tr.shape[1:]:
            raise DataError(
                f"{name} images have shape {tuple(x.shape)} ({x.dtype}); expected uint8 (N, C, H, W) like "
                f"{tuple(x_tr.shape[1:])}"
            )
        if len(y) != len(x):
            raise DataError(f"{name} split has {len(x)} images but {len(y)} labels")
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            raise DataError(f"{name} labels must lie in 0..{len(classes) - 1}; found {int(y.min())}..{int(y.max())}")
    c, h, w = x_tr.shape[1:]
    if min(h, w) < 8 or c not in (1, 3):
        raise DataError(f"images must have 1 or 3 channels and be at least 8×8; got {c}×{h}×{w}")
    if mean is None:
        scaled = x_tr.astype(np.float64) / 255.0
        mean = [float(v) for v in scaled.mean(axis=(0, 2, 3))]
        std = [float(v) for v in scaled.std(axis=(0, 2, 3)) + 1e-6]
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    consts: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def prepare(x: torch.Tensor) -> torch.Tensor:
        if x.device not in consts:
            consts[x.device] = (m.to(x.device), s.to(x.device))
        mean_d, std_d = consts[x.device]
        return (x.float() / 255.0 - mean_d) / std_d

    def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return random_crop_flip(x, gen, padding, flip)

    t = lambda a, dt: torch.as_tensor(np.ascontiguousarray(a), dtype=dt)  # noqa: E731
    return DataBundle(
        task="classification",
        x_train=t(x_tr, torch.uint8),
        y_train=t(y_tr, torch.long),
        x_val=t(x_va, torch.uint8),
        y_val=t(y_va, torch.long),
        x_test=t(x_te, torch.uint8),
        y_test=t(y_te, torch.long),
        input_shape=(c, h, w),
        n_outputs=len(classes),
        default_model="cnn",
        classes=list(classes),
        spec={"kind": "image", "mean": list(mean), "std": list(std), "classes": list(classes)},
        prepare=prepare,
        augment=augment if (padding > 0 or flip) else None,
    )


@DATASETS.register("digits")
def load_digits(cfg: DataConfig) -> DataBundle:
    """scikit-learn's 1,797 handwritten digits, 8×8 grayscale with values 0..16, shipped inside
    scikit-learn (no download). Small shifts help; flips would turn digits into other shapes."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.images * (255.0 / 16.0)).round().astype(np.uint8)[:, None, :, :]
    y = d.target.astype(np.int64)
    if cfg.val_size is not None:
        rest, te = train_test_indices(len(x), cfg.test_fraction, cfg.split_seed)
        frac = cfg.val_size / len(rest)
        tr, va = train_test_indices(len(rest), frac, cfg.split_seed)
        tr, va = rest[tr], rest[va]
    else:
        tr, va, te = three_way(len(x), cfg.test_fraction, cfg.val_fraction, cfg.split_seed)
    padding = 1 if cfg.crop_padding is None else cfg.crop_padding  # 1 pixel of 8: a small shift
    flip = False if cfg.flip is None else cfg.flip
    return image_bundle(((x[tr], y[tr]), (x[va], y[va]), (x[te], y[te])), [str(i) for i in range(10)], padding, flip)
