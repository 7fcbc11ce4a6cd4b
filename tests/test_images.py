"""Image data: whole-batch augmentation, digits, and image runs end to end."""

import numpy as np
import pytest
import torch

from trainwell.config import DataConfig
from trainwell.data import load_data
from trainwell.data.images import image_bundle, random_crop_flip
from trainwell.errors import DataError
from trainwell.inference import evaluate_run
from trainwell.runner import train


def batch(n=16, c=3, size=32):
    return torch.arange(n * c * size * size, dtype=torch.float32).reshape(n, c, size, size)


def test_augmentation_is_reproducible_from_the_generator():
    x = batch()
    a = random_crop_flip(x, torch.Generator().manual_seed(3), 4, True)
    b = random_crop_flip(x, torch.Generator().manual_seed(3), 4, True)
    c = random_crop_flip(x, torch.Generator().manual_seed(4), 4, True)
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == x.shape


def test_crop_is_a_shifted_window_of_the_padded_image():
    x = batch(n=64, c=1, size=8)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), 2, False)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):
        windows = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    assert not torch.equal(out, x)  # some images moved


def test_flip_only_mirrors_and_about_half_the_batch():
    x = batch(n=200, c=1, size=8)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), 0, True)
    flipped = [torch.equal(out[i], x[i].flip(2)) for i in range(len(x))]
    kept = [torch.equal(out[i], x[i]) for i in range(len(x))]
    assert all(f or k for f, k in zip(flipped, kept)) and 60 < sum(flipped) < 140


def test_digits_bundle():
    data = load_data(DataConfig(name="digits"))
    assert data.x_train.dtype == torch.uint8 and data.input_shape == (1, 8, 8) and data.n_outputs == 10
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 1797
    x = data.inputs(data.x_train)
    assert x.dtype == torch.float32 and abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05
    assert data.augment is not None
    assert data.augment(x[:4], torch.Generator().manual_seed(0)).shape == x[:4].shape


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda x, y: (x[:, :, :4, :4], y), "at least 8×8"),
        (lambda x, y: (x.astype(np.float32), y), "uint8"),
        (lambda x, y: (x, y + 10), "labels must lie in 0..9"),
        (lambda x, y: (np.repeat(x, 2, axis=1), y), "1 or 3 channels"),
    ],
)
def test_bad_images_one_line(mutate, words):
    x = np.zeros((20, 1, 8, 8), dtype=np.uint8)
    y = np.arange(20) % 10
    bx, by = mutate(x, y)
    with pytest.raises(DataError, match=words):
        image_bundle(((bx, by), (bx, by), (bx, by)), [str(i) for i in range(10)], 0, False)


def test_digits_run_trains_and_evaluates(tmp_path):
    cfg = {
        "data": {"name": "digits"},
        "model": {"channels": [8, 16], "head_width": 32},
        "optim": {"lr": 3e-3},
        "schedule": {"name": "onecycle"},
        "train": {"max_epochs": 6, "batch_size": 64, "monitor": "val_accuracy", "quiet": True},
    }
    result = train(cfg, out=tmp_path / "run")
    assert result.metrics["test_accuracy"] > 0.7  # chance is 0.1
    assert evaluate_run(tmp_path / "run")["test_accuracy"] == pytest.approx(result.metrics["test_accuracy"])
