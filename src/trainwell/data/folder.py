"""A folder of class subfolders of PNG/JPEG files (`data.name: folder`), read with Pillow.

    photos/cat/001.jpg, photos/cat/002.png, photos/dog/001.jpg, ...

Each subfolder is a class (sorted names, index = label). Every file is decoded once, converted to
RGB and resized to `data.image_size` square (the aspect ratio is not kept), into one uint8 array
(N, 3, S, S) cached beside the data as `.trainwell-<S>px.npz`. The cache is reused while the
files are unchanged: its key hashes every file's relative name, size and modification time.
Validation and test images are split off stratified by class, and training goes through the
CNN path with whole-batch crops and flips (see images.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write
from ..errors import DataError
from ..sections import DataConfig
from .bundle import DataBundle
from .images import image_bundle
from .registry import DATASETS

CACHE_VERSION = 1  # bump when the decoding changes, so old caches are rebuilt
SHOWN_BAD = 3  # names of unreadable files quoted in messages


def scan(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names and (relative path, label) of every non-hidden file, in a fixed order."""
    if not root.is_dir():
        raise DataError(f"image folder {str(root)!r} does not exist; give a folder with one subfolder per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(
            f"image folder {str(root)!r} has {len(classes)} class subfolders; classification needs 2 or more "
            f"(one subfolder per class)"
        )
    files = []
    for label, name in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(root / name):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in sorted(filenames):
                if not f.startswith("."):
                    files.append((str((Path(dirpath) / f).relative_to(root)), label))
    return classes, files


def cache_key(root: Path, files: list[tuple[str, int]], size: int) -> str:
    """Changes when any file is added, removed, renamed, resized or touched, or the size changes."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, size]).encode())
    for rel, label in files:
        st = (root / rel).stat()
        h.update(json.dumps([rel, label, st.st_size, st.st_mtime_ns]).encode())
    return h.hexdigest()


def decode(path: Path, size: int) -> np.ndarray | None:
    """(3, size, size) uint8, or None when the file is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file fails here, not later
            rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def decode_all(root: Path, files: list[tuple[str, int]], size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise DataError("data.name folder needs Pillow: pip install 'trainwell[images]'") from None
    images, labels, bad = [], [], []
    for rel, label in files:
        arr = decode(root / rel, size)
        if arr is None:
            bad.append(rel)
        else:
            images.append(arr)
            labels.append(label)
    x = np.stack(images) if images else np.zeros((0, 3, size, size), dtype=np.uint8)
    return x, np.asarray(labels, dtype=np.int64), bad


def cache_path(root: Path, size: int) -> Path:
    return root / f".trainwell-{size}px.npz"


def read_cache(path: Path, key: str) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """The cached arrays when the file exists, is readable and carries this key; else None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            return z["x"], z["y"], [str(b) for b in z["bad"]]
    except (OSError, ValueError, KeyError, EOFError):  # missing, torn or foreign: decode again
        return None


def write_cache(path: Path, key: str, x: np.ndarray, y: np.ndarray, bad: list[str]) -> None:
    arrays = {"key": np.array(key), "x": x, "y": y, "bad": np.array(bad, dtype=str)}
    try:
        atomic_write(path, lambda fh: np.savez(fh, **arrays))
    except OSError:
        pass  # a read-only data folder: the images are decoded again next time


def load_images(root: Path, size: int) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """(x, y, classes, unreadable relative paths), from the cache when it is current."""
    classes, files = scan(root)
    key = cache_key(root, files, size)
    path = cache_path(root, size)
    cached = read_cache(path, key)
    if cached is None:
        cached = decode_all(root, files, size)
        write_cache(path, key, *cached)
    x, y, bad = cached
    return x, y, classes, bad


def check_bad(root: Path, bad: list[str], skip: bool) -> None:
    if not bad:
        return
    shown = ", ".join(bad[:SHOWN_BAD]) + (", ..." if len(bad) > SHOWN_BAD else "")
    if skip:
        logging.getLogger("trainwell").warning("skipped %d unreadable file(s) in %s (%s)", len(bad), root, shown)
        return
    raise DataError(
        f"{len(bad)} file(s) in {str(root)!r} are not readable PNG/JPEG images ({shown}); "
        "remove them or set data.skip_bad_files=true to skip them"
    )


def stratified_splits(y: np.ndarray, classes: list[str], cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) indices, each class in the same proportions; test first, as tables split."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < 3:
        name = classes[int(counts.argmin())]
        raise DataError(
            f"class {name!r} has {int(counts.min())} readable image(s); every class needs at least 3 "
            f"(training, validation, test)"
        )
    idx = np.arange(len(y))
    try:
        rest, test = train_test_split(idx, test_size=cfg.test_fraction, random_state=cfg.split_seed, stratify=y)
        val_share: Any = cfg.val_size if cfg.val_size is not None else cfg.val_fraction
        train, val = train_test_split(rest, test_size=val_share, random_state=cfg.split_seed, stratify=y[rest])
    except ValueError as exc:  # e.g. fewer held-out images than classes
        raise DataError(
            f"cannot split {len(y)} images of {len(classes)} classes stratified: {str(exc).splitlines()[0]}"
        ) from None
    return train, val, test


@DATASETS.register("folder")
def load_folder(cfg: DataConfig) -> DataBundle:
    assert cfg.path  # DataConfig.validate guarantees it
    root = Path(cfg.path)
    x, y, classes, bad = load_images(root, cfg.image_size)
    check_bad(root, bad, cfg.skip_bad_files)
    tr, va, te = stratified_splits(y, classes, cfg)
    padding = max(1, cfg.image_size // 8) if cfg.crop_padding is None else cfg.crop_padding  # 4 of 32, as for CIFAR-10
    flip = True if cfg.flip is None else cfg.flip
    bundle = image_bundle(((x[tr], y[tr]), (x[va], y[va]), (x[te], y[te])), classes, padding, flip)
    bundle.spec["skipped_files"] = len(bad)
    return bundle
