"""``coldkit show-degradation``: a PNG grid of a degradation at every level.

Rows are images, columns are levels ``t = 0 .. T`` (at most ``max_columns`` evenly spread levels,
always with 0 and T, when T is large). The degradation's random parameters (mask centres, snow
layers, noise) are drawn once per image and reused in every column, as a sampler would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from pydantic import BaseModel, ValidationError
from torch import Tensor

from coldkit.config import apply_overrides, format_validation_error, load_experiment
from coldkit.data.files import resize_images
from coldkit.data.splits import DatasetReader
from coldkit.errors import ConfigError, DataError
from coldkit.data.imaging import save_grid
from coldkit.plugins import Registry
from coldkit.protocols import BuildContext, Degradation
from coldkit.runtime.log import quiet

#: Side and channels of the synthetic images used without a config: colour, so that colour
#: degradations (decolor, snow) show what they do.
SYNTHETIC_SIZE = 32
SYNTHETIC_CHANNELS = 3
MAX_COLUMNS = 11


def preview_levels(steps: int, max_columns: int = MAX_COLUMNS) -> list[int]:
    """Levels shown: all of ``0 .. steps``, or ``max_columns`` evenly spread ones with 0 and T."""
    if steps + 1 <= max_columns:
        return list(range(steps + 1))
    return sorted({round(i * steps / (max_columns - 1)) for i in range(max_columns)})


def degradation_overrides(overrides: Sequence[str]) -> list[str]:
    """``key=value`` overrides of degradation parameters; a ``degradation.`` prefix is allowed."""
    cleaned = []
    for override in overrides:
        key, separator, value = override.partition("=")
        key = key.strip().removeprefix("degradation.")
        if not separator or not key or "." in key:
            raise ConfigError(
                f"Cannot read --set {override!r}: show-degradation takes degradation parameters "
                "as key=value, e.g. --set steps=10."
            )
        cleaned.append(f"{key}={value}")
    return cleaned


def preview_degradation(
    name: str,
    *,
    config: Path | None = None,
    out: Path | None = None,
    overrides: Sequence[str] = (),
    images: int = 4,
    registry: Registry | None = None,
    seed: int = 0,
    max_columns: int = MAX_COLUMNS,
    scale: int = 2,
    notify: Callable[[str], None] | None = None,
) -> Path:
    """Write a grid of degradation ``name`` applied to ``images`` images; return the PNG's path.

    With ``config``, the images come from its dataset (the evaluation split, resized to
    ``dataset.image_size``) and its ``[degradation]`` section supplies the parameters if it names
    ``name``; otherwise the parameters are the defaults and the images synthetic colour shapes
    (dataset plugin ``synthetic``). ``overrides`` (``key=value``) set degradation parameters on top.
    ``notify`` receives one-line notes (which levels are shown, where images came from).
    """
    notify = notify or quiet
    if images < 1:
        raise ConfigError(f"--images must be at least 1, got {images}.")
    registry = registry or Registry.discover()
    record = registry.get("degradation", name)  # unknown name: PluginError listing valid ones

    section, x0, source = _section_and_images(name, config, registry, images, seed, notify)
    section = apply_overrides(section, degradation_overrides(overrides))
    params = _validate(record.params_model, section, name)
    notify(f"images: {source}")

    size = int(x0.shape[-1])
    context = BuildContext(size, int(x0.shape[1]), split="test", seed=seed,
                           data=DatasetReader(registry, size, notify))
    degradation: Degradation = record.build(params, context)
    levels = _shown_levels(degradation.steps, max_columns, notify)
    columns = _degrade_at(degradation, x0, levels, seed, name)
    path = Path(out) if out is not None else Path(f"{name}_preview.png")
    return save_grid(columns, [f"t={level}" for level in levels], path, scale=scale)


def _section_and_images(
    name: str,
    config: Path | None,
    registry: Registry,
    count: int,
    seed: int,
    notify: Callable[[str], None],
) -> tuple[dict[str, Any], Tensor, str]:
    """The ``[degradation]`` parameters to start from, the images and where they came from.

    The config's parameters apply only if it names degradation ``name``; without a config the
    images are synthetic and the parameters the defaults.
    """
    section: dict[str, Any] = {}
    if config is None:
        x0, source = _synthetic_images(registry, count, seed)
        return section, x0, source
    experiment = load_experiment(Path(config), registry)
    if experiment.config.degradation.name == name:
        section = dict(experiment.config.degradation.plugin_params())
        notify(f"parameters from [degradation] of {config}")
    else:
        notify(
            f"{config} uses degradation {experiment.config.degradation.name!r}, not "
            f"{name!r}: using {name!r}'s defaults"
        )
    x0, source = _config_images(experiment, count)
    return section, x0, source


def _shown_levels(steps: int, max_columns: int, notify: Callable[[str], None]) -> list[int]:
    """The levels to show, with a note when they are fewer than all of ``0 .. steps``."""
    levels = preview_levels(steps, max_columns)
    if len(levels) < steps + 1:
        notify(
            f"T = {steps}: showing {len(levels)} of {steps + 1} levels "
            f"(t = {', '.join(map(str, levels))})"
        )
    return levels


def _degrade_at(
    degradation: Degradation, x0: Tensor, levels: list[int], seed: int, name: str
) -> list[Tensor]:
    """``x0`` degraded to each level, with one random draw per image shared by every level."""
    try:
        with torch.no_grad():
            drawn = degradation.sample_params(x0, torch.Generator().manual_seed(seed))
            return [
                degradation.degrade(x0, torch.full((len(x0),), level, dtype=torch.long), drawn)
                for level in levels
            ]
    except (ValueError, TypeError) as exc:  # e.g. a level below one pixel, wrong channel count
        raise ConfigError(
            f"Degradation {name!r} cannot be applied to these images: {exc}."
        ) from None


def _validate(model: type[BaseModel], section: dict[str, Any], name: str) -> BaseModel:
    try:
        return model.model_validate(section)
    except ValidationError as exc:
        raise ConfigError(
            f"Invalid parameters for degradation {name!r}: "
            f"{format_validation_error(exc, 'degradation.')}. Valid keys: "
            f"{', '.join(sorted(model.model_fields))}."
        ) from None


def _synthetic_images(registry: Registry, count: int, seed: int) -> tuple[Tensor, str]:
    record = registry.get("dataset", "synthetic")
    params = record.params_model.model_validate(
        {
            "count": max(count, 3),
            "size": SYNTHETIC_SIZE,
            "channels": SYNTHETIC_CHANNELS,
            "seed": seed,
            "test_fraction": 0.0,
        }
    )
    image_set = record.build(params).load("train")
    return image_set.images[:count], f"{image_set.source} ({SYNTHETIC_CHANNELS} channels)"


def _config_images(experiment: Any, count: int) -> tuple[Tensor, str]:
    resolved = experiment.evaluate_dataset or experiment.dataset
    split = experiment.config.evaluate.split
    image_set = resolved.build().load(split)
    if len(image_set.images) == 0:
        raise DataError(
            f"The {split} split of dataset {resolved.record.name!r} is empty; set "
            "evaluate.split to a split with images."
        )
    x0 = resize_images(image_set.images[:count], experiment.config.dataset.image_size)
    return x0, image_set.source
