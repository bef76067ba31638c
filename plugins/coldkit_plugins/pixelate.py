"""Step-by-step loss of resolution (the paper's super-resolution experiments).

Step ``s`` downsamples the image to side ``size_s`` (area, bilinear or bicubic) and upsamples it
back to full size with nearest neighbours (``nearest-exact``, which centres the blocks). The sizes
shrink by ``factor`` per step (2 in the paper: 32 -> 16 -> 8 -> 4 with T = 3) or follow an explicit
list. As in the official code, step ``s`` is applied to the output of step ``s - 1``; with area
downsampling and an integer factor that equals one direct area downsampling to ``size_t``.

``degrade`` computes every level once per batch (T is small) and picks each sample's own level
with ``torch.where``: mixed ``t`` need no loop over samples and the cost does not depend on ``t``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import Tensor

from coldkit import DegradationParams
from coldkit.validation import check_images, check_levels
from coldkit_plugins.entries.pixelate import PixelateParams, PIXELATE


class Pixelate:
    """Downsample-then-nearest-upsample, repeated ``t`` times."""

    name: ClassVar[str] = PIXELATE.name
    description: ClassVar[str] = PIXELATE.description
    Params: ClassVar[type[BaseModel]] = PixelateParams

    def __init__(self, params: PixelateParams | None = None) -> None:
        self.params = params or PixelateParams()
        self.steps = self.params.steps
        #: What sample_params draws (plugin API 4): nothing.
        self.random_params: tuple[str, ...] = ()

    def level_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """``(height, width)`` of levels ``1 .. T`` for full-size images ``height x width``."""
        if self.params.sizes is not None:
            if self.params.sizes[0] > height:
                raise ValueError(
                    f"pixelate sizes start at {self.params.sizes[0]}, larger than the image "
                    f"height {height}"
                )
            return [(size, max(1, round(size * width / height))) for size in self.params.sizes]
        sizes = []
        for step in range(1, self.steps + 1):
            scale = self.params.factor**step
            # The small epsilon keeps exact powers (32 / 2**3) from rounding down to 3.999...
            size = (math.floor(height / scale + 1e-9), math.floor(width / scale + 1e-9))
            if min(size) < 1:
                raise ValueError(
                    f"pixelate with factor {self.params.factor} and T = {self.steps} shrinks a "
                    f"{height}x{width} image below one pixel at step {step}; lower steps or "
                    "factor, or use larger images"
                )
            sizes.append(size)
        return sizes

    def sample_params(
        self, x0: Tensor, generator: torch.Generator | None = None
    ) -> DegradationParams:
        """Pixelation is deterministic: nothing to draw."""
        return {}

    def degrade(self, x0: Tensor, t: Tensor, params: DegradationParams | None = None) -> Tensor:
        check_images(x0)
        t = check_levels(t, x0, self.steps)
        height, width = x0.shape[-2:]
        select = t.view(-1, 1, 1, 1)
        out, level = x0, x0
        # One pass over the T levels (T is small), whatever the mix of t in the batch.
        for step, size in enumerate(self.level_sizes(height, width), start=1):
            level = self.step(level, size)
            out = torch.where(select == step, level, out)
        return out

    def step(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """One step: downsample full-size ``x`` to ``size`` and upsample back with nearest."""
        if self.params.mode == "area":
            small = F.interpolate(x, size=size, mode="area")
        else:
            small = F.interpolate(
                x, size=size, mode=self.params.mode, align_corners=False,
                antialias=self.params.antialias,
            )
        return F.interpolate(small, size=x.shape[-2:], mode="nearest-exact")
