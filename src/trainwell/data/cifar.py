"""CIFAR-10 from its standard python-format folder, with an optional checked download.

The folder `cifar-10-batches-py` holds data_batch_1..5, test_batch and batches.meta: pickled
dicts with b"data" (uint8, N×3072, channel-major) and b"labels". Those files are pickles, so
they are read with an unpickler that allows no globals but NumPy's array reconstruction: a
crafted file cannot run code. The download checks the archive's MD5 before unpacking, refuses
tar members that would land outside the target, and unpacks into a temporary folder that is
renamed into place, so a failed download leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..sections import DataConfig
from .bundle import DataBundle
from .images import image_bundle
from .registry import DATASETS

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]  # the usual CIFAR-10 statistics
DEFAULT_VAL_SIZE = 5000  # images held out of the training batches for early stopping
DEFAULT_PADDING = 4  # pixels of random-crop padding


class _SafeUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def read_batch(path: Path) -> dict[bytes, Any]:
    if not path.is_file():
        raise DataError(
            f"CIFAR-10 batch file {str(path)!r} is missing; the folder needs {', '.join(TRAIN_FILES)}, "
            f"test_batch and batches.meta"
        )
    try:
        with open(path, "rb") as fh:
            batch = _SafeUnpickler(fh, encoding="bytes").load()
    except Exception as exc:  # truncated, corrupt or unsafe pickles all end here
        raise DataError(
            f"CIFAR-10 batch file {str(path)!r} is corrupt or not a CIFAR batch ({type(exc).__name__})"
        ) from None
    if not isinstance(batch, dict):
        raise DataError(f"CIFAR-10 batch file {str(path)!r} does not hold a CIFAR batch dict")
    return batch


def _images(batch: dict[bytes, Any], path: Path) -> tuple[np.ndarray, np.ndarray]:
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise DataError(
            f"CIFAR-10 batch {str(path)!r} holds images of shape {shape}; expected uint8 rows of 3072 values (3×32×32)"
        )
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != (len(data),):
        raise DataError(f"CIFAR-10 batch {str(path)!r} has {len(data)} images but {y.size} labels")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise DataError(
            f"CIFAR-10 batch {str(path)!r} has labels {int(y.min())}..{int(y.max())}; labels must lie in 0..9"
        )
    return data.reshape(-1, 3, 32, 32), y


def read_folder(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    xs, ys = zip(*(_images(read_batch(folder / f), folder / f) for f in TRAIN_FILES))
    x_test, y_test = _images(read_batch(folder / "test_batch"), folder / "test_batch")
    names = read_batch(folder / "batches.meta").get(b"label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise DataError(f"{str(folder / 'batches.meta')!r} must list 10 label names")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return np.concatenate(xs), np.concatenate(ys), x_test, y_test, classes


def download(root: Path, url: str = URL, md5: str = MD5, timeout: float = 60.0) -> Path:
    """Fetch the archive, check its MD5, unpack atomically into root/cifar-10-batches-py."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / FOLDER
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            blob = response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"cannot download CIFAR-10 from {url} ({reason}); without a network, put the unpacked {FOLDER} "
            f"folder in {root}"
        ) from None
    digest = hashlib.md5(blob).hexdigest()
    if digest != md5:
        raise DataError(f"the CIFAR-10 archive from {url} has MD5 {digest}, expected {md5}; nothing was unpacked")
    staging = Path(tempfile.mkdtemp(prefix=".cifar-", dir=root))
    try:
        try:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
                for member in tar.getmembers():
                    dest = (staging / member.name).resolve()
                    if not (member.isfile() or member.isdir()) or not str(dest).startswith(
                        str(staging.resolve()) + os.sep
                    ):
                        raise DataError(
                            f"the CIFAR-10 archive holds an unsafe entry {member.name!r}; nothing was unpacked"
                        )
                tar.extractall(staging, filter="data")
        except (tarfile.TarError, EOFError, OSError, Exception) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(
                f"the CIFAR-10 archive from {url} is truncated or corrupt ({type(exc).__name__}); nothing was unpacked"
            ) from None
        if not (staging / FOLDER).is_dir():
            raise DataError(f"the archive from {url} has no {FOLDER} folder; nothing was unpacked")
        os.replace(staging / FOLDER, target)  # atomic on one file system
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@DATASETS.register("cifar10")
def load_cifar10(cfg: DataConfig) -> DataBundle:
    root = Path(cfg.path or "data")
    folder = root if root.name == FOLDER else root / FOLDER
    if not folder.is_dir():
        if not cfg.download:
            raise DataError(
                f"CIFAR-10 folder {str(folder)!r} not found; put the unpacked {FOLDER} folder there or set "
                f"data.download=true"
            )
        folder = download(folder.parent, cfg.url or URL, cfg.md5 or MD5)
    x, y, x_test, y_test, classes = read_folder(folder)
    val_size = cfg.val_size or DEFAULT_VAL_SIZE
    if not 0 < val_size < len(x):
        raise DataError(f"data.val_size = {val_size} must be between 1 and {len(x) - 1} for {len(x)} training images")
    order = np.random.RandomState(cfg.split_seed).permutation(len(x))
    va, tr = order[:val_size], order[val_size:]
    padding = DEFAULT_PADDING if cfg.crop_padding is None else cfg.crop_padding
    flip = True if cfg.flip is None else cfg.flip
    return image_bundle(((x[tr], y[tr]), (x[va], y[va]), (x_test, y_test)), classes, padding, flip, MEAN, STD)
