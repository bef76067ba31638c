"""End-to-end `coldkit run` on tiny synthetic data, resume, and config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from coldkit.cli import app
from coldkit.config import read_toml, write_toml
from coldkit.training.trainer import Trainer
from tests.conftest import tiny_experiment

runner = CliRunner()

ARTEFACTS = (
    "config.toml",
    "run.json",
    "log.txt",
    "checkpoints/last.pt",
    "metrics.json",
    "table.md",
    "figure.png",
    "loss_curve.png",
)


def run(*args: str):
    return runner.invoke(app, ["run", *args])


def test_tiny_run_writes_every_artefact(tiny_config: Path, tmp_path: Path):
    out = tmp_path / "run"
    result = run(str(tiny_config), "--out", str(out))
    assert result.exit_code == 0, result.output
    for name in ARTEFACTS:
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["rows"]) == {"degraded", "direct", "sampled"}
    for row in metrics["rows"].values():
        assert 0.0 <= row["rmse"] <= 1.0 and -1.0 <= row["ssim"] <= 1.0
        assert row["fid"] >= 0.0 and row["fid_images"] == row["fid_reference_images"] == 8
    assert metrics["fid_note"] is None
    assert metrics["train_steps"] == 6 and metrics["num_images"] == 8
    table = (out / "table.md").read_text()
    for row in ("degraded", "direct", "sampled (improved)"):
        assert f"| {row} |" in table
    with Image.open(out / "figure.png") as figure:
        # 4 columns (degraded, direct, sampled, original) of 16 px images enlarged 3x, 3 rows.
        assert figure.width == 4 * (48 + 2) + 2 and figure.height == 16 + 3 * (48 + 2) + 2
    saved = read_toml(out / "config.toml")
    assert saved["degradation"]["padding"] == "circular"  # defaults are filled in
    assert saved["restorer"]["residual"] is True
    assert json.loads((out / "run.json").read_text())["plugins"]["degradation"]["name"] == "blur"
    assert "sampled (improved)" in result.output  # the rich table


def test_set_overrides_and_default_run_folder(tiny_config: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(str(tiny_config), "--set", "train.steps=2", "--set", "name=custom")
    assert result.exit_code == 0, result.output
    assert json.loads(Path("runs/custom/metrics.json").read_text())["train_steps"] == 2


def test_interrupted_run_resumes_from_checkpoint(tiny_config: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "run"
    original_step = Trainer.train_step

    def interrupted_step(self):
        if self.state.step == 4:  # after the checkpoint at step 3
            raise KeyboardInterrupt
        return original_step(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    result = run(str(tiny_config), "--out", str(out))
    assert result.exit_code == 130
    assert (out / "checkpoints" / "last.pt").is_file()
    assert not (out / "metrics.json").exists()
    monkeypatch.setattr(Trainer, "train_step", original_step)

    result = run(str(out))  # the run folder itself
    assert result.exit_code == 0, result.output
    assert "resumed from" in result.output and "at step 3" in result.output
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["train_steps"] == 6

    # Same seed, uninterrupted: the resumed run has exactly the same loss curve.
    fresh = tmp_path / "fresh"
    assert run(str(tiny_config), "--out", str(fresh)).exit_code == 0
    from coldkit.runs.checkpoint import load_checkpoint

    assert load_checkpoint(out / "checkpoints/last.pt")["losses"] == load_checkpoint(
        fresh / "checkpoints/last.pt"
    )["losses"]


def test_resume_with_more_steps_trains_on(tiny_config: Path, tmp_path: Path):
    out = tmp_path / "run"
    assert run(str(tiny_config), "--out", str(out)).exit_code == 0
    result = run(str(out), "--set", "train.steps=8")
    assert result.exit_code == 0, result.output
    assert "at step 6" in result.output
    assert json.loads((out / "metrics.json").read_text())["train_steps"] == 8


def test_same_folder_different_model_is_refused_and_nothing_is_lost(tiny_config, tmp_path):
    out = tmp_path / "run"
    assert run(str(tiny_config), "--out", str(out)).exit_code == 0
    before = {name: (out / name).read_bytes() for name in ARTEFACTS}
    result = run(str(tiny_config), "--out", str(out), "--set", "restorer.width=16")
    assert result.exit_code == 2
    assert "restorer.width" in result.output and "--out" in result.output
    assert {name: (out / name).read_bytes() for name in ARTEFACTS} == before


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"train": {"stepz": 3}}, "train.stepz"),
        ({"train": {"steps": "many"}}, "train.steps"),
        ({"degradation": {"name": "blurr"}}, "blur"),  # lists the valid names
        ({"degradation": {"sigmaa": 1.0}}, "degradation.sigmaa"),
        ({"degradation": {"kernel_size": 4}}, "odd"),
        ({"dataset": {"name": "nope"}}, "synthetic"),
        ({"evaluate": {"sampler": "fancy"}}, "improved"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_config_exits_2_and_names_the_key(tmp_path: Path, change, expected):
    path = tmp_path / "bad.toml"
    write_toml(path, tiny_experiment(**change))
    result = run(str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_missing_and_malformed_config_files(tmp_path: Path):
    result = run(str(tmp_path / "absent.toml"))
    assert result.exit_code == 2 and "does not exist" in result.output
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\nsteps = 3")
    result = run(str(broken))
    assert result.exit_code == 2 and "not valid TOML" in result.output
    result = run(str(tmp_path))  # a folder that is not a run folder
    assert result.exit_code == 2 and "not a coldkit run folder" in result.output


def test_bad_override_syntax(tiny_config: Path):
    result = run(str(tiny_config), "--set", "train.steps")
    assert result.exit_code == 2 and "section.key=value" in result.output


def test_broken_checkpoint_is_reported_not_overwritten(tiny_config: Path, tmp_path: Path):
    out = tmp_path / "run"
    assert run(str(tiny_config), "--out", str(out)).exit_code == 0
    checkpoint = out / "checkpoints" / "last.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    result = run(str(out))
    assert result.exit_code == 2 and "cannot be read" in result.output
    assert checkpoint.read_bytes() == b"not a checkpoint"


def test_validate_prints_resolved_config(tiny_config: Path):
    result = runner.invoke(app, ["validate", str(tiny_config)])
    assert result.exit_code == 0, result.output
    assert 'padding = "circular"' in result.output


@pytest.mark.parametrize("kind", ["degradations", "restorers", "samplers", "datasets"])
def test_listings(kind):
    result = runner.invoke(app, [f"list-{kind}", "--json"])
    assert result.exit_code == 0, result.output
    names = {row["name"] for row in json.loads(result.output)}
    expected = {
        "degradations": {"blur"},
        "restorers": {"unet"},
        "samplers": {"direct", "naive", "improved"},
        "datasets": {"mnist", "fashion-mnist", "image-folder", "synthetic"},
    }[kind]
    assert expected <= names
    rows = json.loads(result.output)
    assert all(row["distribution"] == "coldkit" for row in rows if row["name"] in expected)


def held_back_config(tmp_path: Path, count: int, seed: int, **evaluate) -> tuple[Path, Path]:
    """A tiny experiment scored on an IDX file of ``count`` other images; returns (config, idx)."""
    import numpy as np

    from coldkit.data import write_idx

    idx = tmp_path / "t10k-images-idx3-ubyte"
    write_idx(idx, np.random.default_rng(seed).integers(0, 256, (count, 28, 28)))
    dataset = {"name": "image-folder", "path": str(idx), **evaluate.pop("dataset", {})}
    config = tmp_path / "held_back.toml"
    write_toml(config, tiny_experiment(evaluate={**evaluate, "dataset": dataset}))
    return config, idx


def test_evaluation_on_another_dataset(tmp_path: Path):
    """A model can be judged on data it never saw: here an IDX file of other images."""
    config, idx = held_back_config(tmp_path, 40, 0, num_images=6, dataset={"test_fraction": 0.5})
    out = tmp_path / "run"
    result = run(str(config), "--out", str(out))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert str(idx) in metrics["evaluation_source"] and metrics["num_images"] == 6
    assert "synthetic" in metrics["training_source"]

    # Re-scoring a finished run on other data needs no retraining.
    result = run(str(out), "--set", "evaluate.num_images=4")
    assert result.exit_code == 0, result.output
    assert "training already complete" in result.output
    assert json.loads((out / "metrics.json").read_text())["num_images"] == 4


def test_all_split_scores_every_image_of_a_held_back_set(tmp_path: Path):
    config, _ = held_back_config(tmp_path, 12, 1, split="all", num_images=100)
    result = run(str(config), "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["num_images"] == 12


def test_error_messages_keep_bracketed_section_names(tmp_path: Path):
    # Rich markup once swallowed "[degradation]", printing "... for degradation 'blur' in : ...".
    config = tmp_path / "bad.toml"
    write_toml(config, tiny_experiment(degradation={"name": "blur", "sigma": -1.0}))
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert "Invalid parameters for degradation 'blur' in [degradation]" in result.output


def test_a_checkpoint_that_needs_pickled_objects_is_refused_not_executed(tiny_config, tmp_path):
    out = tmp_path / "run"
    assert run(str(tiny_config), "--out", str(out)).exit_code == 0
    checkpoint = out / "checkpoints" / "last.pt"
    state = torch.load(checkpoint, weights_only=True)
    state["payload"] = Path("anything")  # a Python object: loading it needs the unpickler
    torch.save(state, checkpoint)
    result = run(str(out), "--set", "train.steps=8")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "holds more than tensors and plain data" in result.output and "PosixPath" in result.output


def test_out_where_no_folder_can_be_made_is_exit_2(tiny_config: Path, tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    result = run(str(tiny_config), "--out", str(blocker / "run"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Cannot create the run folder" in result.output and "--out" in result.output


def test_a_full_disk_while_checkpointing_keeps_the_previous_file(tmp_path: Path, monkeypatch):
    import errno

    from coldkit.runs.checkpoint import save_atomic
    from coldkit.errors import CheckpointError

    path = tmp_path / "last.pt"
    save_atomic({"step": 1}, path)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(CheckpointError, match="No space left on device"):
        save_atomic({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert not (tmp_path / "last.pt.tmp").exists()


def test_a_second_run_on_a_folder_in_use_refuses(tiny_config: Path, tmp_path: Path):
    import fcntl

    out = tmp_path / "run"
    assert run(str(tiny_config), "--out", str(out)).exit_code == 0
    before = (out / "checkpoints" / "last.pt").read_bytes()
    config_before = (out / "config.toml").read_text()
    with open(out / ".lock", "a+") as held:  # another process's run, as far as flock can tell
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run(str(out), "--set", "train.steps=12")
    assert result.exit_code == 2 and "is in use" in result.output
    assert (out / "checkpoints" / "last.pt").read_bytes() == before
    assert (out / "config.toml").read_text() == config_before  # not even the new budget
    # Released: the same command now trains on.
    assert run(str(out), "--set", "train.steps=8").exit_code == 0


def test_out_of_memory_is_a_message_naming_the_settings(tiny_config: Path, tmp_path: Path, monkeypatch):
    import coldkit.evaluation.stage

    def exhausted(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 123 bytes")

    monkeypatch.setattr(coldkit.evaluation.stage, "evaluate", exhausted)
    result = run(str(tiny_config), "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Out of memory" in result.output and "evaluate.batch_size" in result.output
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


def test_training_on_after_the_time_budget_says_which_limit_and_then_trains(tmp_path: Path):
    config = tmp_path / "timed.toml"
    write_toml(config, tiny_experiment(train={"steps": 4, "max_minutes": 1e-5}))
    out = tmp_path / "run"
    assert run(str(config), "--out", str(out)).exit_code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stopped_by"] == "max_minutes" and metrics["train_steps"] < 4

    # Raising only the steps: the time budget still binds, and the output says how to lift it.
    result = run(str(out), "--set", "train.steps=8")
    assert result.exit_code == 0, result.output
    assert "training already complete" in result.output
    assert "stopped by train.max_minutes" in result.output
    assert "--set train.max_minutes=N" in result.output

    # Raising both, as the README says, trains on from the checkpoint to the new step count.
    result = run(str(out), "--set", "train.steps=8", "--set", "train.max_minutes=10")
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_steps"] == 8 and metrics["stopped_by"] == "steps"
