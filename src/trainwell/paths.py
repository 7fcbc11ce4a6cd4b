"""Paths from the user, checked before anything is read or written.

Every path a command takes (a data file, a config, a run directory, an --out) passes
`check_text` first: no NUL byte, no name longer than the file system allows. Every output
passes one of the `check_out_*` functions before the first byte is written: its folder is a
folder (not a file), it does not land on a run's own files or on files trainwell did not write,
and `prepare_dir` then creates it. None of them writes anything when it refuses.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Iterable

from .errors import TrainwellError, shown_path

NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems
PATH_MAX = 4096  # bytes in a whole path on Linux


def path_problem(text: str) -> str | None:
    """Why `text` cannot be a path (a phrase), or None when it can."""
    if not text:
        return "is empty"
    if "\0" in text:
        return "contains a NUL byte, which no file name may hold"
    try:
        encoded = os.fsencode(text)
    except UnicodeEncodeError:
        return "holds characters the file system cannot encode"
    if len(encoded) > PATH_MAX:
        return f"is {len(encoded):,} bytes long; a path may have at most {PATH_MAX}"
    longest = max((os.fsencode(p) for p in Path(text).parts), key=len, default=b"")
    if len(longest) > NAME_MAX:
        return f"has a {len(longest)}-byte name; a file or folder name may have at most {NAME_MAX} bytes"
    return None


def check_text(path: str | os.PathLike[str], what: str) -> Path:
    """`path` as a Path, or a one-line TrainwellError naming `what` ("--out", "data file")."""
    text = os.fspath(path)
    problem = path_problem(text)
    if problem:
        raise TrainwellError(f"{what} {shown_path(text)} {problem}")
    return Path(text)


def _stat_kind(path: Path) -> str:
    """ "dir", "file", "other" or "missing", never raising for a long name or a file in the way."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "missing"
        raise TrainwellError(f"cannot use {shown_path(path)}: {exc.strerror}") from None
    import stat

    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def check_folder_can_exist(path: Path, what: str) -> None:
    """The nearest existing ancestor of `path` is a folder, so `path` can be made a folder.
    `path` itself must be a folder or not exist."""
    kind = _stat_kind(path)
    if kind == "dir":
        return
    if kind != "missing":
        raise TrainwellError(
            f"{what} {shown_path(path)} is a file, not a folder; give a folder that is empty or does not exist"
        )
    for parent in path.absolute().parents:
        kind = _stat_kind(parent)
        if kind == "dir":
            return
        if kind != "missing":
            raise TrainwellError(
                f"{what} {shown_path(path)} cannot be created: {shown_path(parent)} is a file, not a folder"
            )


def check_out_dir(out: str | os.PathLike[str], what: str, owned: Iterable[str], kind: str) -> Path:
    """An output folder that will receive the files named in `owned`: refused when it is a file,
    lies below a file, or already holds one of those names (they would be overwritten; `kind`
    says what would be written, e.g. "a run"). Other files in it are left alone."""
    path = check_text(out, what)
    check_folder_can_exist(path, what)
    if path.is_dir():
        clash = sorted(name for name in owned if os.path.lexists(path / name))
        if clash:
            raise TrainwellError(
                f"{what} {shown_path(path)} already holds {clash[0]}, which {kind} would overwrite; choose an "
                f"empty or new folder"
            )
    return path


def prepare_dir(path: Path, what: str) -> Path:
    """Create a checked output folder (and its parents)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainwellError(f"{what} {shown_path(path)} cannot be created: {exc.strerror}") from None
    return path


def _same(a: Path, b: str | os.PathLike[str]) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    return os.path.lexists(a) and os.path.lexists(b) and os.path.samefile(a, b)  # hard links


def check_out_file(
    out: str | os.PathLike[str], what: str, protected: Iterable[str | os.PathLike[str]] = (), overwrite: bool = False
) -> Path:
    """An output file: its folder must be a folder or creatable, it must not be one of the
    `protected` files (a run's own files, the command's input; existing or not), and an
    existing file is replaced only with `overwrite`."""
    path = check_text(out, what)
    kind = _stat_kind(path)
    if kind in ("dir", "other"):
        raise TrainwellError(f"{what} {shown_path(path)} is a folder or a device, not a file; give a file name")
    check_folder_can_exist(path.parent, what)
    for other in protected:
        if _same(path, other):
            raise TrainwellError(
                f"{what} {shown_path(path)} is the command's input or a run's own file; give another file"
            )
    if kind == "file" and not overwrite:
        raise TrainwellError(
            f"{what} {shown_path(path)} already exists; give a new file name, or --force to replace it"
        )
    return path
