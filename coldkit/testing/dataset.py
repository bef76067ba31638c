"""The dataset contract: :func:`check_dataset`."""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from coldkit.plugins.compat import open_stream, stream_takes_size
from coldkit.protocols import ImageSet
from coldkit.testing._common import _named

SPLIT_NAMES = ("train", "val", "test")


def _content_hashes(images: Tensor) -> list[bytes]:
    rows = images.detach().cpu().contiguous().flatten(1).numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]


def check_dataset(dataset: object, *, max_shared: int = 0) -> list[str]:
    """Run the dataset contract on a dataset (``load(split)`` for ``train``, ``val``, ``test``).

    Checks: ``name`` and ``description`` strings and a ``load`` method; each split is an
    :class:`coldkit.protocols.ImageSet` whose images are a float tensor ``(N, C, H, W)`` with
    values in [0, 1], with a ``source`` string; ``train`` is not empty (``val`` and ``test`` may
    be, e.g. a dataset with ``val_fraction = 0``); every split has the same number of channels;
    labels, where given, are an integer ``(N,)`` tensor aligned with the images, with no negative
    class; the splits are disjoint: no image content (hashed bit for bit) appears in two splits,
    or at most ``max_shared`` for data with exact duplicates across its official splits.
    """
    label = _named(dataset, "dataset")
    _check_interface(dataset, label)
    passed = ["interface"]

    splits: dict[str, ImageSet] = {}
    for split in SPLIT_NAMES:
        splits[split] = _check_split(dataset, label, split)
    assert len(splits["train"].images) > 0, f"{label}: the train split is empty"
    passed.append("splits: float (N, C, H, W) in [0, 1]")
    channels = {split: s.images.shape[1] for split, s in splits.items() if len(s.images)}
    assert len(set(channels.values())) == 1, (
        f"{label}: the splits have different numbers of channels: {channels}"
    )
    if any(s.labels is not None for s in splits.values()):
        passed.append("labels aligned, integer")

    _check_disjoint(label, splits, max_shared)
    passed.append("splits disjoint")
    if callable(getattr(dataset, "stream", None)):
        passed.append(_check_stream(dataset, label, splits["train"]))
    return passed


def _check_interface(dataset: object, label: str) -> None:
    """``name`` and ``description`` strings and a ``load`` method."""
    missing = [a for a in ("name", "description", "load") if not hasattr(dataset, a)]
    assert not missing, f"{label}: lacks {', '.join(missing)} (see coldkit.protocols.Dataset)"
    assert isinstance(dataset.name, str) and dataset.name, f"{label}: name must be a non-empty str"
    assert isinstance(dataset.description, str), f"{label}: description must be a str"


def _check_split(dataset: object, label: str, split: str) -> ImageSet:
    """``load(split)`` is an ImageSet of float images in [0, 1] with a source and aligned labels."""
    loaded = dataset.load(split)
    assert isinstance(loaded, ImageSet), (
        f"{label}: load({split!r}) returned {type(loaded).__name__}, not a "
        "coldkit.ImageSet(images, source, labels)"
    )
    _check_images(label, split, loaded.images)
    assert isinstance(loaded.source, str) and loaded.source, (
        f"{label}: the {split} split needs a source string (where the images came from)"
    )
    if loaded.labels is not None:
        _check_labels(label, split, loaded.labels, len(loaded.images))
    return loaded


def _check_images(label: str, split: str, images: object) -> None:
    """A finite float tensor ``(N, C, H, W)`` with values in [0, 1]."""
    assert isinstance(images, Tensor), (
        f"{label}: the {split} images are a {type(images).__name__}, not a torch.Tensor"
    )
    assert images.ndim == 4, (
        f"{label}: the {split} images have shape {tuple(images.shape)}; images are "
        "(N, C, H, W), e.g. (N, 1, 28, 28) for grey images"
    )
    assert images.is_floating_point(), (
        f"{label}: the {split} images are {images.dtype}; return floats in [0, 1] "
        "(e.g. uint8 / 255)"
    )
    if len(images):
        low, high = float(images.min()), float(images.max())
        assert bool(torch.isfinite(images).all()), f"{label}: the {split} images hold NaN or inf"
        assert 0.0 <= low and high <= 1.0, (
            f"{label}: the {split} images range over [{low:.4g}, {high:.4g}]; values must lie "
            "in [0, 1] (divide 8-bit images by 255)"
        )


def _check_labels(label: str, split: str, labels: object, count: int) -> None:
    """An integer ``(count,)`` tensor with no negative class."""
    assert isinstance(labels, Tensor), (
        f"{label}: the {split} labels are a {type(labels).__name__}, not a torch.Tensor"
    )
    assert labels.shape == (count,), (
        f"{label}: the {split} labels have shape {tuple(labels.shape)} for "
        f"{count} images; labels are (N,), one per image, in the images' order"
    )
    assert not (labels.is_floating_point() or labels.is_complex()) and labels.dtype != torch.bool, (
        f"{label}: the {split} labels are {labels.dtype}; class labels are integers "
        "(e.g. torch.long)"
    )
    assert len(labels) == 0 or int(labels.min()) >= 0, (
        f"{label}: the {split} labels include {int(labels.min())}; classes are 0, 1, ..."
    )


def _check_disjoint(label: str, splits: dict[str, ImageSet], max_shared: int) -> None:
    """No image content appears in two splits (at most ``max_shared`` times)."""
    hashes = {split: set(_content_hashes(s.images)) for split, s in splits.items()}
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = len(hashes[first] & hashes[second])
        assert shared <= max_shared, (
            f"{label}: {shared} image(s) appear in both the {first} and the {second} split "
            f"({len(splits[first].images)} and {len(splits[second].images)} images); the splits "
            "must be disjoint (split one seeded permutation of the indices)"
        )


def _check_stream(dataset: object, label: str, loaded: ImageSet, size: int = 16) -> str:
    """A dataset that can stream: ``stream("train")`` serves the train split as uint8, square
    images at the image size of its build context (a dataset whose ``stream`` is still told the
    size, ``stream("train", size)``, at ``size``)."""
    from coldkit.data.streaming import ImageStream

    stream = open_stream(dataset, "train", size)
    call = f"stream('train', {size})" if stream_takes_size(dataset) else "stream('train')"
    assert isinstance(stream, ImageStream), (
        f"{label}: {call} returned {type(stream).__name__}, not a "
        "coldkit.data.streaming.ImageStream"
    )
    assert len(stream) == len(loaded.images), (
        f"{label}: stream('train') holds {len(stream)} images but load('train') {len(loaded.images)}"
        "; both must serve the same split"
    )
    first = stream[0]
    assert isinstance(first, Tensor) and first.dtype == torch.uint8, (
        f"{label}: a streamed image must be a uint8 tensor, not "
        f"{getattr(first, 'dtype', type(first).__name__)}"
    )
    # The size of its build context, which the kit does not see: the images are square.
    side = size if stream_takes_size(dataset) else int(first.shape[-1])
    expected = (loaded.images.shape[1], side, side)
    assert tuple(first.shape) == expected, (
        f"{label}: a streamed image has shape {tuple(first.shape)}, expected {expected} "
        "(channels, image_size, image_size)"
    )
    assert stream.channels == expected[0] and isinstance(stream.source, str), (
        f"{label}: the stream's channels ({stream.channels}) must match the images' and its "
        "source must be a str"
    )
    return "stream: uint8 (C, S, S), the same split as load"

