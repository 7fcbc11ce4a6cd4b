"""CIFAR-10: the python-format folder, the checked download (served from 127.0.0.1), bad files."""

import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from trainwell.cli import main
from trainwell.config import DataConfig
from trainwell.data import load_data
from trainwell.data.cifar import FOLDER, TRAIN_FILES, download, read_folder
from trainwell.errors import DataError

PER_BATCH = 12  # images per fake batch file


def write_batch(path, n, seed, label_shift=0, width=3072):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, width), dtype=np.uint8)
    with open(path, "wb") as fh:
        pickle.dump({b"data": data, b"labels": [int(v) + label_shift for v in rng.integers(0, 10, n)]}, fh)


def make_folder(root: Path) -> Path:
    folder = root / FOLDER
    folder.mkdir(parents=True)
    for i, name in enumerate(TRAIN_FILES):
        write_batch(folder / name, PER_BATCH, i)
    write_batch(folder / "test_batch", PER_BATCH, 99)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump(
            {b"label_names": [n.encode() for n in "plane car bird cat deer dog frog horse ship truck".split()]}, fh
        )
    return folder


def make_archive(root: Path) -> bytes:
    folder = make_folder(root / "src")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=FOLDER)
    return buf.getvalue()


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1 serving the bytes put in `files`; stopped after the test."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield files, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_reads_the_python_format_folder_and_holds_out_validation(tmp_path):
    make_folder(tmp_path)
    x, y, xt, yt, classes = read_folder(tmp_path / FOLDER)
    assert x.shape == (5 * PER_BATCH, 3, 32, 32) and xt.shape == (PER_BATCH, 3, 32, 32) and classes[1] == "car"
    data = load_data(DataConfig(name="cifar10", path=str(tmp_path), val_size=10))
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (50, 10, 12)
    assert data.input_shape == (3, 32, 32) and data.classes[0] == "plane" and data.augment is not None


def test_download_checks_md5_and_unpacks(tmp_path, server):
    files, base = server
    blob = make_archive(tmp_path)
    files["/cifar.tar.gz"] = blob
    root = tmp_path / "data"
    folder = download(root, f"{base}/cifar.tar.gz", hashlib.md5(blob).hexdigest())
    assert folder == root / FOLDER and (folder / "data_batch_3").is_file()
    assert [p.name for p in root.iterdir()] == [FOLDER]  # no staging folder left behind
    # and through the config: data.download with a given url and md5
    cfg = DataConfig(
        name="cifar10",
        path=str(tmp_path / "other"),
        download=True,
        url=f"{base}/cifar.tar.gz",
        md5=hashlib.md5(blob).hexdigest(),
        val_size=5,
    )
    assert len(load_data(cfg).x_val) == 5


def test_checksum_mismatch_is_refused_and_nothing_unpacked(tmp_path, server):
    files, base = server
    files["/cifar.tar.gz"] = make_archive(tmp_path)
    root = tmp_path / "data"
    with pytest.raises(DataError, match="MD5 .* expected 0{32}; nothing was unpacked"):
        download(root, f"{base}/cifar.tar.gz", "0" * 32)
    assert not any(root.iterdir())


def test_truncated_archive_is_refused_and_nothing_unpacked(tmp_path, server):
    files, base = server
    blob = make_archive(tmp_path)[:5000]
    files["/cifar.tar.gz"] = blob
    root = tmp_path / "data"
    with pytest.raises(DataError, match="truncated or corrupt"):
        download(root, f"{base}/cifar.tar.gz", hashlib.md5(blob).hexdigest())
    assert not any(root.iterdir())


def test_archive_escaping_its_folder_is_refused(tmp_path, server):
    files, base = server
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    files["/evil.tar.gz"] = buf.getvalue()
    root = tmp_path / "data"
    with pytest.raises(DataError, match="unsafe entry"):
        download(root, f"{base}/evil.tar.gz", hashlib.md5(buf.getvalue()).hexdigest())
    assert not (tmp_path / "evil.txt").exists() and not any(root.iterdir())


def test_no_network_says_where_to_put_the_folder(tmp_path, server):
    _, base = server
    with pytest.raises(DataError, match=f"put the unpacked {FOLDER} folder in"):
        download(tmp_path / "data", f"{base}/missing.tar.gz")


class Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda f: (f / "data_batch_2").unlink(), "is missing"),
        (lambda f: (f / "data_batch_2").write_bytes(b"\x80\x04garbage"), "corrupt"),
        (lambda f: write_batch(f / "data_batch_2", 4, 0, width=100), "expected uint8 rows of 3072"),
        (lambda f: write_batch(f / "test_batch", 4, 0, label_shift=10), "labels must lie in 0..9"),
    ],
)
def test_bad_batch_files_one_line(tmp_path, damage, words):
    folder = make_folder(tmp_path)
    damage(folder)
    with pytest.raises(DataError, match=words):
        read_folder(folder)


def test_crafted_batch_pickle_does_not_run(tmp_path):
    folder = make_folder(tmp_path)
    marker = tmp_path / "pwned"
    with open(folder / "data_batch_1", "wb") as fh:
        pickle.dump({b"data": Exploit(marker)}, fh)
    with pytest.raises(DataError, match="corrupt"):
        read_folder(folder)
    assert not marker.exists()


def test_cli_missing_folder_exits_2(tmp_path, capsys):
    assert main(["train", "--preset", "cifar10-upgraded", "--set", f"data.path={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err and "data.download=true" in err
