"""The image sets ``coldkit fid`` compares, named on the command line.

A source is one of:

* a folder of image files (read as :func:`coldkit.data.files.load_image_folder` reads them);
* a run folder: its generated ``samples.pt`` when it has one, else its held-out split
  (``evaluate.split`` of the dataset it scores, at the run's image size);
* a ``samples.pt`` file (an ``(N, C, H, W)`` tensor in [0, 1], or uint8 in 0-255);
* ``dataset:NAME[:SPLIT]``: a registered dataset with its default parameters (split ``test`` by
  default), at its own image size.

``image_size`` resizes a source to that side first (as a run's ``dataset.image_size`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from coldkit.config import DatasetSection, load_experiment, resolve_plugin
from coldkit.data.files import load_image_folder, resize_images, to_unit_float
from coldkit.data.splits import load_split
from coldkit.errors import DataError
from coldkit.plugins import Registry
from coldkit.protocols import BuildContext
from coldkit.runs.folder import CONFIG_FILE, SAMPLES_FILE

DATASET_PREFIX = "dataset:"
SPLITS = ("train", "val", "test", "all")


@dataclass(frozen=True)
class ImageSource:
    """Images in [0, 1], ``(N, C, H, W)``, and where they came from (for messages and JSON)."""

    images: Tensor
    description: str


def read_source(
    spec: str, registry: Callable[[], Registry], image_size: int | None = None
) -> ImageSource:
    """The images ``spec`` names (see the module's docstring); ``registry`` is called only for a
    dataset or a run folder. Raises :class:`DataError` naming the source and what it may be."""
    if spec.startswith(DATASET_PREFIX):
        source = _dataset(spec, registry(), image_size)
    else:
        path = Path(spec).expanduser()
        if path.is_dir() and (path / CONFIG_FILE).is_file():
            source = _run_folder(path, registry, image_size)
        elif path.is_dir():
            folder = load_image_folder(path)
            source = ImageSource(folder.images, f"{len(folder.images)} images in {path}")
        elif path.is_file() and path.suffix == ".pt":
            source = ImageSource(_tensor_file(path), f"samples in {path}")
        else:
            raise DataError(
                f"Cannot read images from {spec!r}: it is not a folder of images, a run folder, "
                f"a .pt tensor file or {DATASET_PREFIX}NAME[:SPLIT]. Pass one of those."
            )
    if image_size is not None and source.images.shape[-1] != image_size:
        source = ImageSource(resize_images(source.images, image_size), source.description)
    return source


def _dataset(spec: str, registry: Registry, image_size: int | None) -> ImageSource:
    name, _, split = spec[len(DATASET_PREFIX):].partition(":")
    split = split or "test"
    if split not in SPLITS:
        raise DataError(
            f"Unknown split {split!r} in {spec!r}. Use {DATASET_PREFIX}NAME:SPLIT with SPLIT one "
            f"of {', '.join(SPLITS)}."
        )
    resolved = resolve_plugin(registry, "dataset", DatasetSection(name=name), "dataset")
    if image_size is not None:
        image_set = load_split(resolved, split, image_size)
    else:
        context = BuildContext(32, None, split=split if split != "all" else "test")
        image_set = resolved.build(context).load(split)
    return ImageSource(image_set.images, image_set.source)


def _run_folder(
    root: Path, registry: Callable[[], Registry], image_size: int | None
) -> ImageSource:
    samples = root / SAMPLES_FILE
    if samples.is_file():
        return ImageSource(_tensor_file(samples), f"generated samples of the run {root}")
    experiment = load_experiment(root / CONFIG_FILE, registry())
    size = image_size or experiment.config.dataset.image_size
    image_set = load_split(
        experiment.evaluate_dataset or experiment.dataset, experiment.config.evaluate.split, size
    )
    return ImageSource(image_set.images, f"held-out images of the run {root} ({image_set.source})")


def _tensor_file(path: Path) -> Tensor:
    try:
        images = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise DataError(
            f"Cannot read {path} as a tensor file ({type(exc).__name__}). Pass a samples.pt "
            "written by coldkit (torch.save of an (N, C, H, W) tensor)."
        ) from None
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DataError(
            f"{path} does not hold an (N, 1 or 3, H, W) image tensor. Pass a samples.pt written "
            "by coldkit, or a folder of images."
        )
    return to_unit_float(images) if images.dtype == torch.uint8 else images.float()


__all__ = ["DATASET_PREFIX", "ImageSource", "read_source"]
