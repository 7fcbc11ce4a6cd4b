"""Seeding and RNG snapshots as plain data (tensors, numbers, lists), for exact resume."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's random, NumPy's global RNG, torch on the CPU and every CUDA device."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def make_generator(seed: int, stream: int) -> torch.Generator:
    """A CPU generator owned by the run; `stream` separates uses (0 shuffling, 1 augmentation)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + stream)


def set_deterministic(enabled: bool) -> None:
    """Bit-exact algorithms on every device (slower on GPU); off leaves torch's defaults."""
    if not enabled:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by deterministic cuBLAS
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: forward torch's per-worker seed to NumPy and random."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def rng_snapshot(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    version, py_state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {
            "version": version,
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss": gauss,
        },  # one tensor, not 625 ints to pickle
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {k: g.get_state() for k, g in generators.items()},
    }


def rng_restore(snapshot: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    py = snapshot["python"]
    state = py["state"].tolist() if isinstance(py["state"], torch.Tensor) else py["state"]
    random.setstate((py["version"], tuple(int(v) for v in state), py["gauss"]))
    nps = snapshot["numpy"]
    np.random.set_state(
        (nps["name"], nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"], nps["cached"])
    )
    torch.set_rng_state(snapshot["torch_cpu"])
    if snapshot["torch_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(snapshot["torch_cuda"])
    for key, state in snapshot["generators"].items():
        generators[key].set_state(state)
