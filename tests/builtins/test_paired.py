"""Learning from pairs: the `paired-folder` dataset, the `paired` degradation (InDI's path), and a
tiny paired run that trains, evaluates and restores a degraded file without --t."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from coldkit.cli import app
from coldkit.config import write_toml
from coldkit.errors import DataError, ParamsError
from coldkit.generation.restore import read_image, restore_files
from coldkit.runs.opened import open_run
from coldkit.testing import check_dataset, check_degradation, check_generation, make_test_images
from coldkit_plugins.entries.paired import PairedFolderParams, PairedParams
from coldkit_plugins.paired import Paired
from coldkit_plugins.paired_folder import PairedFolder, pairs_from_tensors
from tests.conftest import tiny_experiment

runner = CliRunner()
SIZE = 16


def _degrade(clean: np.ndarray) -> np.ndarray:
    """A stand-in black box: a horizontal box blur and a darkening, 8 bits."""
    padded = np.pad(clean.astype(float), ((0, 0), (1, 1)), mode="edge")
    blurred = (padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]) / 3
    return (0.8 * blurred).round().astype(np.uint8)


def make_pairs(root: Path, count: int = 20, seed: int = 0, suffix: str = ".jpg") -> Path:
    """``root/clean/NNN.png`` and ``root/degraded/NNN<suffix>`` (suffixes differ on purpose)."""
    rng = np.random.default_rng(seed)
    (root / "clean").mkdir(parents=True)
    (root / "degraded").mkdir()
    for number in range(count):
        clean = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
        Image.fromarray(clean).save(root / "clean" / f"{number:03d}.png")
        degraded_suffix = ".png" if number % 2 else suffix  # any format Pillow reads
        Image.fromarray(_degrade(clean)).save(root / "degraded" / f"{number:03d}{degraded_suffix}",
                                              quality=100)
    return root


def folder(root: Path, **params) -> PairedFolder:
    return PairedFolder(PairedFolderParams(clean=str(root / "clean"),
                                           degraded=str(root / "degraded"), **params))


# ------------------------------------------------------------------------------- paired-folder
def test_pairs_are_matched_by_name_not_position(tmp_path: Path):
    root = make_pairs(tmp_path, count=6, suffix=".png")
    (root / "degraded" / "zzz_extra_first.png").write_bytes(b"")  # would shift a positional pairing
    (root / "degraded" / "zzz_extra_first.png").unlink()
    loaded = folder(root, test_fraction=0.0).load("train")
    assert loaded.params is not None and loaded.params["y"].shape == loaded.images.shape == (6, 1, 16, 16)
    for clean, twin in zip(loaded.images, loaded.params["y"]):
        expected = _degrade((clean[0].numpy() * 255).round().astype(np.uint8)) / 255.0
        assert np.allclose(twin[0].numpy(), expected, atol=1e-6)


def test_a_missing_twin_is_a_clear_error_naming_the_file_or_skipped_with_a_count(tmp_path: Path):
    root = make_pairs(tmp_path, count=6, suffix=".png")
    (root / "degraded" / "003.png").unlink()
    with pytest.raises(DataError, match=r"003\.png has no degraded twin.*mismatched = \"skip\""):
        folder(root).load("train")
    loaded = folder(root, mismatched="skip", test_fraction=0.0).load("train")
    assert len(loaded.images) == 5 and "left out 1 pair(s): 003.png" in loaded.source


def test_a_differently_sized_pair_is_refused_naming_the_file(tmp_path: Path):
    root = make_pairs(tmp_path, count=4, suffix=".png")
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(root / "degraded" / "002.png")
    with pytest.raises(DataError, match=r"002\.png is 12x12 but its clean twin .*002\.png is 16x16"):
        folder(root, test_fraction=0.0).load("train")
    assert len(folder(root, test_fraction=0.0, mismatched="skip").load("train").images) == 3


def test_a_mismatch_stops_coldkit_run_with_exit_2_and_no_traceback(tmp_path: Path):
    root = make_pairs(tmp_path / "pairs", count=6, suffix=".png")
    (root / "clean" / "001.png").unlink()
    config = tmp_path / "paired.toml"
    write_toml(config, _paired_experiment(root))
    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "001.png has no clean image in" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_splits_are_seeded_disjoint_and_complete(tmp_path: Path):
    root = make_pairs(tmp_path, count=20)
    dataset = folder(root, val_fraction=0.2, test_fraction=0.2, split_seed=3)
    splits = {split: dataset.load(split) for split in ("train", "val", "test")}
    again = folder(root, val_fraction=0.2, test_fraction=0.2, split_seed=3).load("test")
    assert torch.equal(again.images, splits["test"].images)
    keys = [{tuple(image.flatten()[:8].tolist()) for image in s.images} for s in splits.values()]
    assert sum(map(len, keys)) == 20 and len(set().union(*keys)) == 20
    other = folder(root, val_fraction=0.2, test_fraction=0.2, split_seed=4).load("test")
    assert not torch.equal(other.images, splits["test"].images)
    check_dataset(dataset)


def test_split_folders_are_used_when_given(tmp_path: Path):
    for split, count in (("train", 5), ("val", 2), ("test", 3)):
        make_pairs(tmp_path / "given" / split, count=count, seed=count)
    for side in ("clean", "degraded"):
        (tmp_path / side).mkdir()
        for split in ("train", "val", "test"):
            (tmp_path / "given" / split / side).rename(tmp_path / side / split)
    dataset = folder(tmp_path)
    assert [len(dataset.load(split).images) for split in ("train", "val", "test")] == [5, 2, 3]
    assert "split folders" in dataset.load("test").source


def test_colour_is_decided_once_for_every_split(tmp_path: Path):
    root = make_pairs(tmp_path, count=10, suffix=".png")
    colour = np.zeros((SIZE, SIZE, 3), np.uint8)
    colour[..., 0] = 200  # one colour file among grey ones
    Image.fromarray(colour).save(root / "degraded" / "007.png")
    dataset = folder(root, test_fraction=0.3)
    assert {dataset.load(split).images.shape[1] for split in ("train", "test")} == {3}
    assert dataset.load("train").params["y"].shape[1] == 3
    assert folder(root, test_fraction=0.3, channels=1).load("test").images.shape[1] == 1


def test_pairs_from_tensors_split_like_the_datasets_and_refuse_mismatched_shapes():
    clean, degraded = torch.rand(10, 1, 8, 8), torch.rand(10, 1, 8, 8)
    test = pairs_from_tensors(clean, degraded, "test", test_fraction=0.3)
    train = pairs_from_tensors(clean, degraded, "train", test_fraction=0.3)
    assert len(test.images) == 3 and len(train.images) == 7
    row = int((clean == test.images[0]).flatten(1).all(1).nonzero())
    assert torch.equal(test.params["y"][0], degraded[row])
    with pytest.raises(DataError, match="one shape"):
        pairs_from_tensors(clean, degraded[:9])


# ------------------------------------------------------------------------------------- paired
@pytest.mark.parametrize("params", [PairedParams(), PairedParams(bridge_noise=0.05, schedule="cosine")])
def test_paired_passes_the_kit_with_y_as_its_params(params: PairedParams):
    degradation = Paired(params)
    x0, y = make_test_images(8, 16, 3, seed=0), make_test_images(8, 16, 3, seed=1)
    drawn = {"y": y, **degradation.sample_params(x0, torch.Generator().manual_seed(0))}
    assert check_degradation(degradation, x0, params=drawn, check_speed=False).passed
    assert "restore with params" in check_generation(degradation, x0, params=drawn)


def test_the_path_runs_from_x0_to_exactly_y():
    degradation = Paired(PairedParams(steps=4, bridge_noise=0.1))
    x0, y = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    params = {"y": y, **degradation.sample_params(x0, torch.Generator().manual_seed(0))}
    assert torch.equal(degradation.degrade(x0, torch.tensor([4, 4]), params), y)
    middle = degradation.degrade(x0, torch.tensor([2, 2]), params)
    assert not torch.allclose(middle, (x0 + y) / 2)  # the noise is there in the middle
    plain = Paired(PairedParams(steps=4)).degrade(x0, torch.tensor([2, 2]), {"y": y})
    assert torch.allclose(plain, (x0 + y) / 2)


def test_without_y_it_refuses_plainly_and_generation_is_not_offered():
    with pytest.raises(ParamsError, match="generation is not offered"):
        Paired().degrade(torch.rand(1, 1, 8, 8), torch.tensor([3]))


# ------------------------------------------------------------------------------- a tiny run
def _paired_experiment(root: Path) -> dict:
    experiment = tiny_experiment(train={"steps": 4, "checkpoint_every": 4})
    experiment["degradation"] = {"name": "paired", "steps": 4}
    experiment["dataset"] = {"name": "paired-folder", "clean": str(root / "clean"),
                             "degraded": str(root / "degraded"), "image_size": SIZE,
                             "test_fraction": 0.25}
    experiment["evaluate"] = {**experiment["evaluate"], "fid_images": 0}
    return experiment


@pytest.fixture(scope="module")
def paired_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("paired")
    pairs = make_pairs(root / "pairs", count=24)
    config = _paired_experiment(pairs)
    write_toml(root / "paired.toml", config)
    result = runner.invoke(app, ["run", str(root / "paired.toml"), "--out", str(root / "run")])
    assert result.exit_code == 0, result.output
    return root / "run", pairs


def test_a_tiny_paired_run_trains_and_evaluates(paired_run: tuple[Path, Path]):
    import json

    metrics = json.loads((paired_run[0] / "metrics.json").read_text())
    assert metrics["train_steps"] == 4 and set(metrics["rows"]) == {"degraded", "direct", "sampled"}
    loaded = open_run(paired_run[0])
    test_set = PairedFolder(loaded.experiment.dataset.params).load("test")
    # The degraded row is the test pairs' twins themselves: D(x0, T) = y.
    degraded_ssim = metrics["rows"]["degraded"]["ssim"]
    assert degraded_ssim < 1.0 and len(test_set.images) == 6


def test_restore_needs_no_t_and_uses_the_file_as_y(paired_run: tuple[Path, Path], tmp_path: Path):
    run_dir, pairs = paired_run
    file = pairs / "degraded" / "001.png"
    result = runner.invoke(app, ["restore", str(run_dir), str(file), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "no --t needed" in " ".join(result.output.split())
    loaded = open_run(run_dir)
    x = read_image(file, 1).unsqueeze(0)
    steps = loaded.degradation.steps
    sampler = loaded.experiment.sampler.build()
    with torch.no_grad():
        expected = sampler(loaded.restorer, loaded.degradation, x, torch.tensor([steps]), {"y": x})
    written = np.asarray(Image.open(tmp_path / "001_restored.png"), dtype=np.float64) / 255.0
    assert np.abs(written - expected.clamp(0, 1)[0, 0].numpy()).max() <= 1 / 255 + 1e-6
    other_y = {"y": torch.zeros_like(x)}
    with torch.no_grad():
        wrong = sampler(loaded.restorer, loaded.degradation, x, torch.tensor([steps]), other_y)
    assert not torch.allclose(wrong, expected)  # y matters: the file is what was used


def test_restore_refuses_a_level_other_than_t(paired_run: tuple[Path, Path], tmp_path: Path):
    run_dir, pairs = paired_run
    result = runner.invoke(app, ["restore", str(run_dir), str(pairs / "degraded" / "001.png"),
                                 "--t", "2", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "Leave out --t" in " ".join(result.output.split())
    assert not any(tmp_path.iterdir())
    with pytest.raises(Exception, match="Leave out --t"):
        restore_files(open_run(run_dir), [pairs / "degraded" / "001.png"], estimate=True,
                      out=tmp_path)


def test_generation_is_refused_plainly_before_training(tmp_path: Path):
    pairs = make_pairs(tmp_path / "pairs", count=8)
    config = _paired_experiment(pairs)
    config["generate"] = {"num_samples": 4}
    write_toml(tmp_path / "paired.toml", config)
    result = runner.invoke(app, ["run", str(tmp_path / "paired.toml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "Generation is not offered for degradation 'paired'" in " ".join(result.output.split())
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_coldkit_generate_on_a_paired_run_is_refused(paired_run: tuple[Path, Path]):
    result = runner.invoke(app, ["generate", str(paired_run[0]), "--num-samples", "4"])
    assert result.exit_code == 2, result.output
    assert "Generation is not offered" in " ".join(result.output.split())


def test_training_batches_carry_each_images_own_twin_augmented_alike(tmp_path: Path):
    from coldkit.config import TrainSection
    from coldkit.data.batches import InMemoryBatches
    from coldkit.protocols import BuildContext
    from coldkit.training.trainer import Trainer
    from coldkit_plugins.entries.unet import UNetParams
    from coldkit_plugins.unet import UNet

    images = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    twins = 1.0 - images  # each twin is known from its image: a wrong row would show
    settings = TrainSection(steps=1, batch_size=8, lr=1e-3, augment={"shift": 2, "flip": True})
    unet = UNet(UNetParams(width=8, multipliers=[1, 2], attention_levels=[]),
                context=BuildContext(image_size=16, channels=1, steps=4))
    trainer = Trainer(unet, Paired(PairedParams(steps=4)), InMemoryBatches(images, {"y": twins}),
                      settings, 0, torch.device("cpu"), tmp_path / "last.pt")
    x0, _, params = trainer.draw_batch()
    assert set(params) == {"y"} and torch.allclose(params["y"], 1.0 - x0, atol=1e-6)


def test_compare_draws_a_paired_run_with_its_twins(paired_run: tuple[Path, Path], tmp_path: Path):
    figure = tmp_path / "compare.png"
    result = runner.invoke(app, ["compare", str(paired_run[0]), "--figure", str(figure)])
    assert result.exit_code == 0, result.output
    assert figure.is_file() and "not in the figure" not in result.output


def test_the_example_makes_pairs_and_its_config_trains_on_them(tmp_path: Path):
    import importlib.util

    from coldkit.config import read_toml
    from coldkit.data import write_idx

    examples = Path(__file__).resolve().parents[2] / "examples"
    spec = importlib.util.spec_from_file_location("make_pairs", examples / "make_paired_fashion.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    source = tmp_path / "images.idx"
    write_idx(source, np.random.default_rng(0).integers(0, 256, (24, 28, 28), dtype=np.uint8))
    assert script.make_pairs(tmp_path / "pairs", 20, seed=0, source=source) == 20
    clean = np.asarray(Image.open(tmp_path / "pairs" / "clean" / "00003.png"))
    degraded = np.asarray(Image.open(tmp_path / "pairs" / "degraded" / "00003.png"))
    assert clean.shape == degraded.shape == (32, 32) and clean.dtype == np.uint8
    assert np.abs(clean.astype(int) - degraded).mean() > 5  # the black box changed it

    config = read_toml(examples / "paired_restore.toml")
    assert config["dataset"]["name"] == "paired-folder" and "max_minutes" in config["train"]
    config["dataset"].update(clean=str(tmp_path / "pairs" / "clean"),
                             degraded=str(tmp_path / "pairs" / "degraded"))
    write_toml(tmp_path / "example.toml", config)
    few = ["device=\"cpu\"", "train.steps=2", "train.batch_size=8", "train.warmup_steps=0",
           "evaluate.num_images=2", "evaluate.batch_size=2", "evaluate.figure_rows=2",
           "evaluate.fid_images=0"]
    command = ["run", str(tmp_path / "example.toml"), "--out", str(tmp_path / "run")]
    for override in few:
        command += ["--set", override]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "figure.png").is_file()
