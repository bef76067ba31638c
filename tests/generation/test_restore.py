"""`coldkit restore`: restoring image files that are already degraded, and level estimation."""

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
from coldkit.generation.restore import estimate_levels, read_image
from coldkit.runs.opened import open_run
from tests.conftest import tiny_experiment

runner = CliRunner()
SIZE = 16  # tiny_experiment()'s dataset.image_size; its synthetic images have 1 channel
STEPS = 4  # tiny_experiment()'s degradation.steps


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained run folder, built once for the module."""
    root = tmp_path_factory.mktemp("restore")
    config = root / "tiny.toml"
    # Restoring needs a checkpoint, not a good model: train as little as possible.
    write_toml(config, tiny_experiment(train={"steps": 2, "checkpoint_every": 2}))
    out = root / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: thread start-up would dominate
    try:
        result = runner.invoke(app, ["run", str(config), "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return out


def write_png(path: Path, width: int, height: int, mode: str = "L", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode=mode).save(path)
    return path


def restore(*args: str):
    return runner.invoke(app, ["restore", *args])


def test_restores_a_png_into_the_run_folder(run_dir: Path, tmp_path: Path):
    first = write_png(tmp_path / "digit.png", SIZE, SIZE, mode="RGB")
    second = write_png(tmp_path / "other.png", SIZE, SIZE, seed=1)
    result = restore(str(run_dir), str(first), str(second), "--t", "2")
    assert result.exit_code == 0, result.output
    out = run_dir / "restored"
    for name in ("digit", "other"):
        with Image.open(out / f"{name}_restored.png") as image:
            assert image.size == (SIZE, SIZE) and image.mode == "L"
    with Image.open(out / "restore_sheet.png") as sheet:
        # 2 columns (input, restored) of 16 px images enlarged 3x, one row per input.
        assert sheet.size == (2 * (48 + 2) + 2, 16 + 2 * (48 + 2) + 2)
    assert "digit.png: colour image (RGB) converted to grey" in result.output
    assert "digit.png: t = 2" in result.output and "estimated" not in result.output
    assert str(out / "restore_sheet.png") in result.output


def test_restored_image_depends_on_the_level(run_dir: Path, tmp_path: Path):
    source = write_png(tmp_path / "x.png", SIZE, SIZE)
    arrays = []
    for level in ("0", "3"):
        result = restore(str(run_dir), str(source), "--t", level, "--out", str(tmp_path / level))
        assert result.exit_code == 0, result.output
        arrays.append(np.asarray(Image.open(tmp_path / level / "x_restored.png")))
    assert np.array_equal(arrays[0], np.asarray(Image.open(source)))  # t = 0: the identity
    assert not np.array_equal(arrays[0], arrays[1])


def test_without_t_the_level_is_estimated_and_reported(run_dir: Path, tmp_path: Path):
    source = write_png(tmp_path / "blurry.png", SIZE, SIZE)
    result = restore(str(run_dir), str(source), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "no --t given: estimating" in result.output
    assert "blurry.png: t = " in result.output and "(estimated" in result.output
    assert (tmp_path / "out" / "blurry_restored.png").is_file()


def test_wrong_size_square_image_is_resized_with_a_notice(run_dir: Path, tmp_path: Path):
    source = write_png(tmp_path / "big.png", 34, 32)  # within the square tolerance
    result = restore(str(run_dir), str(source), "--t", "1", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "big.png: resized from 34x32 to 16x16" in result.output
    with Image.open(tmp_path / "out" / "big_restored.png") as image:
        assert image.size == (SIZE, SIZE)


def test_non_square_image_is_refused_and_nothing_written(run_dir: Path, tmp_path: Path):
    good = write_png(tmp_path / "good.png", SIZE, SIZE)
    wide = write_png(tmp_path / "wide.png", 40, 20)
    out = tmp_path / "out"
    result = restore(str(run_dir), str(good), str(wide), "--t", "1", "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "wide.png is 40x20" in result.output and "Crop it to a square" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("kind", ["text", "missing"])
def test_unreadable_file_names_the_file(run_dir: Path, tmp_path: Path, kind: str):
    path = tmp_path / "notes.png"
    if kind == "text":
        path.write_bytes(b"these are not pixels\n")
    result = restore(str(run_dir), str(path), "--t", "1", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "notes.png" in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--t", str(STEPS + 1)], f"outside the run's levels 0..{STEPS}"),
        (["--t", "-1"], f"outside the run's levels 0..{STEPS}"),
        (["--t", "1", "--estimate-t"], "either --t or --estimate-t"),
        (["--sampler", "nope"], "--sampler"),
    ],
)
def test_bad_options_exit_2(run_dir: Path, tmp_path: Path, options: list[str], message: str):
    source = write_png(tmp_path / "x.png", SIZE, SIZE)
    result = restore(str(run_dir), str(source), *options, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_inputs_that_would_overwrite_each_other_are_refused(run_dir: Path, tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_png(tmp_path / "a" / "x.png", SIZE, SIZE)
    second = write_png(tmp_path / "b" / "x.png", SIZE, SIZE)
    result = restore(str(run_dir), str(first), str(second), "--t", "1", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2, result.output
    assert "x_restored.png" in result.output
    assert not (tmp_path / "o").exists()


def test_estimate_levels_with_an_oracle_restorer_finds_the_true_levels(run_dir: Path):
    run = open_run(run_dir)
    degradation = run.degradation
    generator = torch.Generator().manual_seed(0)
    x0 = torch.rand(5, 1, SIZE, SIZE, generator=generator)
    true_levels = torch.tensor([3, 1, 4, 2, 3])
    params = degradation.sample_params(x0, generator)
    x = degradation.degrade(x0, true_levels, params)

    def oracle(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x0  # the true clean images, whatever the input

    levels, errors = estimate_levels(oracle, degradation, x, params)
    assert levels.tolist() == true_levels.tolist()
    assert errors.shape == (5, STEPS)
    assert torch.all(errors.gather(1, (true_levels - 1)[:, None]) < 1e-5)


def test_estimate_levels_with_a_constant_guess_is_not_fooled(run_dir: Path):
    # A restorer that always returns the input: D(x, t) is closest to x at the mildest level.
    run = open_run(run_dir)
    x = torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    levels, errors = estimate_levels(lambda x_t, t: x_t, run.degradation, x, {})
    assert levels.tolist() == [1, 1]
    assert torch.all(errors[:, 0] < errors[:, -1])


def test_read_image_converts_grey_to_rgb_and_keeps_16_bit_range(tmp_path: Path):
    notes: list[str] = []
    grey = write_png(tmp_path / "grey.png", 4, 4)
    image = read_image(grey, channels=3, notify=notes.append)
    assert image.shape == (3, 4, 4) and torch.equal(image[0], image[2])
    assert notes and "grey.png: grey image (L) converted to RGB" in notes[0]
    wide = tmp_path / "wide16.png"
    Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)).save(wide)
    assert torch.allclose(read_image(wide, channels=1), torch.ones(1, 4, 4))
    with pytest.raises(DataError, match="is a folder"):
        read_image(tmp_path, channels=1)
