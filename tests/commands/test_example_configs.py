"""The CPU twins (examples/fashion_*.toml): each trains a few steps with its own recipe on tiny
data, and one runs on the real Fashion-MNIST files where they are installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldkit.cli import app
from coldkit.config import read_toml, write_toml
from coldkit_plugins.datasets import DEBIAN_FASHION_MNIST

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: The twins are fashion_<row>.toml; fashion_to_mnist.toml is the animorphosis example, not a twin.
TWINS = sorted(
    path.stem for path in EXAMPLES.glob("fashion_*.toml") if path.stem != "fashion_to_mnist"
)
#: A few steps on a few images: the recipe (degradation, restorer, loss, schedule) is the twin's.
FEW_STEPS = [
    "device=\"cpu\"", "train.steps=2", "train.batch_size=8", "train.warmup_steps=0",
    "evaluate.num_images=8", "evaluate.batch_size=8", "evaluate.figure_rows=2",
]
FEW_SAMPLES = [
    "generate.num_samples=8", "generate.batch_size=8", "generate.grid_size=4",
    "generate.prior.components=2",
]


def test_there_is_a_twin_for_each_kind_of_row():
    kinds = {read_toml(EXAMPLES / f"{twin}.toml")["degradation"]["name"] for twin in TWINS}
    assert {"blur", "mask", "pixelate"} <= kinds
    assert any("generate" in read_toml(EXAMPLES / f"{twin}.toml") for twin in TWINS)


def _overrides(twin: str) -> list[str]:
    config = read_toml(EXAMPLES / f"{twin}.toml")
    return FEW_STEPS + (FEW_SAMPLES if "generate" in config else [])


@pytest.mark.parametrize("twin", TWINS)
def test_twin_trains_a_few_steps_on_tiny_data(twin: str, tmp_path: Path):
    config = read_toml(EXAMPLES / f"{twin}.toml")
    assert config["dataset"]["name"] == "fashion-mnist" and config["evaluate"]["split"] == "test"
    assert config["dataset"]["val_fraction"] > 0  # tuned on validation carved from training
    config["dataset"] = {"name": "synthetic", "image_size": 32, "count": 64, "size": 32}
    tiny = tmp_path / f"{twin}.toml"
    write_toml(tiny, config)
    command = ["run", str(tiny), "--out", str(tmp_path / "run")]
    for override in _overrides(twin):
        command += ["--set", override]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train_steps"] == 2 and set(metrics["rows"]) == {"degraded", "direct", "sampled"}
    assert ("generation" in metrics) == ("generate" in config)


@pytest.mark.skipif(
    not (Path(DEBIAN_FASHION_MNIST) / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Fashion-MNIST is not installed in {DEBIAN_FASHION_MNIST} "
    "(apt-get install dataset-fashion-mnist)",
)
def test_deblurring_twin_runs_on_the_real_fashion_mnist_files(tmp_path: Path):
    command = ["run", str(EXAMPLES / "fashion_blur.toml"), "--out", str(tmp_path / "run"),
               "--set", "dataset.limit=256"]
    for override in FEW_STEPS:
        command += ["--set", override]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "Fashion-MNIST IDX files" in metrics["evaluation_source"]
    assert "test split" in metrics["evaluation_source"]
