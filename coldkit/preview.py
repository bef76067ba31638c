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
from coldkit.data import resize_images
from coldkit.errors import ConfigError, DataError
from coldkit.imaging import save_grid
from coldkit.plugins import Registry
from coldkit.protocols import Degradation

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
    say = notify or (lambda message: None)
    if images < 1:
        raise ConfigError(f"--images must be at least 1, got {images}.")
    registry = registry or Registry.discover()
    record = registry.get("degradation", name)  # unknown name: PluginError listing valid ones

    section: dict[str, Any] = {}
    if config is not None:
        experiment = load_experiment(Path(config), registry)
        if experiment.config.degradation.name == name:
            section = dict(experiment.config.degradation.plugin_params())
            say(f"parameters from [degradation] of {config}")
        else:
            say(
                f"{config} uses degradation {experiment.config.degradation.name!r}, not "
                f"{name!r}: using {name!r}'s defaults"
            )
        x0, source = _config_images(experiment, images)
    else:
        x0, source = _synthetic_images(registry, images, seed)
    section = apply_overrides(section, degradation_overrides(overrides))
    params = _validate(record.params_model, section, name)
    say(f"images: {source}")

    degradation: Degradation = record.component(params)
    levels = preview_levels(degradation.steps, max_columns)
    if len(levels) < degradation.steps + 1:
        say(
            f"T = {degradation.steps}: showing {len(levels)} of {degradation.steps + 1} levels "
            f"(t = {', '.join(map(str, levels))})"
        )
    try:
        with torch.no_grad():
            drawn = degradation.sample_params(x0, torch.Generator().manual_seed(seed))
            columns = [
                degradation.degrade(x0, torch.full((len(x0),), level, dtype=torch.long), drawn)
                for level in levels
            ]
    except (ValueError, TypeError) as exc:  # e.g. a level below one pixel, wrong channel count
        raise ConfigError(
            f"Degradation {name!r} cannot be applied to these images: {exc}."
        ) from None
    path = Path(out) if out is not None else Path(f"{name}_preview.png")
    return save_grid(columns, [f"t={level}" for level in levels], path, scale=scale)


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
    image_set = record.component(params).load("train")
    return image_set.images[:count], f"{image_set.source} ({SYNTHETIC_CHANNELS} channels)"


def _config_images(experiment: Any, count: int) -> tuple[Tensor, str]:
    resolved = experiment.evaluate_dataset or experiment.dataset
    split = experiment.config.evaluate.split
    image_set = resolved.record.component(resolved.params).load(split)
    if len(image_set.images) == 0:
        raise DataError(
            f"The {split} split of dataset {resolved.record.name!r} is empty; set "
            "evaluate.split to a split with images."
        )
    x0 = resize_images(image_set.images[:count], experiment.config.dataset.image_size)
    return x0, image_set.source
