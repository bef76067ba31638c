"""Issue 29, item 1: a run that diverged is recovered by the command its message names, even
when its last checkpoint holds finite weights that are already ruined."""

from __future__ import annotations

import re

import torch

from tests.faults.conftest import config_file, invoke, refused, succeeded


def _steps(path) -> int:
    return torch.load(path, weights_only=True)["step"]


def _named_command(output: str) -> list[str]:
    text = " ".join(output.split())  # rich wraps long lines
    found = re.search(r"`coldkit run (\S+) --from-step (\d+) --set (\S+)`", text)
    assert found is not None, output
    return ["run", found.group(1), "--from-step", found.group(2), "--set", found.group(3)]


def test_a_ruined_last_checkpoint_is_skipped_for_the_last_healthy_one(tmp_path):
    config, out = config_file(tmp_path), tmp_path / "run"
    every = ["--set", "train.checkpoint_every=1", "--set", "train.log_every=1"]
    succeeded(invoke("run", config, "--out", out, "--set", "train.steps=3", *every))
    # Step 4 still shows a sane loss (computed with the weights of step 3), then its huge step
    # ruins the weights it saves: finite, but the loss of step 5 is NaN.
    result = invoke("run", out, "--set", "train.steps=6", "--set", "train.lr=1e12", *every)
    refused(result, "--from-step 3", "step 4", "ruined")
    assert _steps(out / "checkpoints" / "last.pt") == 4
    assert _steps(out / "checkpoints" / "healthy.pt") == 3
    command = _named_command(result.output)
    result = invoke(*command, "--set", "train.steps=6", *every)
    succeeded(result)
    assert "at step 3" in result.output
    final = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert final["step"] == 6
    assert all(torch.isfinite(value).all() for value in final["model"].values())
    assert max(final["losses"][3:]) < 2 * final["losses"][0]
    assert _steps(out / "checkpoints" / "discarded.pt") == 4  # moved aside, not deleted


def test_a_run_ruined_from_its_first_step_starts_over(tmp_path):
    config, out = config_file(tmp_path), tmp_path / "run"
    every = ["--set", "train.checkpoint_every=1", "--set", "train.log_every=1"]
    result = invoke("run", config, "--out", out, "--set", "train.lr=1e30", *every)
    refused(result, "--from-step 0")
    assert not (out / "checkpoints" / "healthy.pt").exists()
    command = _named_command(result.output)
    assert command[3] == "0"
    result = invoke(*command, *every)
    succeeded(result)
    final = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert final["step"] == 6 and final["losses"][-1] < 2 * final["losses"][0]


def test_from_step_names_the_steps_kept_when_asked_for_another(tmp_path):
    config, out = config_file(tmp_path), tmp_path / "run"
    succeeded(invoke("run", config, "--out", out, "--set", "train.steps=3"))
    refused(invoke("run", out, "--from-step", "2"), "step 2", "0, 3", "--from-step")
    refused(invoke("run", out, "--from-step", "-1"), "negative")
