"""The streaming path: image folders and IDX files read through a DataLoader, uint8 until used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from coldkit.cli import app
from coldkit.config import TrainSection, write_toml
from coldkit.data import write_idx
from coldkit.runtime.distributed import Cluster
from coldkit.errors import DataError
from coldkit.protocols import BuildContext
from coldkit.data.streaming import (
    ArrayStream,
    EpochBatches,
    StreamingBatches,
    choose_training_data,
)
from coldkit.training.trainer import Trainer
from coldkit_plugins.blur import Blur, BlurParams
from coldkit_plugins.datasets import ImageFolder, ImageFolderParams
from coldkit_plugins.unet import UNet, UNetParams
from tests.conftest import tiny_experiment


def _png_folder(folder: Path, count: int = 40, size: int = 16) -> Path:
    """Colour PNGs, a few of other sizes, one non-image and one truncated PNG."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for index in range(count):
        shape = (size + 8, size + 4, 3) if index % 10 == 3 else (size, size, 3)
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"image{index:03d}.png")
    (folder / "notes.png").write_text("not an image")
    whole = (folder / "image000.png").read_bytes()
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 3])
    return folder


def _sized(params: ImageFolderParams, size: int = 16) -> ImageFolder:
    """The dataset as coldkit builds it: it learns the image size from its build context."""
    return ImageFolder(params, context=BuildContext(image_size=size))


def test_folder_trains_on_the_streaming_path_and_says_so(tmp_path: Path):
    folder = _png_folder(tmp_path / "images")
    config = tmp_path / "stream.toml"
    experiment = tiny_experiment()
    experiment["dataset"] = {
        "name": "image-folder", "path": str(folder), "image_size": 16, "workers": 1,
        "max_memory_gb": 1e-6, "test_fraction": 0.2,
    }
    write_toml(config, experiment)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    log = (out / "log.txt").read_text()
    assert "streamed from disk" in log and "1 DataLoader worker" in log
    assert "skipped 1 unreadable file(s): notes.png" in log
    assert "colour images, read from the files" in log
    assert json.loads((out / "run.json").read_text())["restorer_context"]["channels"] == 3
    assert (out / "checkpoints" / "last.pt").is_file() and (out / "metrics.json").is_file()


def test_small_splits_stay_in_memory(tmp_path: Path):
    folder = _png_folder(tmp_path / "images")
    dataset = _sized(ImageFolderParams(path=str(folder)))
    data = choose_training_data(
        dataset, 16, 4.0, lambda: dataset.load("train"), Cluster(), 0, torch.device("cpu")
    )
    assert data.path_note.startswith("in memory") and data.channels == 3
    assert data.image_set().images.dtype == torch.float32


def test_stream_and_load_hold_the_same_split(tmp_path: Path):
    folder = _png_folder(tmp_path / "images")
    (folder / "truncated.png").unlink()  # its header reads: only decoding finds it broken
    dataset = _sized(ImageFolderParams(path=str(folder), test_fraction=0.25))
    for split in ("train", "test"):
        stream = dataset.stream(split)
        loaded = dataset.load(split)
        assert len(stream) == len(loaded.images)
        same_size = [
            index for index, file in enumerate(stream.files) if Image.open(file).size == (16, 16)
        ]
        for index in same_size:
            assert stream[index].dtype == torch.uint8
            torch.testing.assert_close(stream[index].float() / 255, loaded.images[index])
    train = set(dataset.stream("train").files)
    assert not train & set(dataset.stream("test").files)


def test_a_truncated_file_is_replaced_with_a_warning(tmp_path: Path):
    folder = _png_folder(tmp_path / "images", count=4)
    dataset = _sized(ImageFolderParams(path=str(folder), test_fraction=0.0))
    stream = dataset.stream("train")
    position = [file.name for file in stream.files].index("truncated.png")
    with pytest.warns(UserWarning, match="truncated.png"):
        image = stream[position]
    assert image.shape == (3, 16, 16)


def test_a_folder_of_nothing_readable_is_an_error_naming_it(tmp_path: Path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_text("no")
    with pytest.raises(DataError, match="could be read"):
        _sized(ImageFolderParams(path=str(folder), test_fraction=0.0)).stream("train")


def test_idx_file_streams_from_a_memory_map(tmp_path: Path):
    images = np.random.default_rng(1).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "images-idx3-ubyte", images)
    params = ImageFolderParams(path=str(tmp_path / "images-idx3-ubyte"))
    dataset = _sized(params, 28)
    stream = dataset.stream("train")
    loaded = dataset.load("train")
    assert isinstance(stream, ArrayStream) and len(stream) == len(loaded.images) == 45
    assert isinstance(stream.array.array, np.memmap)
    for index in (0, 7, 44):
        torch.testing.assert_close(stream[index].float() / 255, loaded.images[index])
    assert _sized(params, 16).stream("train")[0].shape == (1, 16, 16)


