"""Data helpers for dataset plugins: disjoint splits, IDX files, image folders, resizing."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
import struct
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from coldkit.errors import DataError
from coldkit.params import SplitParams

SPLITS = ("train", "val", "test")
#: Every image of a dataset, e.g. a folder of held-back test images given as `evaluate.dataset`.
ALL = "all"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def split_indices(
    count: int, split: str, val_fraction: float, test_fraction: float, seed: int
) -> Tensor:
    """Indices of ``split`` in a seeded permutation of ``count`` items; the three never overlap.

    The permutation is ``[test | val | train]``, so changing ``val_fraction`` never moves an image
    into or out of the test split.
    """
    if split == ALL:
        return torch.arange(count)
    if split not in SPLITS:
        raise DataError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)} or {ALL}.")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    n_test = int(round(count * test_fraction))
    n_val = int(round(count * val_fraction))
    bounds = {"test": (0, n_test), "val": (n_test, n_test + n_val), "train": (n_test + n_val, count)}
    start, stop = bounds[split]
    return order[start:stop]


#: Images ``(N, C, H, W)`` with their ``(N,)`` labels, or ``None`` where there are none.
Labelled = tuple[Tensor, "Tensor | None"]


def take_split(
    images: Tensor, split: str, params: SplitParams, labels: Tensor | None = None
) -> Labelled:
    """The images of ``split`` (``train``, ``val``, ``test`` or ``all``) and their labels (the
    same rows), as every built-in dataset splits: a permutation seeded by ``params.split_seed``,
    ``params.test_fraction`` and ``params.val_fraction`` held out (:func:`split_indices`), at
    most ``params.limit`` kept. Give your dataset's ``Params`` the keys by subclassing
    :class:`coldkit.params.SplitParams`."""
    indices = split_indices(
        len(images), split, params.val_fraction, params.test_fraction, params.split_seed
    )
    return limit_split(images[indices], None if labels is None else labels[indices], params.limit)


def limit_split(images: Tensor, labels: Tensor | None, limit: int | None) -> Labelled:
    """The first ``limit`` images and labels (all of them where ``limit`` is None)."""
    if limit is None:
        return images, labels
    return images[:limit], None if labels is None else labels[:limit]


def to_unit_float(images: np.ndarray | Tensor) -> Tensor:
    """uint8 (0–255) or float images as float32 in [0, 1], shape ``(N, C, H, W)``."""
    tensor = torch.as_tensor(np.asarray(images))
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(1)
    if tensor.dtype == torch.uint8 or tensor.max() > 1.0:
        tensor = tensor.float() / 255.0
    return tensor.float().clamp_(0.0, 1.0)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST's format), optionally gzip-compressed."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        return data.reshape(shape).copy()  # writable, owned by numpy
    except (OSError, ValueError, struct.error) as exc:
        raise DataError(
            f"Cannot read IDX file {path}: {exc}. Point the dataset at valid IDX image files "
            "(e.g. train-images-idx3-ubyte.gz)."
        ) from None


def read_idx_mapped(path: Path) -> np.ndarray:
    """An IDX file as a uint8 array: memory-mapped (left on disk) unless gzip-compressed."""
    if path.suffix == ".gz":
        return read_idx(path)
    try:
        with open(path, "rb") as handle:
            zero, dtype_code, ndim = struct.unpack(">HBB", handle.read(4))
            if zero != 0 or dtype_code != 0x08:
                raise ValueError("not an unsigned-byte IDX file")
            shape = struct.unpack(f">{ndim}I", handle.read(4 * ndim))
        return np.memmap(path, dtype=np.uint8, mode="r", offset=4 + 4 * ndim, shape=shape)
    except (OSError, ValueError, struct.error) as exc:
        raise DataError(
            f"Cannot read IDX file {path}: {exc}. Point the dataset at valid IDX image files "
            "(e.g. train-images-idx3-ubyte.gz)."
        ) from None


def write_idx(path: Path, images: np.ndarray) -> None:
    """Write uint8 ``images`` as an IDX file (gzip-compressed if ``path`` ends in .gz)."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, images.ndim) + struct.pack(
        f">{images.ndim}I", *images.shape
    )
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(header + images.tobytes())


