"""Labelled image grids saved as PNG (Figure-3 pictures, degradation previews)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from coldkit.runtime.files import write_atomic

HEADER_HEIGHT = 16
GAP = 2


def to_uint8_rgb(image: Tensor) -> np.ndarray:
    """A ``(C, H, W)`` image in [0, 1] (C = 1 or 3) as an ``(H, W, 3)`` uint8 array."""
    image = image.detach().float().clamp(0, 1).cpu()
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def save_grid(
    columns: Sequence[Tensor], labels: Sequence[str], path: Path, scale: int = 3
) -> Path:
    """Save images side by side: one column per tensor ``(N, C, H, W)``, one row per sample.

    Each cell is enlarged ``scale`` times (nearest neighbour) and each column gets a label.
    """
    if len(columns) != len(labels):
        raise ValueError("one label per column")
    rows = min(len(column) for column in columns)
    height, width = columns[0].shape[-2] * scale, columns[0].shape[-1] * scale
    canvas = Image.new(
        "RGB",
        (len(columns) * (width + GAP) + GAP, HEADER_HEIGHT + rows * (height + GAP) + GAP),
        "white",
    )
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for col, (column, label) in enumerate(zip(columns, labels)):
        left = GAP + col * (width + GAP)
        draw.text((left + 2, 2), label[: max(1, width // 6)], fill="black", font=font)
        for row in range(rows):
            cell = Image.fromarray(to_uint8_rgb(column[row])).resize((width, height), Image.NEAREST)
            canvas.paste(cell, (left, HEADER_HEIGHT + GAP + row * (height + GAP)))
    return save_png(canvas, path)


def save_png(picture: Image.Image, path: Path) -> Path:
    """Write ``picture`` as a PNG, atomically (a full disk never leaves a corrupt file)."""
    return write_atomic(path, lambda handle: picture.save(handle, format="PNG"))


def save_tiles(images: Tensor, path: Path, per_row: int = 10, scale: int = 2) -> Path:
    """Save ``(N, C, H, W)`` images as a tiled grid, ``per_row`` to a row (generated samples)."""
    count = len(images)
    if count == 0:
        raise ValueError("no images to tile")
    columns = min(per_row, count)
    rows = -(-count // columns)
    height, width = images.shape[-2] * scale, images.shape[-1] * scale
    canvas = Image.new(
        "RGB", (columns * (width + GAP) + GAP, rows * (height + GAP) + GAP), "white"
    )
    for index in range(count):
        cell = Image.fromarray(to_uint8_rgb(images[index])).resize((width, height), Image.NEAREST)
        row, col = divmod(index, columns)
        canvas.paste(cell, (GAP + col * (width + GAP), GAP + row * (height + GAP)))
    return save_png(canvas, path)
