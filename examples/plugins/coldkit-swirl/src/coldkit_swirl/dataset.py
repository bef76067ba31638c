"""The ``stripes`` dataset: seeded stripes at random angles and colours, made on the fly.

A dataset with nothing to download, to show the dataset kind: the images are made from the seed,
and :func:`coldkit.data.take_split` splits them the way every built-in dataset does (a permutation
seeded by ``split_seed``, ``test_fraction`` and ``val_fraction`` held out, at most ``limit``
kept), with the keys of :class:`coldkit.params.SplitParams` in our ``Params``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import BaseModel

from coldkit import ImageSet
from coldkit.data import take_split
from coldkit_swirl.params import STRIPES, StripesParams


def make_stripes(count: int, size: int, channels: int, seed: int) -> torch.Tensor:
    """``count`` images ``(count, channels, size, size)`` in [0, 1]: a sine grating each, with
    its own angle, period, phase and two colours."""
    generator = torch.Generator().manual_seed(seed)
    angle = torch.rand(count, 1, 1, generator=generator) * math.pi
    period = 3 + torch.rand(count, 1, 1, generator=generator) * size / 3
    phase = torch.rand(count, 1, 1, generator=generator) * 2 * math.pi
    grid = torch.arange(size, dtype=torch.float32)
    ys, xs = grid.view(1, -1, 1), grid.view(1, 1, -1)
    along = xs * torch.cos(angle) + ys * torch.sin(angle)
    wave = (0.5 + 0.5 * torch.sin(2 * math.pi * along / period + phase)).unsqueeze(1)
    dark, light = (torch.rand(count, channels, 1, 1, generator=generator) for _ in range(2))
    return dark + (light - dark) * wave


class Stripes:
    """Seeded coloured stripes: three disjoint splits of one seeded set."""

    name: ClassVar[str] = STRIPES.name
    description: ClassVar[str] = STRIPES.description
    Params: ClassVar[type[BaseModel]] = StripesParams

    def __init__(self, params: StripesParams | None = None) -> None:
        self.params = params or StripesParams()

    def load(self, split: str) -> ImageSet:
        p = self.params
        images, _ = take_split(make_stripes(p.count, p.size, p.channels, p.seed), split, p)
        return ImageSet(images, f"stripes (seed {p.seed}, {p.size}x{p.size}), {split} split")
