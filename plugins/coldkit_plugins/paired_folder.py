"""The ``paired-folder`` dataset: your own pairs, a clean and a degraded folder matched by name.

``clean/shirt_001.png`` pairs with ``degraded/shirt_001.jpg`` (same path relative to its folder,
any suffix Pillow reads). Both folders may hold ``train/``, ``val/`` and ``test/`` subfolders: then
those are the splits; otherwise the pairs are split by a seeded permutation of their sorted names
(``val_fraction``, ``test_fraction``, ``split_seed``), decided before any file is read. Colour or
grey is decided once for the whole dataset (every split gets the same channel count). A clean
image without a twin, a twin without a clean image, an unreadable file or a pair of different
sizes stops the load with a message naming the file, or (``mismatched = "skip"``) leaves the pair
out and counts it in the source line the log shows. Pairs are never matched by position.

From Python, :func:`pairs_from_tensors` makes the same :class:`~coldkit.ImageSet` from two
tensors (the degraded twins go in ``params={"y": ...}``, what the ``paired`` degradation reads).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from pydantic import BaseModel
from torch import Tensor

from coldkit import ImageSet
from coldkit.data import (
    IMAGE_SUFFIXES,
    SPLITS,
    folder_channels,
    resize_and_centre_crop,
    split_indices,
    to_unit_float,
)
from coldkit.errors import DataError
from coldkit_plugins.entries.paired import PAIRED_FOLDER, PairedFolderParams

#: Folder names that make a clean/degraded folder a set of given splits.
SPLIT_FOLDERS = ("train", "val", "test")


def pairs_from_tensors(
    clean: Tensor,
    degraded: Tensor,
    split: str = "train",
    *,
    val_fraction: float = 0.0,
    test_fraction: float = 0.1,
    split_seed: int = 0,
    source: str = "pairs from tensors",
) -> ImageSet:
    """One split of paired images given as tensors ``(N, C, H, W)`` in [0, 1]: ``clean[i]`` and
    its degraded twin ``degraded[i]``; split by the same seeded permutation as the datasets
    (``split = "all"`` keeps every pair). Mismatched shapes are a :class:`DataError`."""
    if clean.ndim != 4 or clean.shape != degraded.shape:
        raise DataError(
            f"Paired tensors must both be (N, C, H, W) of one shape; got clean "
            f"{tuple(clean.shape)} and degraded {tuple(degraded.shape)}. Give one degraded twin "
            "of the same size per clean image."
        )
    indices = split_indices(len(clean), split, val_fraction, test_fraction, split_seed)
    return _image_set(clean[indices], degraded[indices], f"{source}, {split} split")


def _image_set(clean: Tensor, degraded: Tensor, source: str) -> ImageSet:
    return ImageSet(clean.float(), source, params={"y": degraded.float()})


def _key(file: Path, folder: Path) -> str:
    """What pairs two files: the path relative to its folder, without the suffix."""
    return file.relative_to(folder).with_suffix("").as_posix()


def _named_files(folder: Path) -> dict[str, Path]:
    """Image files under ``folder`` by pairing key; two files of one key are refused."""
    named: dict[str, Path] = {}
    for file in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        key = _key(file, folder)
        if key in named:
            raise DataError(
                f"{named[key]} and {file} have the same name in {folder}, so neither can be "
                "paired by name. Rename or remove one of them."
            )
        named[key] = file
    return named


class PairedFolder:
    """Clean images with their degraded twins (``ImageSet.params["y"]``), matched by name."""

    name: ClassVar[str] = PAIRED_FOLDER.name
    description: ClassVar[str] = PAIRED_FOLDER.description
    Params: ClassVar[type[BaseModel]] = PairedFolderParams

    def __init__(self, params: PairedFolderParams) -> None:
        self.params = params
        self.clean = Path(params.clean).expanduser()
        self.degraded = Path(params.degraded).expanduser()
        self._channels: int | None = params.channels

    def load(self, split: str) -> ImageSet:
        for folder, key in ((self.clean, "clean"), (self.degraded, "degraded")):
            if not folder.is_dir():
                raise DataError(f"dataset.{key} = {str(folder)!r} is not a folder. Point "
                                f"{key} at the folder of your {key} images.")
        given = self._given_splits()
        if given:
            if split not in SPLITS:
                raise DataError(f"Split {split!r} is not one of the folders {', '.join(given)}.")
            pairs, skipped = self._matched(self.clean / split, self.degraded / split)
        else:
            pairs, skipped = self._matched(self.clean, self.degraded)
            keys = sorted(pairs)
            p = self.params
            chosen = split_indices(len(keys), split, p.val_fraction, p.test_fraction, p.split_seed)
            pairs = {keys[i]: pairs[keys[i]] for i in chosen.tolist()}
        if self.params.limit is not None:
            pairs = dict(list(pairs.items())[: self.params.limit])
        clean, degraded, unreadable = self._read(pairs)
        skipped += unreadable
        how = "split folders" if given else f"split by seed {self.params.split_seed}"
        note = f"; left out {len(skipped)} pair(s): {', '.join(skipped[:3])}" if skipped else ""
        source = (f"pairs {self.clean} -> {self.degraded} ({len(clean)} pairs, {how}, "
                  f"{'colour' if self._decided() == 3 else 'grey'}{note}), {split} split")
        return _image_set(clean, degraded, source)

    def _given_splits(self) -> list[str]:
        """The split subfolders both folders have (all three or none: a partial set is refused)."""
        found = [name for name in SPLIT_FOLDERS if (self.clean / name).is_dir()]
        if not found:
            return []
        lacking = [f"{folder / name}" for folder in (self.clean, self.degraded)
                   for name in SPLIT_FOLDERS if not (folder / name).is_dir()]
        if lacking:
            raise DataError(
                f"{self.clean} has split folders, but {lacking[0]} is missing. Give both clean "
                "and degraded folders train/, val/ and test/ subfolders, or none (then pairs "
                "are split by a seeded permutation)."
            )
        return list(SPLIT_FOLDERS)

    def _matched(self, clean: Path, degraded: Path) -> tuple[dict[str, tuple[Path, Path]], list[str]]:
        """Pairs by name, and the names left out (only with ``mismatched = "skip"``)."""
        clean_files, degraded_files = _named_files(clean), _named_files(degraded)
        alone = [(clean_files[k], "has no degraded twin in", degraded)
                 for k in clean_files if k not in degraded_files]
        alone += [(degraded_files[k], "has no clean image in", clean)
                  for k in degraded_files if k not in clean_files]
        if alone and self.params.mismatched == "error":
            file, what, where = alone[0]
            more = f" ({len(alone) - 1} more files are unpaired)" if len(alone) > 1 else ""
            raise DataError(
                f"{file} {what} {where} (pairs are matched by file name, any suffix){more}. "
                "Add or rename the file, or set mismatched = \"skip\" in [dataset] to leave "
                "unpaired files out."
            )
        pairs = {k: (clean_files[k], degraded_files[k]) for k in clean_files if k in degraded_files}
        if not pairs:
            raise DataError(f"No pairs: no file in {clean} has a twin of the same name in "
                            f"{degraded}. Name each degraded image like its clean original.")
        return pairs, [file.name for file, _, _ in alone]

    def _decided(self) -> int:
        """1 or 3 channels, decided once from every clean and degraded file (all splits)."""
        if self._channels is None:
            files = sorted(p for folder in (self.clean, self.degraded) for p in folder.rglob("*")
                           if p.suffix.lower() in IMAGE_SUFFIXES)
            self._channels = folder_channels(files)
        return self._channels

    def _read(self, pairs: dict[str, tuple[Path, Path]]) -> tuple[Tensor, Tensor, list[str]]:
        """Both images of every pair, converted to the dataset's channels and brought to one
        square size alike; a bad pair stops the load or is left out and named."""
        mode = "L" if self._decided() == 1 else "RGB"
        read, skipped = [], []
        for clean_file, degraded_file in pairs.values():
            problem, images = _read_pair(clean_file, degraded_file, mode)
            if problem is None:
                read.append(images)
                continue
            if self.params.mismatched == "error":
                raise DataError(f"{problem}. Fix or remove that pair, or set mismatched = "
                                "\"skip\" in [dataset] to leave such pairs out.")
            skipped.append(clean_file.name)
        if not read:
            raise DataError(f"None of the {len(pairs)} pairs in this split could be used "
                            f"(e.g. {skipped[0] if skipped else '?'}).")
        sides = [min(pair[0].size) for pair in read]
        side = max(set(sides), key=sides.count)
        clean = _stack([_square(pair[0], side) for pair in read], mode)
        degraded = _stack([_square(pair[1], side) for pair in read], mode)
        return clean, degraded, skipped


def _read_pair(clean_file: Path, degraded_file: Path, mode: str):  # type: ignore[no-untyped-def]
    """``(None, (clean, degraded))`` as PIL images in ``mode``, or ``(problem, None)``."""
    from PIL import Image, UnidentifiedImageError

    images = []
    for file in (clean_file, degraded_file):
        try:
            with Image.open(file) as image:
                images.append(image.convert(mode))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            return f"{file} cannot be read as an image", None
    if images[0].size != images[1].size:
        return (f"{degraded_file} is {images[1].size[0]}x{images[1].size[1]} but its clean "
                f"twin {clean_file} is {images[0].size[0]}x{images[0].size[1]}: a pair must "
                "have one size"), None
    return None, tuple(images)


def _square(image, side: int):  # type: ignore[no-untyped-def]
    """The image at ``side`` x ``side``: unchanged when it is, else resized and centre-cropped."""
    return image if image.size == (side, side) else resize_and_centre_crop(image, side)


def _stack(images: list, mode: str) -> Tensor:  # type: ignore[type-arg]
    stacked = to_unit_float(np.stack([np.asarray(image) for image in images]))
    return stacked.permute(0, 3, 1, 2).contiguous() if mode == "RGB" else stacked


__all__ = ["PairedFolder", "pairs_from_tensors"]
