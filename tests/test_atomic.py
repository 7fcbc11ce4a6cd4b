"""Atomic writes: a new file gets the mode a plain open() would give it under the user's umask."""

import os
import stat

import pytest

from trainwell.atomic import atomic_write


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "f.txt", lambda fh: fh.write("x"), binary=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
