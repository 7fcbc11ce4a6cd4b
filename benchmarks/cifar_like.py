"""A generated CIFAR-10-shaped folder (cifar-10-batches-py: 5 × 10,000 training images, 10,000 test
images, 3×32×32 uint8, 10 classes) for timing the CIFAR-10 presets where the real data cannot be
downloaded.

Each class owns a smooth random colour pattern, and an image is its class's pattern shifted by up
to 4 pixels, scaled in contrast, tinted, with pixel noise of 0.6 × the pattern's largest value. That
is far easier than CIFAR-10 (the cifar10-upgraded preset passes 97% validation accuracy in its first
epoch on a GPU; a 16-32-64 CNN on 6,000 of these images reaches ~70% in 4 epochs on the CPU): the
figures it gives are speeds, not accuracies.

    python benchmarks/cifar_like.py FOLDER [--per-batch 10000]   # writes FOLDER/cifar-10-batches-py
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

CLASSES = "airplane automobile bird cat deer dog frog horse ship truck".split()
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]


def class_patterns(rng: np.random.Generator) -> np.ndarray:
    """10 smooth patterns, 3×40×40 (room for the shifts), values in about [-1, 1]."""
    coarse = rng.normal(size=(10, 3, 5, 5))
    fine = coarse.repeat(8, axis=2).repeat(8, axis=3)  # 5×5 blocks of 8 pixels, then smoothed
    kernel = np.ones(7) / 7
    for axis in (2, 3):
        fine = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, fine)
    return fine / np.abs(fine).max()


def images(patterns: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    labels = rng.integers(0, 10, n)
    dy, dx = rng.integers(0, 9, n), rng.integers(0, 9, n)
    rows = np.arange(32)
    crops = patterns[
        labels[:, None, None, None],
        np.arange(3)[None, :, None, None],
        (dy[:, None] + rows)[:, None, :, None],
        (dx[:, None] + rows)[:, None, None, :],
    ]
    contrast = rng.uniform(0.5, 1.5, (n, 1, 1, 1))
    tint = rng.normal(0, 0.3, (n, 3, 1, 1))
    noise = rng.normal(0, 0.6, crops.shape)
    pixels = 128 + 60 * (contrast * crops + tint + noise)
    return np.clip(pixels, 0, 255).astype(np.uint8).reshape(n, 3072), [int(v) for v in labels]


def write_folder(root: Path, per_batch: int = 10_000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    patterns = class_patterns(rng)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name in [*TRAIN_FILES, "test_batch"]:
        data, labels = images(patterns, per_batch, rng)
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES]}, fh)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--per-batch", type=int, default=10_000, help="images per batch file (6 files)")
    args = ap.parse_args()
    print(write_folder(Path(args.folder), args.per_batch))


if __name__ == "__main__":
    main()
