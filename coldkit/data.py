"""Data helpers for dataset plugins: disjoint splits, IDX files, image folders, resizing."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from coldkit.errors import DataError

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


def folder_class_labels(folder: Path) -> tuple[Tensor | None, list[str]]:
    """Class labels of the images under ``folder``, aligned with :func:`load_image_folder`.

    Images laid out as ``folder/<class>/...`` (torchvision's ImageFolder convention) get the index
    of their first-level subfolder among the sorted names of the subfolders that hold images. There
    are no labels (``None``, ``[]``) when an image lies directly in ``folder`` or when fewer than
    two such subfolders exist, since then the layout says nothing about classes.
    """
    files = image_files(folder)
    parts = [file.relative_to(folder).parts for file in files]
    if not parts or any(len(part) < 2 for part in parts):
        return None, []
    classes = sorted({part[0] for part in parts})
    if len(classes) < 2:
        return None, []
    index = {name: i for i, name in enumerate(classes)}
    return torch.tensor([index[part[0]] for part in parts], dtype=torch.long), classes


def load_image_folder(folder: Path, channels: int) -> Tensor:
    """Every image file under ``folder`` (sorted, recursive) as ``(N, C, H, W)`` in [0, 1]."""
    from PIL import Image

    files = image_files(folder)
    if not files:
        raise DataError(
            f"No images found in {folder}. Put image files ({', '.join(sorted(IMAGE_SUFFIXES))}) "
            "there, or point `path` at an IDX file."
        )
    mode = "L" if channels == 1 else "RGB"
    arrays = []
    for file in files:
        with Image.open(file) as image:
            arrays.append(np.asarray(image.convert(mode)))
    sizes = {array.shape[:2] for array in arrays}
    if len(sizes) > 1:
        # Different sizes: bring each to the first one's size before stacking.
        height, width = arrays[0].shape[:2]
        arrays = [
            np.asarray(Image.fromarray(a).resize((width, height), Image.BILINEAR)) for a in arrays
        ]
    stacked = np.stack(arrays)
    if channels == 1:
        return to_unit_float(stacked)
    return to_unit_float(stacked).permute(0, 3, 1, 2).contiguous()


def resize_images(images: Tensor, size: int) -> Tensor:
    """Resize ``(N, C, H, W)`` images to ``size x size`` (antialiased bilinear), kept in [0, 1]."""
    if images.shape[-2:] == (size, size):
        return images
    resized = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
    return resized.clamp_(0.0, 1.0)
