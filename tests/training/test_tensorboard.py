"""Optional TensorBoard logging: ``[log] tensorboard = true``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldkit.cli import app
from coldkit.config import read_toml, write_toml
from coldkit.runs.tensorboard import MISSING

from tests.conftest import tiny_experiment

runner = CliRunner()


def _run(tmp_path: Path, out: Path, **sections) -> object:
    config = tmp_path / "tiny.toml"
    write_toml(config, tiny_experiment(**sections))
    return runner.invoke(app, ["run", str(config), "--out", str(out)])


def test_tensorboard_events_hold_training_scalars_metrics_and_images(tmp_path: Path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    result = _run(tmp_path, out, log={"tensorboard": True})
    assert result.exit_code == 0, result.output
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    for tag in ("train/loss", "train/learning_rate", "train/steps_per_second"):
        assert tag in tags["scalars"]
        # train.steps = 6, train.log_every = 2: read at steps 2, 4, 6 only
        assert [event.step for event in events.Scalars(tag)] == [2, 4, 6]
    assert events.Scalars("train/learning_rate")[0].value == pytest.approx(1e-3)
    logged = [line for line in (out / "log.txt").read_text().splitlines() if " loss " in line]
    first_loss = events.Scalars("train/loss")[0].value
    assert float(logged[0].split()[-1]) == pytest.approx(first_loss, abs=1e-5)
    for row in ("degraded", "direct", "sampled"):
        for metric in ("ssim", "rmse", "psnr"):
            scalars = events.Scalars(f"metrics/{row}/{metric}")
            assert [event.step for event in scalars] == [6]
    assert {"figure", "loss_curve"} <= set(tags["images"])
    assert events.Images("figure")[0].width > 0
    assert "not installed" not in (out / "log.txt").read_text()


def test_without_the_package_the_run_goes_on_and_says_how_to_get_it(tmp_path, monkeypatch):
    # None in sys.modules makes `import tensorboard` (and torch's wrapper) raise ImportError.
    for module in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, module, None)
    out = tmp_path / "run"
    result = _run(tmp_path, out, log={"tensorboard": True})
    assert result.exit_code == 0, result.output
    assert (out / "metrics.json").is_file() and (out / "figure.png").is_file()
    assert not (out / "tensorboard").exists()
    log_text = (out / "log.txt").read_text()
    assert log_text.count(MISSING) == 1
    assert "pip install 'coldkit[tensorboard]'" in " ".join(result.output.split())


def test_off_by_default_and_resumable_from_a_folder_without_log_section(tmp_path: Path):
    out = tmp_path / "run"
    assert _run(tmp_path, out).exit_code == 0
    assert not (out / "tensorboard").exists()
    assert read_toml(out / "config.toml")["log"] == {"tensorboard": False}
    # a run folder written before [log] existed resumes, and may switch TensorBoard on
    saved = read_toml(out / "config.toml")
    del saved["log"]
    write_toml(out / "config.toml", saved)
    result = runner.invoke(app, ["run", str(out), "--set", "log.tensorboard=false"])
    assert result.exit_code == 0, result.output


def test_resumed_run_continues_the_same_curves(tmp_path: Path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert _run(tmp_path, out, log={"tensorboard": True}).exit_code == 0
    result = runner.invoke(app, ["run", str(out), "--set", "train.steps=8"])
    assert result.exit_code == 0, result.output
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert [event.step for event in events.Scalars("train/loss")] == [2, 4, 6, 8]
    assert [event.step for event in events.Scalars("metrics/sampled/ssim")] == [6, 8]
