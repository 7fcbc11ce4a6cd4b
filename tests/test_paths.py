"""Output paths: checked before anything is written, refused in one line naming the problem."""

import os

import pytest

from trainwell import paths, rundir
from trainwell.errors import TrainwellError, shown, shown_path


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "is empty"),
        ("a\0b", "NUL byte"),
        ("x" * 256, "256-byte name"),
        ("d/" * 2100, "a path may have at most 4096"),
    ],
)
def test_path_text_problems_are_named(text, words):
    assert words in paths.path_problem(text)
    with pytest.raises(TrainwellError, match="--out"):
        paths.check_text(text, "--out")


def test_a_folder_below_a_file_cannot_be_made(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(TrainwellError, match="is a file, not a folder"):
        paths.check_folder_can_exist(tmp_path / "f" / "a" / "b", "--out")
    paths.check_folder_can_exist(tmp_path / "new" / "deeper", "--out")
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_run_out_refuses_user_files_named_like_run_files_and_keeps_others(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert rundir.check_run_out(tmp_path) == tmp_path  # unrelated files are left alone
    (tmp_path / "curves.svg").write_text("my plot")
    with pytest.raises(TrainwellError, match="already holds curves.svg"):
        rundir.check_run_out(tmp_path)
    (tmp_path / "best.pt").write_text("x")
    with pytest.raises(TrainwellError, match="already holds a run"):
        rundir.new_run_dir(tmp_path, "r")


def test_out_file_protects_inputs_and_existing_files(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("a\n1\n")
    with pytest.raises(TrainwellError, match="input or a run's own file"):
        paths.check_out_file(src, "--out", [src], overwrite=True)
    with pytest.raises(TrainwellError, match="input or a run's own file"):
        paths.check_out_file(
            tmp_path / "run" / "best.pt", "--out", [tmp_path / "run" / "best.pt"]
        )  # even before it exists
    with pytest.raises(TrainwellError, match="--force"):
        paths.check_out_file(src, "--out")
    assert paths.check_out_file(src, "--out", overwrite=True) == src
    assert paths.check_out_file(tmp_path / "missing" / "p.csv", "--out") == tmp_path / "missing" / "p.csv"


def test_messages_show_bounded_values():
    assert len(shown("x" * 10_000)) <= 60
    nested = [[[1] * 9] * 9] * 9
    for _ in range(6):
        nested = [nested] * 9  # 9**9 leaves, shared
    assert len(shown(nested)) <= 60
    long = "/very/long" * 20 + "/file.csv"
    assert shown_path(long).endswith("/file.csv'") and len(shown_path(long)) <= 60
    assert os.fspath(paths.check_text("ok/x", "--out")) == "ok/x"


def test_a_finished_run_is_not_offered_to_resume(tmp_path):
    (tmp_path / "best.pt").write_text("x")
    with pytest.raises(TrainwellError, match="did not finish; continue it with 'trainwell resume"):
        rundir.check_run_out(tmp_path)
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(TrainwellError) as err:
        rundir.check_run_out(tmp_path)
    assert "finished" in str(err.value) and "continue it with" not in str(err.value)
