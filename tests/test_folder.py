"""Image folders: decoding, the cache, unreadable files, stratified splits, a run end to end."""

import numpy as np
import pytest
import torch

from trainwell.cli import main
from trainwell.config import DataConfig
from trainwell.data import folder, load_data
from trainwell.errors import DataError
from trainwell.runner import train

PIL = pytest.importorskip("PIL.Image")

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (20, 40, 230)}


def write_folder(root, per_class=10, size=(12, 10)):
    """Tiny PNGs and JPEGs: each class a noisy patch of its own colour."""
    rs = np.random.RandomState(0)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(rgb) + rs.randint(-20, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
            ext = "png" if i % 2 else "jpg"
            PIL.fromarray(pixels).save(root / name / f"{i:03d}.{ext}")
    return root


def cfg(root, **kw):
    return DataConfig(name="folder", path=str(root), image_size=8, test_fraction=0.2, val_fraction=0.25, **kw)


def test_folder_decodes_resizes_and_splits_stratified(tmp_path):
    root = write_folder(tmp_path / "imgs")
    data = load_data(cfg(root))
    assert (
        data.classes == ["blue", "green", "red"] and data.input_shape == (3, 8, 8) and data.x_train.dtype == torch.uint8
    )
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 30
    for y in (data.y_train, data.y_val, data.y_test):  # every class in every split, in proportion
        counts = torch.bincount(y, minlength=3)
        assert counts.min() >= 1 and counts.max() - counts.min() <= 1
    red = data.x_train[data.y_train == 2].float().mean(dim=(0, 2, 3))
    assert red[0] > 150 and red[2] < 80  # channels are R, G, B


def test_cache_is_reused_while_files_are_unchanged(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "imgs")
    first = load_data(cfg(root))
    assert folder.cache_path(root, 8).exists()
    monkeypatch.setattr(folder, "decode", lambda *a: pytest.fail("decoded again although nothing changed"))
    again = load_data(cfg(root))
    assert torch.equal(first.x_train, again.x_train)
    # adding a file changes the key: everything is decoded again
    monkeypatch.undo()
    PIL.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "red" / "extra.png")
    calls = []
    real = folder.decode
    monkeypatch.setattr(folder, "decode", lambda *a: calls.append(a) or real(*a))
    grown = load_data(cfg(root))
    assert len(calls) == 31 and len(grown.x_train) + len(grown.x_val) + len(grown.x_test) == 31


def test_unreadable_files_stop_the_load_unless_skipped(tmp_path, caplog):
    root = write_folder(tmp_path / "imgs")
    (root / "red" / "notes.txt").write_text("not an image")
    (root / "blue" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(DataError, match=r"2 file\(s\) .*blue/broken.png, red/notes.txt.*skip_bad_files=true"):
        load_data(cfg(root))
    data = load_data(cfg(root, skip_bad_files=True))
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 30 and data.spec["skipped_files"] == 2
    assert "skipped 2 unreadable file(s)" in caplog.text


def test_bad_folders_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data(cfg(tmp_path / "missing"))
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(DataError, match="2 or more"):
        load_data(cfg(tmp_path / "one"))
    root = write_folder(tmp_path / "few", per_class=2)
    with pytest.raises(DataError, match="at least 3"):
        load_data(cfg(root))


def test_cli_exits_2_on_unreadable_files(tmp_path, capsys):
    root = write_folder(tmp_path / "imgs")
    (root / "red" / "notes.txt").write_text("x")
    config = tmp_path / "folder.yaml"
    config.write_text(f"data: {{name: folder, path: '{root}', image_size: 8}}\n")
    code = main(["train", str(config), "--quiet", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "notes.txt" in err


def test_folder_trains_through_the_cnn_with_augmentation(tmp_path):
    root = write_folder(tmp_path / "imgs", per_class=12)
    config = {
        "name": "folder",
        "data": {"name": "folder", "path": str(root), "image_size": 8},
        "model": {"channels": [4], "head_width": 8},
        "train": {"max_epochs": 8, "batch_size": 8, "quiet": True, "early_stopping": False},
        "optim": {"lr": 0.01},
    }
    result = train(config, out=tmp_path / "run")
    assert result.ok and result.metrics["test_accuracy"] >= 0.8  # the colours are easy to tell apart
    data = load_data(cfg(root))
    assert data.augment is not None  # crops and flips on by default
