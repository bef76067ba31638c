"""The splits of an experiment's datasets, as training, evaluation and generation read them."""

from __future__ import annotations

from dataclasses import replace

from coldkit.config import Experiment, ResolvedPlugin
from coldkit.data.files import resize_images
from coldkit.errors import DataError
from coldkit.protocols import ImageSet
from coldkit.data.streaming import training_image_set


def load_split(
    resolved: ResolvedPlugin, split: str, image_size: int, channels: int | None = None
) -> ImageSet:
    """Load one split, resized; check it is not empty and (optionally) its channel count."""
    image_set = resolved.build().load(split)
    if len(image_set.images) == 0:
        raise DataError(
            f"The {split} split of dataset {resolved.record.name!r} is empty. Raise its "
            f"{'val_fraction' if split == 'val' else 'test_fraction'} or use more images."
        )
    images = resize_images(image_set.images, image_size)
    if channels is not None and images.shape[1] != channels:
        raise DataError(
            f"The evaluation images have {images.shape[1]} channels but the model was trained on "
            f"{channels}. Set channels = {channels} in the section of the dataset scored "
            "([evaluate.dataset] if there is one, else [dataset]; image-folder takes it), or "
            "pick a dataset with matching images."
        )
    return replace(image_set, images=images)


def evaluation_split(experiment: Experiment, image_size: int, channels: int) -> ImageSet:
    """The split Table 1 is scored on: ``evaluate.split`` of ``evaluate.dataset`` (or the
    training dataset), with the model's channel count."""
    dataset = experiment.evaluate_dataset or experiment.dataset
    return load_split(dataset, experiment.config.evaluate.split, image_size, channels)


def training_split(experiment: Experiment, image_size: int) -> ImageSet:
    """The training split in memory, or a sample of it where it would stream (for the prior and
    the judge outside ``coldkit run``)."""
    return training_image_set(
        experiment.dataset.build(), image_size, experiment.config.dataset.max_memory_gb,
        lambda: load_split(experiment.dataset, "train", image_size), experiment.config.seed,
    )


__all__ = ["evaluation_split", "load_split", "training_split"]