def test_epoch_batches_share_global_batches_whatever_the_world_size():
    one = iter(EpochBatches(40, 8, Cluster(), seed=3, start=0))
    halves = [iter(EpochBatches(40, 4, Cluster(rank, 2, rank, "gloo"), 3, 0)) for rank in (0, 1)]
    for _ in range(12):  # three epochs of 5 global batches of 8, then some
        whole = next(one)
        shares = [next(half) for half in halves]
        assert sorted(shares[0] + shares[1]) == sorted(whole)
    later = iter(EpochBatches(40, 8, Cluster(), seed=3, start=7))
    replay = iter(EpochBatches(40, 8, Cluster(), seed=3, start=0))
    for _ in range(7):
        next(replay)
    assert next(later) == next(replay)
    with pytest.raises(DataError, match="fewer than one global batch"):
        EpochBatches(6, 8, Cluster(), 0, 0)


def _streaming_trainer(path: Path, steps: int, workers: int) -> Trainer:
    torch.manual_seed(0)
    images = np.random.default_rng(2).integers(0, 256, (48, 1, 16, 16), dtype=np.uint8)
    stream = ArrayStream(images, 16, "random")
    restorer = UNet(
        UNetParams(width=8, multipliers=[1, 2], attention_levels=[1]),
        context=BuildContext(image_size=16, channels=1, steps=3)
    )
    settings = TrainSection(steps=steps, batch_size=8, lr=1e-3, checkpoint_every=100)
    return Trainer(
        restorer, Blur(BlurParams(steps=3, kernel_size=5, sigma=1.0)),
        StreamingBatches(stream, Cluster(), 0, workers, False), settings, 0,
        torch.device("cpu"), path,
    )


def test_streaming_run_resumes_bit_identically(tmp_path: Path):
    straight = _streaming_trainer(tmp_path / "straight.pt", 8, workers=1)
    straight.fit()
    first = _streaming_trainer(tmp_path / "resumed.pt", 4, workers=0)
    first.fit()
    resumed = _streaming_trainer(tmp_path / "resumed.pt", 8, workers=1)
    assert resumed.resume() and resumed.state.step == 4
    resumed.fit()
    for name, value in straight.restorer.state_dict().items():
        assert torch.equal(resumed.restorer.state_dict()[name], value), name


def test_conformance_kit_checks_a_dataset_that_streams(tmp_path: Path):
    from coldkit.testing import check_dataset

    folder = _png_folder(tmp_path / "images")
    (folder / "truncated.png").unlink()
    dataset = _sized(ImageFolderParams(path=str(folder), val_fraction=0.1))
    assert check_dataset(dataset)[-1].startswith("stream: uint8")

    class Misaligned(ImageFolder):
        def stream(self, split):
            return super().stream("test")

    with pytest.raises(AssertionError, match="same split"):
        check_dataset(Misaligned(
            ImageFolderParams(path=str(folder), val_fraction=0.1),
            context=BuildContext(image_size=16),
        ))


def test_generation_outside_run_uses_a_sample_of_a_streamed_split(tmp_path: Path):
    from coldkit.data.streaming import training_image_set

    folder = _png_folder(tmp_path / "images")
    dataset = _sized(ImageFolderParams(path=str(folder), test_fraction=0.0))
    never = lambda: pytest.fail("a split that streams must not be loaded whole")  # noqa: E731
    sample = training_image_set(dataset, 16, 1e-9, never, seed=0, sample_limit=5)
    assert sample.images.shape == (5, 3, 16, 16) and "5 of" in sample.source
    whole = training_image_set(dataset, 16, 4.0, lambda: dataset.load("train"), seed=0)
    assert len(whole.images) > 5


class _TakesTheSize:
    """A dataset written for the protocol before datasets learnt the image size once: its
    ``stream(split, image_size)`` is told the size at every call."""

    name, description = "told-the-size", "a dataset of the older stream protocol"

    def __init__(self, params: ImageFolderParams) -> None:
        self.params = params
        self.asked: list[int] = []

    def load(self, split):
        return ImageFolder(self.params).load(split)

    def stream(self, split, image_size):
        self.asked.append(image_size)
        return _sized(self.params, image_size).stream(split)


def test_a_dataset_whose_stream_takes_the_size_still_streams(tmp_path: Path):
    from coldkit.testing import check_dataset

    folder = _png_folder(tmp_path / "images")
    (folder / "truncated.png").unlink()
    old = _TakesTheSize(ImageFolderParams(path=str(folder), val_fraction=0.1))
    data = choose_training_data(
        old, 12, 1e-9, lambda: pytest.fail("streams"), Cluster(), 0, torch.device("cpu"), 0
    )
    assert data.path_note.startswith("streamed from disk") and old.asked == [12]
    assert data.image_set().images.shape[-2:] == (12, 12)
    assert check_dataset(old)[-1].startswith("stream: uint8") and old.asked[-1] == 16


def test_image_folder_without_a_build_context_cannot_stream(tmp_path: Path):
    folder = _png_folder(tmp_path / "images", count=4)
    with pytest.raises(DataError, match="build context"):
        ImageFolder(ImageFolderParams(path=str(folder))).stream("train")
