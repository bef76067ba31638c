"""`coldkit show-degradation`, the CIFAR-10 dataset plugin and the new example configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from coldkit.cli import app
from coldkit.config import write_toml
from coldkit.errors import DataError
from coldkit.data.imaging import GAP, HEADER_HEIGHT
from coldkit.preview import preview_degradation, preview_levels
from coldkit_plugins.datasets import Cifar10, Cifar10Params
from tests.conftest import tiny_experiment

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def grid_size(rows: int, columns: int, side: int, scale: int = 2) -> tuple[int, int]:
    cell = side * scale
    return columns * (cell + GAP) + GAP, HEADER_HEIGHT + rows * (cell + GAP) + GAP


def test_preview_levels_include_both_ends():
    assert preview_levels(3) == [0, 1, 2, 3]
    assert preview_levels(50) == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    many = preview_levels(1000)
    assert len(many) == 11 and many[0] == 0 and many[-1] == 1000


@pytest.mark.parametrize(("name", "columns"), [("pixelate", 4), ("snow", 11), ("mask", 11)])
def test_show_degradation_writes_a_png_of_the_expected_size(tmp_path: Path, name, columns):
    out = tmp_path / f"{name}.png"
    result = runner.invoke(app, ["show-degradation", name, "--out", str(out), "--images", "3"])
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.size == grid_size(3, columns, 32)
    if name == "pixelate":  # T = 3: every level fits
        assert "levels" not in result.output
    else:
        assert "showing 11 of 51 levels" in result.output


def test_show_degradation_set_overrides_parameters(tmp_path: Path):
    out = tmp_path / "mask.png"
    result = runner.invoke(
        app, ["show-degradation", "mask", "--out", str(out), "--set", "steps=5", "--set", "fill=0.0"]
    )
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.size == grid_size(4, 6, 32)


def test_show_degradation_uses_the_config_images_and_parameters(tmp_path: Path):
    config = tmp_path / "tiny.toml"
    write_toml(config, tiny_experiment(degradation={"name": "blur", "steps": 4}))
    out = tmp_path / "blur.png"
    result = runner.invoke(
        app, ["show-degradation", "blur", "--config", str(config), "--out", str(out), "--images", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "parameters from [degradation]" in result.output
    with Image.open(out) as image:  # tiny experiment: 16x16 images, T = 4
        assert image.size == grid_size(2, 5, 16)
    # Another degradation than the config's: its defaults, the config's images.
    other = tmp_path / "pixelate.png"
    result = runner.invoke(
        app, ["show-degradation", "pixelate", "--config", str(config), "--out", str(other)]
    )
    assert result.exit_code == 0, result.output
    assert "defaults" in result.output
    with Image.open(other) as image:
        assert image.size == grid_size(4, 4, 16)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nonsense"], "Registered degradations: blur, decolor, mask, morph, noise, paired, pixelate, snow"),
        (["mask", "--set", "colour=3"], "unknown key 'degradation.colour'"),
        (["mask", "--set", "dataset.size=3"], "key=value"),
        (["pixelate", "--set", "steps=9"], "below one pixel"),
        (["mask", "--images", "0"], "at least 1"),
        (["mask", "--config", "missing.toml"], "does not exist"),
    ],
)
def test_show_degradation_errors_exit_with_code_2(tmp_path: Path, args, message):
    result = runner.invoke(app, ["show-degradation", *args, "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "x.png").exists()


def test_preview_function_returns_the_path(tmp_path: Path):
    notes: list[str] = []
    path = preview_degradation(
        "decolor", out=tmp_path / "d.png", images=1, notify=notes.append, overrides=["steps=2"]
    )
    assert path == tmp_path / "d.png" and path.is_file()
    assert any("3 channels" in note for note in notes)


# ---------------------------------------------------------------------------------- cifar10
class FakeCifar10:
    """Stands in for torchvision's CIFAR10: uint8 (N, 32, 32, 3) arrays, no download."""

    def __init__(self, root, train=True, download=False):
        count = 20 if train else 8
        rng = np.random.default_rng(0 if train else 1)
        self.data = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)


def test_cifar10_uses_the_official_test_set(monkeypatch, tmp_path: Path):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCifar10)
    params = Cifar10Params(root=str(tmp_path), val_fraction=0.25)
    test = Cifar10(params).load("test")
    assert test.images.shape == (8, 3, 32, 32) and test.images.dtype == torch.float32
    assert float(test.images.max()) <= 1.0
    expected = torch.from_numpy(FakeCifar10(None, train=False).data).permute(0, 3, 1, 2) / 255
    assert torch.allclose(test.images, expected)
    assert len(Cifar10(params).load("val").images) == 5
    assert len(Cifar10(params).load("train").images) == 15


def test_cifar10_offline_fails_with_a_fix(tmp_path: Path):
    with pytest.raises(DataError, match="internet"):
        Cifar10(Cifar10Params(root=str(tmp_path), download=False)).load("train")


# --------------------------------------------------------------------------------- examples
@pytest.mark.parametrize(
    "example",
    sorted(str(path.relative_to(EXAMPLES)) for path in [*EXAMPLES.glob("*.toml"),
                                                        *EXAMPLES.glob("paper/*.toml")]),
)
def test_examples_validate(example):
    result = runner.invoke(app, ["validate", str(EXAMPLES / example)])
    assert result.exit_code == 0, result.output
