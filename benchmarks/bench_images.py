"""Training images per second over one epoch: the CIFAR-10 lesson's DataLoader loop against trainwell.

(a) reference: a Dataset that pads, randomly crops, flips, converts and normalises each image
    in Python (as torchvision's per-image transforms do), a DataLoader with batch 128 and
    the model trained on its batches;
(b) trainwell: the uint8 data set kept as one tensor, batches gathered by index, crop/flip on
    the whole batch, normalisation on the batch; the same model, optimizer and batch size.
Synthetic CIFAR-shaped data (3×32×32, 10 classes) so it runs anywhere; CUDA too when present.

    .venv/bin/python benchmarks/bench_images.py [--images 2048] [--width 32] [--device all|cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from trainwell.config import ModelConfig
from trainwell.data.cifar import MEAN, STD
from trainwell.data.images import image_bundle
from trainwell.models import build_model


class PerImageDataset(torch.utils.data.Dataset):
    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = np.pad(self.x[i], ((0, 0), (4, 4), (4, 4)))
        dy, dx = np.random.randint(0, 9, 2)
        img = img[:, dy : dy + 32, dx : dx + 32]
        if np.random.rand() < 0.5:
            img = img[:, :, ::-1]
        t = torch.from_numpy(np.ascontiguousarray(img)).float() / 255.0
        return (t - self.mean) / self.std, int(self.y[i])


def model_and_opt(width: int, device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    m = build_model(
        ModelConfig(kind="cnn", channels=[width, 2 * width, 4 * width], head_width=8 * width), (3, 32, 32), 10, "cnn"
    ).to(device)
    return m, torch.optim.AdamW(m.parameters(), lr=1e-3)


def reference(x: np.ndarray, y: np.ndarray, width: int, device: torch.device) -> float:
    model, opt = model_and_opt(width, device)
    loader = torch.utils.data.DataLoader(PerImageDataset(x, y), batch_size=128, shuffle=True)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xb), yb).backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(x) / (time.perf_counter() - start)


def trainwell_path(x: np.ndarray, y: np.ndarray, width: int, device: torch.device) -> float:
    model, opt = model_and_opt(width, device)
    data = image_bundle(((x, y), (x[:1], y[:1]), (x[:1], y[:1])), [str(i) for i in range(10)], 4, True, MEAN, STD).to(
        device
    )
    gen = torch.Generator().manual_seed(0)
    loss_fn = nn.CrossEntropyLoss()
    perm = torch.randperm(len(x), generator=gen).to(device)
    start = time.perf_counter()
    for i in range(0, len(x), 128):
        idx = perm[i : i + 128]
        xb = data.augment(data.inputs(data.x_train[idx]), gen)
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xb), data.y_train[idx]).backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(x) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--width", type=int, default=32, help="channels of the first stage (the lesson uses 64)")
    ap.add_argument("--device", choices=["all", "cpu", "cuda"], default="all", help="all: the CPU, and CUDA if present")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.images, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, args.images)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    devices = [d for d in devices if args.device in ("all", d.type)]
    for device in devices:
        if device.type == "cuda":  # CUDA's context, cuDNN's plans and the allocator's pool, off the clock
            reference(x[:512], y[:512], args.width, device), trainwell_path(x[:512], y[:512], args.width, device)
        ref, tw = reference(x, y, args.width, device), trainwell_path(x, y, args.width, device)
        print(f"{device.type}: reference {ref:8.1f} images/s   trainwell {tw:8.1f} images/s   ratio {tw / ref:.2f}x")


if __name__ == "__main__":
    main()