def find_idx_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz``, whichever exists."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def image_files(folder: Path) -> list[Path]:
    """Every image file under ``folder``, recursive, in the order :func:`load_image_folder` uses."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def folder_class_labels(
    folder: Path, files: list[Path] | None = None
) -> tuple[Tensor | None, list[str]]:
    """Class labels of ``files`` (default: every image under ``folder``), aligned with them.

    Images laid out as ``folder/<class>/...`` (torchvision's ImageFolder convention) get the index
    of their first-level subfolder among the sorted names of the subfolders that hold images. There
    are no labels (``None``, ``[]``) when an image lies directly in ``folder`` or when fewer than
    two such subfolders exist, since then the layout says nothing about classes.
    """
    files = image_files(folder) if files is None else files
    parts = [file.relative_to(folder).parts for file in files]
    if not parts or any(len(part) < 2 for part in parts):
        return None, []
    classes = sorted({part[0] for part in parts})
    if len(classes) < 2:
        return None, []
    index = {name: i for i, name in enumerate(classes)}
    return torch.tensor([index[part[0]] for part in parts], dtype=torch.long), classes


@dataclass(frozen=True)
class FolderImages:
    """The readable images of a folder, the files they came from, and what was done to them."""

    images: Tensor
    files: list[Path]
    notes: list[str]


def load_image_folder(
    folder: Path, channels: int | None = None, files: list[Path] | None = None
) -> FolderImages:
    """Every readable image under ``folder`` (sorted, recursive; or only ``files``) as
    ``(N, C, H, W)`` in [0, 1].

    ``channels`` None keeps colour when any image has colour (else grey); 1 or 3 converts.
    Files that cannot be read are skipped and named in ``notes``; images of other sizes or
    aspect ratios are brought to one square size as torchvision's ``Resize`` + ``CenterCrop``
    do: the short side is resized to the most common short side, then the centre is cropped.
    """
    from PIL import Image, UnidentifiedImageError

    files = image_files(folder) if files is None else files
    if not files:
        raise DataError(
            f"No images found in {folder}. Put image files ({', '.join(sorted(IMAGE_SUFFIXES))}) "
            "there, or point `path` at an IDX file."
        )
    opened, kept, unreadable = [], [], []
    for file in files:
        try:
            with Image.open(file) as image:
                image.load()
                opened.append(image.copy())
            kept.append(file)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            unreadable.append(file)  # a decompression bomb (over Pillow's pixel limit) too
    if not opened:
        raise DataError(
            f"None of the {len(files)} image files in {folder} could be read (e.g. "
            f"{files[0].name}). Check that they are valid images."
        )
    notes = [unreadable_note(unreadable)] if unreadable else []
    if channels is None:
        colour = any(_has_colour(image) for image in opened)
        channels = 3 if colour else 1
        notes.append(f"{'colour' if channels == 3 else 'grey'} images, read from the files")
    mode = "L" if channels == 1 else "RGB"
    converted = [image.convert(mode) for image in opened]
    sides = [min(image.size) for image in converted]
    side = max(set(sides), key=sides.count)
    if any(image.size != (side, side) for image in converted):
        notes.append(
            f"images of other sizes resized (short side to {side} px) and centre-cropped to "
            f"{side}x{side}"
        )
        converted = [resize_and_centre_crop(image, side) for image in converted]
    stacked = np.stack([np.asarray(image) for image in converted])
    images = to_unit_float(stacked)
    if channels == 3:
        images = images.permute(0, 3, 1, 2).contiguous()
    return FolderImages(images, kept, notes)


def unreadable_note(files: list[Path]) -> str:
    """The log's words for skipped files: how many, and the first three by name."""
    names = ", ".join(file.name for file in files[:3])
    more = f" and {len(files) - 3} more" if len(files) > 3 else ""
    return f"skipped {len(files)} unreadable file(s): {names}{more}"


def folder_channels(files: Sequence[Path], sample: int = 64) -> int:
    """3 if any of ``files`` holds colour, else 1: decided once for a whole folder, so every
    split of it (train, val, test) gets the same channel count.

    Reads each file's header (its mode) and the pixels of up to ``sample`` colour-mode files
    (an RGB file of grey pixels counts as grey); unreadable files are skipped.
    """
    from PIL import Image

    checked = 0
    for file in files:
        try:
            with Image.open(file) as image:
                if image.mode in ("1", "L", "LA", "I", "I;16", "F"):
                    continue
                if checked >= sample:
                    continue
                checked += 1
                if _has_colour(image):
                    return 3
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            continue
    return 1


def _has_colour(image) -> bool:  # type: ignore[no-untyped-def]
    """Whether a PIL image holds colour: an RGB file of grey pixels counts as grey."""
    if image.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return False
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    return bool((rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 1] != rgb[..., 2]).any())


def resize_and_centre_crop(image, side: int):  # type: ignore[no-untyped-def]
    """A PIL image with its short side resized to ``side`` (bilinear), centre-cropped square:
    torchvision's ``Resize(side)`` + ``CenterCrop(side)``."""
    from PIL import Image

    width, height = image.size
    scale = side / min(width, height)
    resized = image.resize(
        (max(side, round(width * scale)), max(side, round(height * scale))), Image.BILINEAR
    )
    left = (resized.size[0] - side) // 2
    top = (resized.size[1] - side) // 2
    return resized.crop((left, top, left + side, top + side))


def resize_images(images: Tensor, size: int) -> Tensor:
    """Resize ``(N, C, H, W)`` images to ``size x size`` (antialiased bilinear), kept in [0, 1]."""
    if images.shape[-2:] == (size, size):
        return images
    resized = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
    return resized.clamp_(0.0, 1.0)
