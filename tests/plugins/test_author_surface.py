"""What a plugin author uses without a private import: the public test context
(``coldkit.testing.build_context``), dataset references resolved with the config, and
``load_dataset`` serving the run's channels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from coldkit import BuildContext, DatasetRef, ImageSet
from coldkit.cli import app
from coldkit.config import build_experiment, write_toml
from coldkit.errors import ConfigError
from coldkit.plugins import KINDS, Registry
from coldkit.testing import build_context, make_test_images

from tests.conftest import tiny_experiment

runner = CliRunner()
SYNTHETIC = {"name": "synthetic", "params": {"seed": 7, "count": 64, "size": 16}}


def _grey_data(calls: list):
    """A fake ``load_dataset``: one-channel images, recording what it was asked for."""

    def load(name, params=None, split="train"):
        calls.append((name, dict(params or {}), split))
        return ImageSet(make_test_images(count=4, channels=1), f"fake {name}")

    return load


# --------------------------------------------------------------------- the public test context
def test_build_context_is_public_and_not_collected_by_pytest():
    import coldkit.testing

    assert "build_context" in coldkit.testing.__all__
    assert not any(name.startswith("test") for name in coldkit.testing.__all__)


def test_build_context_carries_every_field_a_run_sets():
    degradation = object()
    calls: list = []
    context = build_context(
        image_size=8, channels=1, steps=5, split="test", device="cpu", seed=3,
        degradation=degradation, load_dataset=_grey_data(calls),
    )
    assert isinstance(context, BuildContext)
    assert (context.image_size, context.channels, context.steps) == (8, 1, 5)
    assert (context.split, context.seed, context.degradation) == ("test", 3, degradation)
    assert context.device == torch.device("cpu")
    context.load_dataset("anything", {"k": 1})
    assert calls == [("anything", {"k": 1}, "test")]  # the split served by default


@pytest.mark.parametrize("kind", KINDS)
def test_build_context_builds_every_builtin_of_every_kind(kind):
    registry = Registry.discover()
    morph = registry.get("degradation", "morph").build(
        {"target": SYNTHETIC, "steps": 4}, build_context()
    )
    context = build_context(steps=4, degradation=morph)
    built = 0
    for name, record in sorted(registry.records[kind].items()):
        params = {"target": SYNTHETIC} if name in ("morph", "morph-target") else {}
        params = {"path": "images"} if name == "image-folder" else params  # read on load only
        params = {"clean": "c", "degraded": "d"} if name == "paired-folder" else params
        component = record.build(params, context)
        assert component is not None, name
        built += 1
    assert built >= 1


# --------------------------------------------------------------------------- load_dataset
def test_load_dataset_returns_the_runs_channels_or_those_asked_for():
    calls: list = []
    colour = build_context(channels=3, load_dataset=_grey_data(calls))
    assert colour.load_dataset("grey").images.shape[1] == 3
    assert colour.load_dataset("grey", channels=1).images.shape[1] == 1
    grey_source = make_test_images(count=2, channels=3)
    grey = build_context(channels=1, load_dataset=lambda n, p=None, s="train": ImageSet(
        grey_source, "colour"))
    assert torch.allclose(grey.load_dataset("colour").images, grey_source.mean(1, keepdim=True))


def test_load_dataset_takes_a_dataset_reference():
    calls: list = []
    context = build_context(load_dataset=_grey_data(calls))
    context.load_dataset(DatasetRef.model_validate({"name": "x", "params": {"a": 1}}), {"b": 2})
    assert calls == [("x", {"a": 1, "b": 2}, "train")]


def test_the_registered_datasets_come_at_the_contexts_channels():
    context = build_context(image_size=8, channels=1)
    images = context.load_dataset(DatasetRef.model_validate(SYNTHETIC)).images
    assert images.shape[1:] == (1, 8, 8)


# ---------------------------------------------------------------------- dataset references
def test_a_reference_is_a_name_or_a_table_and_is_written_back_as_given():
    assert DatasetRef.model_validate("mnist") == DatasetRef(name="mnist")
    assert DatasetRef(name="mnist").model_dump() == "mnist"
    assert DatasetRef.model_validate(SYNTHETIC).model_dump() == SYNTHETIC


def _morph(tmp_path: Path, target) -> Path:
    data = tiny_experiment(degradation={"name": "morph", "steps": 4, "target": target})
    data["degradation"].pop("kernel_size"), data["degradation"].pop("sigma")
    path = tmp_path / "morph.toml"
    write_toml(path, data)
    return path


def test_validate_refuses_a_misspelt_dataset_reference_and_writes_nothing(tmp_path: Path):
    config = _morph(tmp_path, "synthetc")
    before = sorted(tmp_path.iterdir())
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert "degradation.target.name" in result.output and "synthetc" in result.output
    assert "Registered datasets" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and sorted(tmp_path.iterdir()) == before


def test_a_bad_key_in_a_referenced_datasets_params_is_a_config_error(tmp_path: Path):
    config = _morph(tmp_path, {"name": "synthetic", "params": {"cuont": 5}})
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert "unknown key 'degradation.target.cuont'" in result.output
    assert "Valid keys for 'synthetic'" in result.output


def test_the_old_target_params_spelling_still_resolves(tmp_path: Path):
    data = tiny_experiment(degradation={"name": "morph", "steps": 4, "target": "synthetic",
                                        "target_params": {"count": 5}})
    data["degradation"].pop("kernel_size"), data["degradation"].pop("sigma")
    experiment = build_experiment(data, Registry.discover())
    assert experiment.degradation.params.target == DatasetRef(name="synthetic",
                                                              params={"count": 5})
    section = experiment.to_dict()["degradation"]
    assert "target_params" not in section
    assert section["target"] == {"name": "synthetic", "params": {"count": 5}}
    data["degradation"]["target_params"] = {"count": "many"}
    with pytest.raises(ConfigError, match="degradation.target.count"):
        build_experiment(data, Registry.discover())


def test_list_json_writes_a_dataset_reference_out_in_full():
    import json

    result = CliRunner().invoke(app, ["list-degradations", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    target = rows["morph"]["parameters"]["target"]
    assert "$ref" not in json.dumps(rows)  # every nested model inlined, no dangling reference
    assert target["title"] == "DatasetRef" and target["required"] == ["name"]
    assert set(target["properties"]) == {"name", "params"}
