"""`coldkit sweep`: grid expansion, validation before training, resume, sweep.json and the plot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import coldkit.sweep as sweep_module
from coldkit.cli import app
from coldkit.plugins import Registry
from coldkit.sweep import (
    Axis,
    SweepError,
    expand_grid,
    parse_axis,
    plan_sweep,
    point_name,
    threads_per_process,
)

runner = CliRunner()


def test_grid_is_every_combination_first_axis_slowest():
    axes = [parse_axis("degradation.steps=2,3"), parse_axis("train.lr=1e-3, 2e-3,5e-3")]
    assert axes[1] == Axis("train.lr", ("1e-3", "2e-3", "5e-3"))
    grid = expand_grid(axes)
    assert len(grid) == 6
    assert grid[0] == (("degradation.steps", "2"), ("train.lr", "1e-3"))
    assert grid[3] == (("degradation.steps", "3"), ("train.lr", "1e-3"))
    assert point_name(grid[0]) == "degradation.steps=2_train.lr=1e-3"
    assert point_name([("evaluate.sampler", "a/b c")]) == "evaluate.sampler=a-b-c"


@pytest.mark.parametrize("text", ["degradation.steps", "=1,2", "train.lr=1e-3,,2e-3"])
def test_unreadable_over_is_an_error(text):
    with pytest.raises(SweepError, match="--over"):
        parse_axis(text)


def test_a_key_swept_twice_is_an_error():
    with pytest.raises(SweepError, match="twice"):
        expand_grid([parse_axis("train.lr=1,2"), parse_axis("train.lr=3")])


def test_bad_value_fails_before_any_training(tiny_config: Path, tmp_path: Path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(sweep_module, "execute", no_training)
    out = tmp_path / "sweep"
    result = runner.invoke(app, ["sweep", str(tiny_config), "--over",
                                 "degradation.steps=2,-1", "--out", str(out)])
    assert result.exit_code == 2
    assert "degradation.steps=-1" in result.output and "Traceback" not in result.output
    assert not out.exists()  # nothing written, nothing trained


def _sweep(config: Path, out: Path, *extra: str):
    return runner.invoke(app, ["sweep", str(config), "--over", "degradation.steps=2,3",
                               "--out", str(out), "--set", "train.steps=4", *extra])


def test_tiny_sweep_writes_runs_sweep_json_report_and_plot(tiny_config: Path, tmp_path: Path):
    out = tmp_path / "sweep"
    result = _sweep(tiny_config, out)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "sweep.json").read_text())
    assert data["over"] == {"degradation.steps": [2, 3]}
    assert data["set"] == ["train.steps=4"]
    names = [point["name"] for point in data["points"]]
    assert names == ["degradation.steps=2", "degradation.steps=3"]
    for point in data["points"]:
        assert point["status"] == "finished" and point["train_steps"] == 4
        assert set(point["rows"]) == {"degraded", "direct", "sampled"}
        assert (out / point["name"] / "metrics.json").is_file()
    assert json.loads((out / "degradation.steps=3" / "run.json").read_text())
    assert "| degradation.steps=2 |" in (out / "compare.md").read_text()
    with Image.open(out / "sweep.png") as plot:
        assert plot.width > 300 and plot.height > 300
    assert (out / "compare.png").is_file()


def test_stopped_sweep_continues_where_it_stopped(tiny_config: Path, tmp_path: Path,
                                                  monkeypatch):
    out = tmp_path / "sweep"
    real_execute = sweep_module.execute
    calls: list[Path] = []

    def stop_on_second(experiment, paths, console, *args):
        calls.append(paths.root)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_execute(experiment, paths, console, *args)

    monkeypatch.setattr(sweep_module, "execute", stop_on_second)
    assert _sweep(tiny_config, out).exit_code == 130
    first = out / "degradation.steps=2" / "metrics.json"
    assert first.is_file() and not (out / "degradation.steps=3" / "metrics.json").exists()
    stamp = first.stat().st_mtime_ns
    assert json.loads((out / "sweep.json").read_text())["points"][1]["status"] == "stopped"

    calls.clear()
    result = _sweep(tiny_config, out)
    assert result.exit_code == 0, result.output
    assert calls == [out / "degradation.steps=3"]  # the finished point is not run again
    assert first.stat().st_mtime_ns == stamp
    assert "1 to run" in result.output


def test_changed_base_config_against_existing_folders_fails_before_training(
    tiny_config: Path, tmp_path: Path
):
    out = tmp_path / "sweep"
    assert _sweep(tiny_config, out).exit_code == 0
    result = _sweep(tiny_config, out, "--set", "restorer.width=16")
    assert result.exit_code == 2 and "different config" in result.output


def test_parallel_points_get_their_share_of_the_cores(tiny_config: Path, tmp_path: Path,
                                                      monkeypatch):
    seen = []

    class FakeProcess:
        def __init__(self, command, stdout, stderr, env):
            seen.append((command, env["OMP_NUM_THREADS"]))

        def wait(self, timeout=None):
            return 1

    monkeypatch.setattr(sweep_module.subprocess, "Popen", FakeProcess)
    planned = plan_sweep(tiny_config, [parse_axis("degradation.steps=2,3")], Registry.discover(),
                         ["train.steps=4"], tmp_path / "sweep", parallel=2)
    with pytest.raises(SweepError, match="exit code 1"):
        sweep_module.run_sweep(planned, Registry.discover(), None, lambda message: None)
    assert seen, "no point was started"
    command, threads = seen[0]
    assert command[:4] == [sys.executable, "-m", "coldkit", "run"]
    assert "train.steps=4" in command and command[-2] == "--set"
    assert threads == str(threads_per_process(2)) == str(max(1, (os.cpu_count() or 1) // 2))
    assert json.loads((tmp_path / "sweep" / "sweep.json").read_text())["parallel"] == 2


def test_threads_setting_sets_torch_threads(tiny_config: Path, tmp_path: Path):
    result = runner.invoke(app, ["run", str(tiny_config), "--out", str(tmp_path / "run"),
                                 "--set", "threads=2", "--set", "train.steps=1"])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 2  # the autouse fixture restores it afterwards


def test_import_coldkit_sets_a_short_spin_unless_the_user_set_one():
    code = "import os, coldkit; print(os.environ['GOMP_SPINCOUNT'])"
    env = {key: value for key, value in os.environ.items() if key != "GOMP_SPINCOUNT"}
    short = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True)
    assert short.stdout.strip() == "10000"
    own = subprocess.run([sys.executable, "-c", code], env={**env, "GOMP_SPINCOUNT": "300000"},
                         capture_output=True, text=True, check=True)
    assert own.stdout.strip() == "300000"
