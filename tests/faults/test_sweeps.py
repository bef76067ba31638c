"""Issue 29, item 4: a sweep writes only into a folder of its own, follows no link, says how big
it is before it starts, runs each point once, and ends its child runs when it is ended."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults.conftest import config_file, invoke, refused, snapshot, succeeded

QUICK = ("--set", "train.steps=1", "--set", "evaluate.num_images=4")


def _sweep(config: Path, out: Path, *over: str, extra=()):
    args = ["sweep", config, "--out", out, *QUICK, *extra]
    for axis in over:
        args += ["--over", axis]
    return invoke(*args)


def test_a_users_non_empty_folder_is_refused_as_out(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "compare.md").write_text("my own notes")
    before = snapshot(out)
    refused(_sweep(config_file(tmp_path), out, "train.lr=1e-3,2e-3"), "not a sweep folder",
            "--out")
    assert snapshot(out) == before


def test_a_link_at_a_points_folder_is_refused_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "train.lr=1e-3").symlink_to(elsewhere)
    refused(_sweep(config_file(tmp_path), out, "train.lr=1e-3,2e-3"), "symbolic link")
    assert sorted(path.name for path in elsewhere.iterdir()) == ["keep.txt"]


def test_a_link_at_a_points_log_is_refused_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    out = tmp_path / "sweep"
    (out / "logs").mkdir(parents=True)
    (out / "sweep.json").write_text("{}")
    (out / "logs" / "train.lr=1e-3.txt").symlink_to(victim)
    refused(_sweep(config_file(tmp_path), out, "train.lr=1e-3,2e-3", extra=("--parallel", "2")),
            "symbolic link")
    assert victim.read_text() == "mine"


def test_a_value_too_long_for_a_folder_name_is_exit_2(tmp_path):
    long_name = '"' + "x" * 300 + '"'
    out = tmp_path / "sweep"
    refused(_sweep(config_file(tmp_path), out, f"name={long_name}"), "longer than")
    assert not out.exists()


def test_a_read_only_out_is_exit_2(tmp_path, read_only):
    parent = tmp_path / "locked"
    parent.mkdir()
    read_only(parent)
    refused(_sweep(config_file(tmp_path), parent / "sweep", "train.lr=1e-3"), "--out")


def test_a_full_disk_is_exit_2(tmp_path, full_disk):
    out = tmp_path / "sweep"
    full_disk(out)
    refused(_sweep(config_file(tmp_path), out, "train.lr=1e-3"), "disk")


def test_a_huge_grid_is_refused_at_once_with_its_size(tmp_path):
    values = ",".join(str(value) for value in range(1, 201))
    result = _sweep(config_file(tmp_path), tmp_path / "sweep", f"train.steps={values}",
                    f"train.batch_size={values}", "seed=1,2,3,4,5")
    refused(result, "200,000 points", "--max-points")
    assert not (tmp_path / "sweep").exists()


def test_the_point_count_is_said_before_the_first_point(tmp_path):
    result = _sweep(config_file(tmp_path), tmp_path / "sweep", "train.lr=1e-3,2e-3")
    succeeded(result)
    assert result.output.index("2 points") < result.output.index("[1/2]")


def test_a_value_given_twice_is_one_point(tmp_path):
    out = tmp_path / "sweep"
    succeeded(_sweep(config_file(tmp_path), out, "train.lr=1e-3,1e-3,0.001",
                     extra=("--parallel", "2")))
    points = json.loads((out / "sweep.json").read_text())["points"]
    assert [point["name"] for point in points] == ["train.lr=1e-3"]
    assert points[0]["status"] == "finished"


def _alive(pattern: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if pattern in command and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_sigterm_to_a_parallel_sweep_ends_its_child_runs(tmp_path):
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "coldkit", "sweep", str(config_file(tmp_path)), "--out",
               str(out), "--set", "train.steps=100000", "--parallel", "2",
               "--over", "train.lr=1e-3,2e-3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sweep = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                             text=True)
    try:
        started = 0
        for line in sweep.stdout:
            started += line.startswith("started")
            if started == 2:
                break
        deadline = time.monotonic() + 120
        while len(_alive(f"--out {out}/")) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(_alive(f"--out {out}/")) == 2
        sweep.send_signal(signal.SIGTERM)
        assert sweep.wait(timeout=120) != 0
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert _alive(f"--out {out}/") == []
    statuses = {p["status"] for p in json.loads((out / "sweep.json").read_text())["points"]}
    assert statuses == {"stopped"}
