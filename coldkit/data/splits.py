"""The splits of an experiment's datasets, as training, evaluation and generation read them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from pydantic import ValidationError
from torch import Tensor

from coldkit.config import Experiment, ResolvedPlugin, format_validation_error
from coldkit.data.files import resize_images
from coldkit.errors import ConfigError, DataError, PluginError
from coldkit.plugins import Registry
from coldkit.protocols import BuildContext, ImageSet, Split
from coldkit.data.streaming import training_image_set


def load_split(
    resolved: ResolvedPlugin, split: str, image_size: int, channels: int | None = None
) -> ImageSet:
    """Load one split of the dataset built with its build context (where it learns the image
    size), resized to ``image_size`` where it came at another size (``load`` may return images
    as the files hold them); check it is not empty and (optionally) its channel count."""
    image_set = resolved.build(BuildContext(image_size, channels, split=_served(split))).load(split)
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
    return replace(image_set, images=images, params=_resized(image_set.params, image_size))


def _resized(params: dict[str, Tensor] | None, image_size: int) -> dict[str, Tensor] | None:
    """Served per-image parameters resized as their images are (a paired dataset's twins)."""
    if params is None:
        return None
    return {key: resize_images(value, image_size) for key, value in params.items()}


def evaluation_split(experiment: Experiment, image_size: int, channels: int) -> ImageSet:
    """The split Table 1 is scored on: ``evaluate.split`` of ``evaluate.dataset`` (or the
    training dataset), with the model's channel count."""
    dataset = experiment.evaluate_dataset or experiment.dataset
    return load_split(dataset, experiment.config.evaluate.split, image_size, channels)


def training_split(experiment: Experiment, image_size: int) -> ImageSet:
    """The training split in memory, or a sample of it where it would stream (for the prior and
    the judge outside ``coldkit run``)."""
    return training_image_set(
        experiment.dataset.build(BuildContext(image_size, split="train")), image_size,
        experiment.config.dataset.max_memory_gb,
        lambda: load_split(experiment.dataset, "train", image_size), experiment.config.seed,
    )


def _served(split: str) -> Split:
    return split if split in ("train", "val", "test") else "test"  # type: ignore[return-value]


def serving_split(experiment: Experiment) -> Split:
    """The split evaluation, generation and restore serve: ``evaluate.split`` (``all``: test)."""
    return _served(experiment.config.evaluate.split)


@dataclass
class DatasetReader:
    """A run's :class:`~coldkit.protocols.DatasetAccess`: registered datasets for plugins.

    Looks each dataset up in the run's ``registry`` (so the plugin trace shows it and
    ``disable_plugins`` applies), validates its parameters, loads the split, resizes it to
    ``image_size`` with coldkit's own resize, logs it once through ``notify`` and keeps it in
    ``sources`` (which ``run.json`` lists as ``plugin_data``). Each split is loaded once.
    """

    registry: Registry
    image_size: int
    notify: Callable[[str], None] = lambda message: None
    sources: list[dict[str, Any]] = field(default_factory=list)
    _cache: dict[str, ImageSet] = field(default_factory=dict, repr=False)

    def __call__(
        self, name: str, params: Mapping[str, Any] | None = None, split: Split = "train"
    ) -> ImageSet:
        given = dict(params or {})
        key = json.dumps([name, given, split], sort_keys=True, default=str)
        if key not in self._cache:
            self._cache[key] = self._load(name, given, split)
        return self._cache[key]

    def _load(self, name: str, params: dict[str, Any], split: Split) -> ImageSet:
        try:
            record = self.registry.get("dataset", name)
        except PluginError as exc:
            raise PluginError(f"a plugin asked for dataset {name!r}: {exc}") from None
        try:
            validated = record.params_model.model_validate(params)
        except ValidationError as exc:
            raise ConfigError(
                f"a plugin asked for dataset {name!r} with invalid parameters: "
                f"{format_validation_error(exc)}"
            ) from None
        context = BuildContext(self.image_size, split=split, data=self)
        try:
            image_set = record.build(validated, context).load(split)
        except DataError as exc:
            raise DataError(
                f"{exc} (Dataset {name!r} was asked for by a plugin: its parameters are set in "
                "that plugin's section, e.g. degradation.target = { name = ..., params = {...} }.)"
            ) from None
        if len(image_set.images) == 0:
            raise DataError(f"The {split} split of dataset {name!r} (asked for by a plugin) is "
                            "empty; pick a split with images or change its fractions.")
        image_set = replace(image_set, images=resize_images(image_set.images, self.image_size),
                            params=_resized(image_set.params, self.image_size))
        self.sources.append({
            "dataset": self.registry.config_name(record), "served_by": record.served_by,
            "params": validated.model_dump(mode="json"), "split": split,
            "images": len(image_set.images), "source": image_set.source,
        })
        self.notify(f"data for a plugin: dataset {name!r} {split} split, "
                    f"{len(image_set.images)} images — {image_set.source}")
        return image_set


def dataset_reader(
    experiment: Experiment, image_size: int, notify: Callable[[str], None] = lambda m: None
) -> DatasetReader:
    """The reader of an experiment's registry (a fresh discovery where it kept none)."""
    registry = experiment.registry if experiment.registry is not None else Registry.discover()
    return DatasetReader(registry, image_size, notify)


__all__ = [
    "DatasetReader",
    "dataset_reader",
    "evaluation_split",
    "load_split",
    "serving_split",
    "training_split",
]
