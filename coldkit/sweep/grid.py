"""The grid of ``coldkit sweep``: its axes (``--over key=v1,v2``), its size, its points and their
folder names (``coldkit.sweep`` validates and runs them; ``coldkit.sweep.results`` reports)."""

from __future__ import annotations

import itertools
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from coldkit.config import Experiment
from coldkit.errors import ColdkitError

#: The most points a sweep runs unless ``--max-points`` allows more (each point is a training).
MAX_POINTS = 100


class SweepError(ColdkitError):
    """A sweep could not start or one of its points failed (the message names the point)."""


@dataclass(frozen=True)
class Axis:
    """One ``--over key=v1,v2,...``: a config key and the raw values it takes."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class SweepPoint:
    """One point of the grid: its settings (key, raw value), its folder name and experiment."""

    settings: tuple[tuple[str, str], ...]
    experiment: Experiment
    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def overrides(self) -> list[str]:
        return [f"{key}={value}" for key, value in self.settings]


@dataclass
class Sweep:
    """A validated grid: the base config, the axes, the ``--set`` overrides and every point."""

    config: Path
    axes: tuple[Axis, ...]
    overrides: tuple[str, ...]
    out: Path
    points: list[SweepPoint]
    parallel: int = 1
    status: dict[str, str] = field(default_factory=dict)


def parse_axis(text: str) -> Axis:
    """``key=v1,v2,...`` -> :class:`Axis` (values are TOML, as in ``--set``; no commas inside)."""
    key, separator, raw = text.partition("=")
    values = tuple(value.strip() for value in raw.split(","))
    if not separator or not key.strip() or not all(values):
        raise SweepError(
            f"Cannot read --over {text!r}. Write it as section.key=v1,v2,..., e.g. "
            "--over degradation.steps=5,10,20."
        )
    unique: dict[str, str] = {}  # a value given twice (1e-3, 0.001) is one point, not two
    for value in values:
        unique.setdefault(json.dumps(setting_value(value), sort_keys=True, default=str), value)
    return Axis(key.strip(), tuple(unique.values()))


def grid_size(axes: Sequence[Axis]) -> int:
    """How many points the grid of ``axes`` has."""
    return math.prod(len(axis.values) for axis in axes)


def check_grid_size(axes: Sequence[Axis], max_points: int = MAX_POINTS) -> int:
    """The grid's point count, or a :class:`SweepError` past ``max_points`` (before any point is
    validated: a huge grid is refused at once, not after minutes of silence)."""
    points = grid_size(axes)
    if points > max_points:
        shape = " x ".join(f"{len(axis.values)} {axis.key}" for axis in axes)
        raise SweepError(
            f"This grid has {points:,} points ({shape}), each a training run; a sweep runs at "
            f"most {max_points:,} unless told otherwise. Sweep fewer values, or pass "
            f"--max-points {points} to run them all."
        )
    return points


def expand_grid(axes: Sequence[Axis]) -> list[tuple[tuple[str, str], ...]]:
    """Every combination of the axes' values, the first axis varying slowest."""
    keys = [axis.key for axis in axes]
    if len(set(keys)) != len(keys):
        raise SweepError(f"--over names a key twice ({', '.join(keys)}); give each key once.")
    return [tuple(zip(keys, combination))
            for combination in itertools.product(*(axis.values for axis in axes))]


def point_name(settings: Sequence[tuple[str, str]]) -> str:
    """The folder name of a point: ``degradation.steps=5_train.lr=1e-3``."""
    def safe(text: str) -> str:
        return "".join(c if c.isalnum() or c in ".-+=" else "-" for c in text)

    return "_".join(f"{safe(key)}={safe(value)}" for key, value in settings)


def setting_value(raw: str) -> Any:
    """A raw ``--over`` value read as TOML (as ``--set`` reads it), else the text itself."""
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


__all__ = [
    "Axis", "MAX_POINTS", "Sweep", "SweepError", "SweepPoint", "check_grid_size", "expand_grid",
    "grid_size", "parse_axis", "point_name", "setting_value",
]
