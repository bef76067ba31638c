"""The ``swirl`` degradation: a twist about the image centre whose angle grows with ``t``.

Each output pixel at distance ``r`` from the centre is read, with bilinear interpolation
(``torch.nn.functional.grid_sample``), from the input rotated by ``phi = strength * t / T *
exp(-(r / radius)^2)``: a full ``strength`` twist in the middle, fading towards the edges. One warp
per call, with one angle per sample, so a batch may mix levels and the cost does not depend on
``t``. At ``t = 0`` the input is returned unchanged (bit for bit).

With ``jitter > 0`` the centre of each image is drawn at random by ``sample_params`` (the only
random part), so a sampler reuses the same centres at every step.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import Tensor

from coldkit import DegradationParams
from coldkit_swirl.params import SWIRL, SwirlParams


class Swirl:
    """Twist the image about its centre by an angle proportional to ``t``."""

    name: ClassVar[str] = SWIRL.name
    description: ClassVar[str] = SWIRL.description
    Params: ClassVar[type[BaseModel]] = SwirlParams

    def __init__(self, params: SwirlParams | None = None) -> None:
        self.params = params or SwirlParams()
        self.steps = self.params.steps
        #: What sample_params draws (plugin API 4): the centres, only with jitter.
        self.random_params: tuple[str, ...] = ("centre",) if self.params.jitter > 0 else ()

    def sample_params(
        self, x0: Tensor, generator: torch.Generator | None = None
    ) -> DegradationParams:
        """The centre of each image, ``(B, 2)`` in [-1, 1] (x, y), when ``jitter > 0``."""
        if self.params.jitter == 0:
            return {}
        shift = torch.rand(x0.shape[0], 2, generator=generator) * 2 - 1
        return {"centre": self.params.jitter * shift}

    def degrade(self, x0: Tensor, t: Tensor, params: DegradationParams | None = None) -> Tensor:
        if x0.ndim != 4 or not x0.is_floating_point():
            raise ValueError(f"swirl expects float images (B, C, H, W), got {x0.dtype} {tuple(x0.shape)}")
        batch, _, height, width = x0.shape
        t = torch.as_tensor(t, device=x0.device).long().reshape(-1)
        if t.shape != (batch,):
            raise ValueError(f"swirl expects one level per image, t of shape ({batch},)")
        grid = self.grid(t, height, width, (params or {}).get("centre"), x0.dtype, x0.device)
        warped = F.grid_sample(
            x0, grid, mode="bilinear", padding_mode=self.params.padding, align_corners=False
        )
        return torch.where((t == 0).view(-1, 1, 1, 1), x0, warped)

    def grid(
        self,
        t: Tensor,
        height: int,
        width: int,
        centre: Tensor | None,
        dtype: torch.dtype,
        device: torch.device,
    ) -> Tensor:
        """The sampling grid ``(B, H, W, 2)`` of ``grid_sample`` for levels ``t``."""
        # Pixel centres in grid_sample's coordinates (align_corners=False), then in pixels.
        xs = (torch.arange(width, dtype=dtype, device=device) * 2 + 1) / width - 1
        ys = (torch.arange(height, dtype=dtype, device=device) * 2 + 1) / height - 1
        if centre is None:
            centre = torch.zeros(len(t), 2)
        centre = centre.to(device=device, dtype=dtype)
        dx = (xs.view(1, 1, -1) - centre[:, 0].view(-1, 1, 1)) * (width / 2)
        dy = (ys.view(1, -1, 1) - centre[:, 1].view(-1, 1, 1)) * (height / 2)
        r = torch.sqrt(dx**2 + dy**2) / (min(height, width) / 2)
        angle = self.params.strength * t.to(dtype) / self.steps
        phi = angle.view(-1, 1, 1) * torch.exp(-((r / self.params.radius) ** 2))
        cos, sin = torch.cos(phi), torch.sin(phi)
        source_x = (cos * dx + sin * dy) / (width / 2) + centre[:, 0].view(-1, 1, 1)
        source_y = (cos * dy - sin * dx) / (height / 2) + centre[:, 1].view(-1, 1, 1)
        return torch.stack([source_x, source_y], dim=-1)
