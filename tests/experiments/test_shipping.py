"""Run directories as bytes: what a worker ships, how the client writes it, consistent snapshots."""

from __future__ import annotations

import os

from trainwell.experiments.shipping import RESUME, read_files, share_of_cores, shipped_files, snapshot, write_files


def fill(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(f"body of {name}".encode())


def test_a_finished_run_ships_without_last_pt_and_an_unfinished_one_with_it(tmp_path):
    done, running = tmp_path / "done", tmp_path / "running"
    fill(
        done,
        [
            "config.yaml",
            "history.csv",
            "history.json",
            "metrics.json",
            "best.pt",
            "last.pt",
            "curves.svg",
            ".last.pt.123.tmp",
        ],
    )
    fill(running, ["config.yaml", "best.pt", "last.pt"])
    assert set(shipped_files(done)) == {
        "config.yaml",
        "history.csv",
        "history.json",
        "metrics.json",
        "best.pt",
        "curves.svg",
    }
    assert set(shipped_files(running)) == {"config.yaml", "best.pt", "last.pt"}
    assert shipped_files(running)["last.pt"] == b"body of last.pt"


def test_written_files_equal_the_shipped_bytes_and_a_finished_run_drops_its_stale_last_pt(tmp_path):
    source, target = tmp_path / "worker", tmp_path / "client" / "runs" / "a" / "seed-0"
    fill(source, ["config.yaml", "metrics.json", "best.pt"])
    fill(target, ["last.pt"])  # left by an earlier, interrupted attempt
    write_files(target, shipped_files(source))
    assert read_files(target, ("config.yaml", "metrics.json", "best.pt")) == read_files(
        source, ("config.yaml", "metrics.json", "best.pt")
    )
    assert not (target / "last.pt").exists()
    assert not [p for p in target.iterdir() if p.name.endswith(".tmp")]


def test_snapshot_refuses_a_best_pt_newer_than_last_pt(tmp_path):
    fill(tmp_path, RESUME)
    last = (tmp_path / "last.pt").stat().st_mtime_ns
    os.utime(tmp_path / "best.pt", ns=(last - 10**9, last - 10**9))
    assert set(snapshot(tmp_path)) == set(RESUME)
    os.utime(tmp_path / "best.pt", ns=(last + 10**9, last + 10**9))  # the next epoch's best, not yet in last.pt
    assert snapshot(tmp_path) is None
    assert snapshot(tmp_path / "nothing") is None


def test_share_of_cores_divides_a_hosts_cores_among_its_task_slots(monkeypatch):
    from trainwell.experiments import shipping

    monkeypatch.setattr(shipping, "cores", lambda: 16)
    assert share_of_cores("10.0.0.1", {"10.0.0.1": 4, "10.0.0.2": 16}) == 4
    assert share_of_cores("10.0.0.2", {"10.0.0.1": 4, "10.0.0.2": 16}) == 1
    assert share_of_cores("10.0.0.3", {}) == 16
    assert share_of_cores("10.0.0.1", {"10.0.0.1": 32}) == 1


def write_last(folder, epoch, step):
    from trainwell.checkpoint import LAST, save_checkpoint

    fill(folder, ["config.yaml"])
    save_checkpoint(LAST, {"loop": {"epoch": epoch, "step": step}}, folder / "last.pt", durable=False)


def test_a_stacks_snapshot_is_shipped_only_when_every_run_stands_at_one_epoch(tmp_path):
    import time

    from trainwell.experiments import shipping

    folders = [tmp_path / "a", tmp_path / "b"]
    write_last(folders[0], 4, 40)
    write_last(folders[1], 3, 30)  # looked at between the stack's two writes of epoch 4
    assert shipping.position(snapshot(folders[0])) == (4, 40)
    assert not shipping.consistent([snapshot(d) for d in folders])
    assert not shipping.consistent([snapshot(folders[0]), None])
    assert shipping.consistent([snapshot(folders[1])])

    class Variable:
        def __init__(self):
            self.values = []

        def set(self, value):
            self.values.append(value)

    variable = Variable()
    with shipping.Shipper(folders, variable):
        time.sleep(3 * shipping.SNAPSHOT_SECONDS)
        assert variable.values == []  # the mixed snapshot is never sent
        write_last(folders[1], 4, 40)
        deadline = time.monotonic() + 10
        while not variable.values and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [[shipping.position(f) for f in files] for files in variable.values] == [[(4, 40), (4, 40)]]
