"""Fault injection on reruns: what a rerun may change, what is checked before the first write, and
checkpoints that refuse a model they were not trained for."""

from __future__ import annotations

import json

import pytest
import torch

from coldkit.config import read_toml, write_toml
from tests.faults.conftest import config_file, invoke, refused, snapshot, succeeded


def test_a_nan_run_is_recovered_by_the_fix_its_message_names(tmp_path):
    config, out = config_file(tmp_path), tmp_path / "run"
    succeeded(invoke("run", config, "--out", out, "--set", "train.steps=3"))
    result = invoke("run", out, "--set", "train.steps=6", "--set", "train.lr=1e30")
    refused(result, "train.lr", "train.grad_clip", "restarts from it")
    kept = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert kept["step"] == 3
    assert all(torch.isfinite(value).all() for value in kept["model"].values())
    result = invoke("run", out, "--set", "train.steps=6", "--set", "train.lr=1e-3",
                    "--set", "train.grad_clip=0.5")
    succeeded(result)
    assert "resumed from" in result.output and "at step 3" in result.output
    assert read_toml(out / "config.toml")["train"]["lr"] == 1e-3


def test_a_nan_before_any_checkpoint_lets_the_corrected_config_run(tmp_path):
    config, out = config_file(tmp_path), tmp_path / "run"
    refused(invoke("run", config, "--out", out, "--set", "train.lr=1e30"),
            "no checkpoint was written yet")
    succeeded(invoke("run", config, "--out", out))


def test_metrics_json_is_valid_json_even_with_non_finite_scores(tmp_path):
    from coldkit.evaluation.report import write_metrics_json

    path = tmp_path / "metrics.json"
    write_metrics_json({"rows": {"direct": {"ssim": float("nan"), "fid": float("inf")}}}, path)
    data = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(name))
    assert data["rows"]["direct"] == {"ssim": None, "fid": "inf"}
    assert data["non_finite"] == {"rows.direct.ssim": "nan", "rows.direct.fid": "inf"}


@pytest.mark.parametrize(
    "change, words",
    [
        ({"dataset": {"image_size": 18}}, ["restorer", "image_size"]),
        ({"device": "cuda:7"}, ["device", "cuda"]),
        ({"seed": 10**20}, ["seed"]),
        ({"degradation": {"steps": 10**12}}, ["degradation.steps", "fits", "GiB"]),
        ({"train": {"lr": "inf"}}, ["train.lr", "finite"]),
        ({"degradation": {"sigma": "inf"}}, ["degradation.sigma", "finite"]),
    ],
)
def test_what_can_be_checked_is_checked_before_the_first_write(tmp_path, change, words):
    out = tmp_path / "run"
    config = config_file(tmp_path)
    overrides = []
    for section, value in change.items():
        if isinstance(value, dict):
            overrides += [f"{section}.{key}={item}" for key, item in value.items()]
        else:
            overrides.append(f"{section}={value!r}".replace("'", '"'))
    refused(invoke("run", config, "--out", out, *(f"--set={item}" for item in overrides)),
            *words)
    assert not out.exists()  # nothing was written


def test_a_failure_before_any_checkpoint_lets_the_corrected_rerun_go_ahead(
    tmp_path, monkeypatch
):
    import coldkit.training.trainer as trainer

    def exhausted(self):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1")

    out, config = tmp_path / "run", config_file(tmp_path)
    monkeypatch.setattr(trainer.Trainer, "train_step", exhausted)
    refused(invoke("run", config, "--out", out), "Out of memory", "No checkpoint was written",
            "degradation.steps")
    assert "The last checkpoint" not in invoke("run", config, "--out", out).output
    monkeypatch.undo()
    succeeded(invoke("run", config, "--out", out, "--set", "train.batch_size=4",
                     "--set", "restorer.width=16"))
    assert read_toml(out / "config.toml")["restorer"]["width"] == 16


def test_a_checkpoint_refuses_a_config_edited_to_another_t(finished_run):
    config = read_toml(finished_run / "config.toml")
    config["degradation"]["steps"] = 7
    write_toml(finished_run / "config.toml", config)
    before = snapshot(finished_run)
    for command in (["run", finished_run],
                    ["generate", finished_run, "-n", "2", "--no-judge"]):
        result = invoke(*command)
        refused(result, "trained for another model", "degradation.steps: checkpoint 4, config 7")
    after = snapshot(finished_run)
    assert {key: value for key, value in after.items() if key != "log.txt"} == {
        key: value for key, value in before.items() if key != "log.txt"
    }


def test_generate_refuses_a_set_that_changes_the_model_in_a_few_lines(finished_run):
    result = invoke("generate", finished_run, "-n", "2", "--set", "restorer.width=16")
    refused(result, "restorer", "fixes")
    assert len(result.output.strip().splitlines()) <= 3


@pytest.mark.parametrize("recorded", [True, False])
def test_opening_a_run_with_another_restorer_is_a_short_message(finished_run, recorded):
    from coldkit.errors import CheckpointError
    from coldkit.runs.opened import open_run

    if not recorded:  # a checkpoint from before checkpoints recorded what they were trained for
        state = torch.load(finished_run / "checkpoints" / "last.pt", weights_only=True)
        state.pop("trained_for", None)
        torch.save(state, finished_run / "checkpoints" / "last.pt")
    config = read_toml(finished_run / "config.toml")
    config["restorer"]["width"] = 16
    with pytest.raises(CheckpointError) as caught:
        open_run(finished_run, config=config)
    message = str(caught.value)
    assert "last.pt" in message and len(message.splitlines()) == 1 and len(message) < 600


def test_a_checkpoint_from_before_a_setting_existed_still_opens(finished_run):
    """A run trained before a plugin gained a setting (here the U-Net's standardize_input) opens
    with the setting's default, and a value that changes the weights is still refused."""
    from coldkit.errors import CheckpointError
    from coldkit.runs.opened import open_run

    path = finished_run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    del state["trained_for"]["restorer"]["standardize_input"]
    torch.save(state, path)
    succeeded(invoke("generate", finished_run, "-n", "2", "--no-judge"))
    config = read_toml(finished_run / "config.toml")
    config["restorer"]["standardize_input"] = True
    with pytest.raises(CheckpointError) as caught:
        open_run(finished_run, config=config)
    assert "last.pt" in str(caught.value) and len(str(caught.value).splitlines()) == 1
