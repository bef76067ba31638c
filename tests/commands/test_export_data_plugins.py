"""An export of a run whose degradation reads a dataset of another package lists that package:
the manifest's ``data_plugins``, the model card's install line, and opening the folder without it
names it (exit 2) instead of failing at the first degrade."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from coldkit.cli import app
from coldkit.config import write_toml
from coldkit.runs.manifest import validate_manifest
from tests.conftest import install_fake_distribution, tiny_experiment
from tests.generation.test_restore import write_png

runner = CliRunner()

SHAPES = '''
import torch
from coldkit import ImageSet

class Shapes:
    name = "shapes"
    description = "seeded squares, for the test"

    def __init__(self, params):
        pass

    def load(self, split):
        images = torch.rand(48, 3, 16, 16, generator=torch.Generator().manual_seed(1))
        part = {"train": images[:32], "val": images[32:40], "test": images[40:]}[split]
        return ImageSet(part, f"squares, {split}")

def register_datasets(register):
    register(Shapes)

from coldkit import hookimpl
register_datasets = hookimpl(register_datasets)
'''


def test_export_lists_the_data_plugin_and_opening_without_it_names_it(
    site: Path, tmp_path: Path, monkeypatch
):
    install_fake_distribution(site, "coldkit-shapes", "1.0", {"shapes": "shapes_data"},
                              {"shapes_data": SHAPES})
    data = tiny_experiment(train={"steps": 2, "checkpoint_every": 2})
    data["degradation"] = {"name": "morph", "steps": 3, "target": "shapes"}
    config = tmp_path / "morph.toml"
    write_toml(config, data)
    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    model = tmp_path / "model"
    result = runner.invoke(app, ["export", str(tmp_path / "run"), str(model)])
    assert result.exit_code == 0, result.output

    manifest = json.loads((model / "coldkit_model.json").read_text())
    assert validate_manifest(manifest) == []
    assert {"name": "shapes", "plugin": "shapes", "distribution": "coldkit-shapes",
            "version": "1.0"} in manifest["data_plugins"]
    assert "coldkit-shapes" in (model / "README.md").read_text()

    monkeypatch.setenv("COLDKIT_DISABLE_PLUGINS", "coldkit-shapes")
    result = runner.invoke(app, ["restore", str(model), str(write_png(tmp_path / "a.png", 16, 16)),
                                 "--t", "1"])
    assert result.exit_code == 2, result.output
    assert "dataset 'shapes'" in result.output
    assert "pip install coldkit-shapes==1.0" in result.output


def test_a_manifest_without_data_plugins_still_validates(tmp_path: Path):
    manifest = {
        "format": "coldkit-model", "format_version": 1, "step": 2,
        "restorer_context": {"channels": 3, "image_size": 16, "steps": 4},
        "files": {"model.safetensors": "0" * 64}, "config": {},
    }
    assert validate_manifest(manifest) == []
    manifest["data_plugins"] = [{"name": "shapes", "distribution": "not a name!"}]
    assert any(problem.startswith("data_plugins.0.distribution")
               for problem in validate_manifest(manifest))
