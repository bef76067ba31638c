"""Fault injection, a full disk: running out of space at every write site ends in exit 2 naming
the file, keeps what was on disk, and leaves no temporary file behind (so the rerun, with space
freed, works)."""

from __future__ import annotations

import errno
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.faults.conftest import config_file, invoke, refused, snapshot, succeeded

NO_SPACE = "No space left on device"


def _no_temporaries(folder: Path) -> None:
    assert not [path for path in folder.rglob("*.tmp")], list(folder.rglob("*.tmp"))


def test_torch_runtime_error_on_a_full_disk_is_exit_2_and_the_rerun_resumes(
    tmp_path, monkeypatch
):
    real_save = torch.save
    calls = {"n": 0}

    def save(obj, handle, *args, **kwargs):  # the second checkpoint fails as torch fails
        calls["n"] += 1
        if calls["n"] == 2:
            handle.write(b"partial")
            raise RuntimeError(
                "[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0 "
                "(file write failed)"
            )
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    out = tmp_path / "run"
    refused(invoke("run", config_file(tmp_path), "--out", out), "last.pt", "Free disk space")
    _no_temporaries(out)
    first = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert first["step"] == 3  # the first checkpoint is intact
    monkeypatch.setattr(torch, "save", real_save)
    succeeded(invoke("run", out))  # the same command resumes


@pytest.mark.parametrize(
    "artefact", ["metrics.json", "table.md", "figure.png", "loss_curve.png", "run.json",
                 "config.toml", "generated.png", "samples.pt", "generation.json"]
)
def test_a_full_disk_at_each_file_of_a_run_is_exit_2_and_keeps_the_old_file(
    finished_run, full_disk, artefact
):
    path = finished_run / artefact
    before = path.read_bytes()
    full_disk(finished_run, only=artefact)
    refused(invoke("run", finished_run, "--set", "train.steps=8"), "Could not write",
            artefact, "Free disk space")
    assert path.read_bytes() == before
    _no_temporaries(finished_run)


def test_a_full_disk_while_logging_is_exit_2(finished_run, monkeypatch):
    import os

    real_open = os.open

    def no_space(path, flags, *args, **kwargs):
        if str(path).endswith("log.txt"):
            raise OSError(errno.ENOSPC, NO_SPACE, str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_space)
    refused(invoke("run", finished_run, "--set", "train.steps=8"), "log.txt", NO_SPACE)


@pytest.mark.parametrize("command", ["generate", "restore", "compare"])
def test_pngs_are_atomic_a_full_disk_never_leaves_a_corrupt_or_empty_png(
    finished_run, tmp_path, full_disk, command
):
    out = tmp_path / "out"
    out.mkdir()
    existing = out / ("compare.png" if command == "compare" else "generated.png")
    Image.new("RGB", (8, 8), "red").save(existing)
    before = existing.read_bytes()
    full_disk(out)
    if command == "generate":
        result = invoke("generate", finished_run, "-n", 4, "--no-judge", "--out", out)
    elif command == "restore":
        image = tmp_path / "blurry.png"
        Image.new("L", (16, 16), 128).save(image)
        result = invoke("restore", finished_run, image, "--t", 2, "--out", out)
    else:
        result = invoke("compare", finished_run, "--figure", existing)
    refused(result, "Could not write", "Free disk space")
    assert existing.read_bytes() == before
    assert all(path.stat().st_size > 0 for path in out.rglob("*.png"))
    _no_temporaries(out)


@pytest.mark.parametrize("site", ["prior", "judge"])
def test_a_full_disk_when_caching_a_prior_or_judge_is_exit_2_or_goes_on(
    finished_run, tmp_path, monkeypatch, site
):
    """A cache that cannot be written (prior, judge classifier) is used without caching."""
    import coldkit.generation.priors as priors
    import coldkit.evaluation.judge as judge
    from coldkit.errors import CheckpointError

    def no_space(*args, **kwargs):
        raise CheckpointError(f"Could not write the {site} ({NO_SPACE}).")

    shutil.rmtree(finished_run / "priors", ignore_errors=True)
    monkeypatch.setattr(priors, "save_prior", no_space)
    monkeypatch.setattr(judge, "save_classifier", no_space)
    result = invoke("generate", finished_run, "-n", 4, "--out", tmp_path / "out",
                    *(["--judge"] if site == "judge" else ["--no-judge"]))
    succeeded(result)
    assert (tmp_path / "out" / "samples.pt").is_file()
    assert not (finished_run / "priors").exists() or not any((finished_run / "priors").iterdir())


def _tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def test_a_real_full_tmpfs_is_exit_2_and_leaves_no_temporary(tmp_path):
    """The issue's reproduction, where the machine lets a test mount a small tmpfs (root)."""
    small = tmp_path / "small"
    if not _tmpfs(small, "600k"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        config = config_file(tmp_path, restorer={"width": 32})
        result = invoke("run", config, "--out", small / "run", "--set", "train.steps=4",
                        "--set", "train.checkpoint_every=2")
        refused(result, "Could not write", "disk", "--out")
        _no_temporaries(small)
    finally:
        subprocess.run(["umount", str(small)], capture_output=True, timeout=10)
