"""`coldkit export`: an exported model folder loads like its run folder, bit for bit, and a
damaged, truncated or plugin-less copy is refused."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import coldkit.api as ck
from coldkit.cli import app
from coldkit.config import write_toml
from coldkit.generation.priors import load_prior
from coldkit.plugins import Registry
from coldkit.runs import exported
from tests.conftest import tiny_experiment
from tests.generation.test_restore import write_png

runner = CliRunner()
GENERATE = {
    "num_samples": 8, "batch_size": 8, "grid_size": 4, "judge": False,
    "prior": {"name": "pca-gmm", "components": 2, "dims": 4},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained run with a fitted prior (its [generate] stage ran)."""
    root = tmp_path_factory.mktemp("export")
    config = root / "tiny.toml"
    write_toml(config, tiny_experiment(train={"steps": 2, "checkpoint_every": 2},
                                       generate=GENERATE))
    result = runner.invoke(app, ["run", str(config), "--out", str(root / "run")])
    assert result.exit_code == 0, result.output
    return root / "run"


@pytest.fixture(scope="module")
def model_dir(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "tiny_model"
    result = runner.invoke(app, ["export", str(run_dir), str(out)])
    assert result.exit_code == 0, result.output
    return out


def _copy(model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    return copy


def test_export_writes_safetensors_manifest_prior_and_card(run_dir: Path, model_dir: Path):
    names = {path.relative_to(model_dir).as_posix() for path in model_dir.rglob("*")}
    for name in ("model.safetensors", "coldkit_model.json", "config.toml", "README.md",
                 "figure.png", "metrics.json", "priors/pca-gmm.safetensors"):
        assert name in names, name
    assert not any(name.endswith(".pt") for name in names)  # no pickle anywhere
    manifest = json.loads((model_dir / "coldkit_model.json").read_text())
    assert manifest["restorer_context"] == {"channels": 1, "image_size": 16, "steps": 4}
    assert manifest["config"]["degradation"]["sigma"] == 1.0 and manifest["step"] == 2
    assert manifest["plugins"]["restorer"]["distribution"] == "coldkit"
    assert manifest["files"]["model.safetensors"] == exported.sha256_of(
        model_dir / "model.safetensors"
    )
    # The weights are the run's EMA weights.
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    weights = load_file(model_dir / "model.safetensors")
    assert weights.keys() == state["ema"]["model"].keys()
    assert all(torch.equal(weights[key], state["ema"]["model"][key]) for key in weights)
    # The prior reads back with the same tensors.
    registry = Registry.discover()
    original = load_prior(run_dir / "priors" / "pca-gmm.pt", registry).prior.state_dict()
    copied = load_prior(model_dir / "priors" / "pca-gmm.safetensors", registry).prior.state_dict()
    assert all(torch.equal(original[key], copied[key]) for key in original)


def test_model_card_holds_the_runs_real_numbers(run_dir: Path, model_dir: Path):
    card = (model_dir / "README.md").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    direct = metrics["rows"]["direct"]["ssim"]
    assert f"| {direct:.3f} |" in card
    assert "2 optimizer steps" in card and "synthetic" in card.lower()
    assert "![Figure 3" in card and "(figure.png)" in card
    assert "| restorer | `unet` | coldkit |" in card
    assert "coldkit restore tiny_model" in card
    generation = json.loads((run_dir / "generation.json").read_text())
    assert f"{generation['num_samples']} samples from the fitted prior `pca-gmm`" in card
    assert "(generated.png)" in card


def test_exported_folder_restores_bit_for_bit_like_the_run(
    run_dir: Path, model_dir: Path, tmp_path: Path
):
    image = write_png(tmp_path / "blurry.png", 16, 16)
    outputs = {}
    for name, folder in (("run", run_dir), ("model", model_dir)):
        out = tmp_path / name
        result = runner.invoke(app, ["restore", str(folder), str(image), "--t", "3", "--out",
                                     str(out)])
        assert result.exit_code == 0, result.output
        outputs[name] = (out / "blurry_restored.png").read_bytes()
    assert outputs["run"] == outputs["model"]
    x = torch.rand(3, 1, 16, 16)
    t = torch.full((3,), 4)
    from_run = ck.open(run_dir, device="cpu").restore(x, t)
    from_model = ck.open(model_dir, device="cpu").restore(x, t)
    assert torch.equal(from_run, from_model)


def test_generate_and_compare_accept_an_exported_folder(model_dir: Path, tmp_path: Path):
    copy = _copy(model_dir, tmp_path)
    out = tmp_path / "generated"
    result = runner.invoke(app, ["generate", str(copy), "-n", "4", "--no-judge", "--out",
                                 str(out)])
    assert result.exit_code == 0, result.output
    assert "loaded from" in result.output and (out / "samples.pt").is_file()
    figure = tmp_path / "compare.png"
    compared = runner.invoke(app, ["compare", str(copy), "--markdown", "--figure", str(figure)])
    assert compared.exit_code == 0, compared.output
    assert "| copy |" in compared.output and figure.is_file()


def test_tampered_weights_are_refused(model_dir: Path, tmp_path: Path):
    copy = _copy(model_dir, tmp_path)
    weights = load_file(copy / "model.safetensors")
    key = next(iter(weights))
    weights[key] = weights[key] + 0.01
    from safetensors.torch import save_file

    save_file(weights, str(copy / "model.safetensors"))
    result = runner.invoke(app, ["restore", str(copy), str(write_png(tmp_path / "a.png", 16, 16))])
    assert result.exit_code == 2
    assert "sha256" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("removed", ["model.safetensors", "coldkit_model.json",
                                     "priors/pca-gmm.safetensors"])
def test_truncated_folder_is_refused(model_dir: Path, tmp_path: Path, removed: str):
    copy = _copy(model_dir, tmp_path)
    (copy / removed).unlink()
    result = runner.invoke(app, ["restore", str(copy), str(write_png(tmp_path / "a.png", 16, 16))])
    assert result.exit_code == 2, result.output
    assert "incomplete exported model" in result.output


def test_missing_plugin_names_the_package_to_install(
    model_dir: Path, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("COLDKIT_DISABLE_PLUGINS", "unet")
    result = runner.invoke(app, ["restore", str(model_dir),
                                 str(write_png(tmp_path / "a.png", 16, 16))])
    assert result.exit_code == 2, result.output
    assert "restorer 'unet'" in result.output and "pip install coldkit" in result.output


def test_export_refuses_a_non_empty_target_and_writes_nothing_on_failure(
    run_dir: Path, tmp_path: Path
):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "file.txt").write_text("mine")
    result = runner.invoke(app, ["export", str(run_dir), str(target)])
    assert result.exit_code == 2 and "not empty" in result.output
    missing = runner.invoke(app, ["export", str(tmp_path / "nothing"), str(tmp_path / "out")])
    assert missing.exit_code == 2 and not (tmp_path / "out").exists()


def test_a_full_disk_during_export_is_exit_2_and_leaves_no_folder(
    run_dir: Path, tmp_path: Path, monkeypatch
):
    import errno

    import coldkit.export

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(coldkit.export, "save_file", full)
    target = tmp_path / "models" / "m"
    result = runner.invoke(app, ["export", str(run_dir), str(target)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "No space left" in result.output
    assert not target.exists() and list((tmp_path / "models").iterdir()) == []


def test_push_to_hub_without_the_extra_says_how_to_install(
    run_dir: Path, tmp_path: Path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed
    result = runner.invoke(app, ["export", str(run_dir), str(tmp_path / "m"), "--push-to-hub",
                                 "me/tiny"])
    assert result.exit_code == 2 and "coldkit[hub]" in result.output
    assert not (tmp_path / "m").exists()  # refused before writing anything
    image = write_png(tmp_path / "a.png", 16, 16)
    hub = runner.invoke(app, ["restore", "hf://me/tiny", str(image)])
    assert hub.exit_code == 2 and "coldkit[hub]" in hub.output


def test_run_refuses_to_train_inside_an_exported_folder(model_dir: Path):
    result = runner.invoke(app, ["run", str(model_dir)])
    assert result.exit_code == 2 and "exported model" in result.output
    assert not (model_dir / "checkpoints").exists()
