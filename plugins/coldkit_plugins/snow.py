"""Snowification (the paper's snow experiments, after ImageNet-C's snow corruption).

``sample_params`` draws, once per sample, a snow layer (Gaussian noise at ``1/zoom`` resolution,
zoomed up to the image size) and the direction in which the flakes streak. ``degrade`` builds
``D(x0, t)`` from ``x0`` directly for every ``t``, as the official code does:

1. keep the layer's values above the step's threshold (lower thresholds: more snow), clip to [0, 1];
2. motion-blur it along the sample's direction with a Gaussian line kernel whose width grows with
   ``t`` (one grouped convolution: each sample has its own kernel);
3. brighten the image towards ``max(x0, 1.5 * grey(x0) + 0.5)`` by a share growing with ``t``;
4. add the layer and its 180-degree rotation and clip to [0, 1].

Thresholds, blur widths and brightness shares move linearly from their ``*_start`` value at
``t = 1`` to their ``*_end`` value at ``t = T``; the defaults are the official ``snow_level = 1``.
Every step is a fixed amount of batched work, so the cost does not depend on ``t``. Works for 1 and
3 channels (for one channel, ``grey(x0) = x0``); ``t = 0`` returns ``x0`` exactly.
"""

from __future__ import annotations

import math
from typing import ClassVar

import kornia
import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import Tensor

from coldkit import DegradationParams
from coldkit.validation import check_images, check_levels
from coldkit_plugins.entries.snow import SnowParams, SNOW


def schedule(start: float, end: float, steps: int) -> Tensor:
    """Values for ``t = 0 .. T``: linear from ``start`` (t=1) to ``end`` (t=T); t=0 repeats t=1."""
    values = torch.linspace(start, end, steps, dtype=torch.float64)
    return torch.cat([values[:1], values])


def motion_kernels(size: int, sigma: Tensor, angle_degrees: Tensor) -> Tensor:
    """Normalised line kernels ``(B, size, size)``: Gaussian weights of width ``sigma`` along the
    direction ``angle_degrees`` (from horizontal, counter-clockwise), through the centre.

    Points of the line are spread onto the grid bilinearly, so any angle works; at 0 and 90
    degrees the kernel is the official horizontal/vertical Gaussian line exactly.
    """
    radius = size // 2
    offsets = torch.arange(-radius, radius + 1, dtype=sigma.dtype, device=sigma.device)  # (U,)
    weights = torch.exp(-(offsets**2) / (2 * sigma.view(-1, 1) ** 2))  # (B, U)
    weights = weights / weights.sum(dim=1, keepdim=True)
    angle = torch.deg2rad(angle_degrees).view(-1, 1)
    # Image rows grow downwards, so a positive angle moves up: minus the sine.
    dy, dx = -offsets * torch.sin(angle), offsets * torch.cos(angle)  # (B, U)
    grid = offsets.view(1, 1, -1)

    def tent(position: Tensor) -> Tensor:  # (B, U) -> (B, U, size) bilinear weights
        return (1 - (position.unsqueeze(-1) - grid).abs()).clamp_min(0)

    return torch.einsum("bu,bui,buj->bij", weights, tent(dy), tent(dx))


class Snow:
    """ImageNet-C-style snow, denser and more streaked as ``t`` grows."""

    name: ClassVar[str] = SNOW.name
    description: ClassVar[str] = SNOW.description
    Params: ClassVar[type[BaseModel]] = SnowParams

    def __init__(self, params: SnowParams | None = None) -> None:
        self.params = params or SnowParams()
        self.steps = self.params.steps
        #: What sample_params draws (plugin API 4): layer, angle.
        self.random_params: tuple[str, ...] = ("layer", "angle")
        p = self.params
        self.thresholds = schedule(p.threshold_start, p.threshold_end, p.steps)
        self.blur_sigmas = schedule(p.blur_sigma_start, p.blur_sigma_end, p.steps)
        self.brightness = schedule(p.brightness_start, p.brightness_end, p.steps)

    def sample_params(
        self, x0: Tensor, generator: torch.Generator | None = None
    ) -> DegradationParams:
        """Draw per sample a zoomed noise layer ``(B, 1, H, W)`` and a streak angle ``(B,)``."""
        check_images(x0)
        batch, height, width = x0.shape[0], x0.shape[-2], x0.shape[-1]
        p = self.params
        device = generator.device if generator is not None else torch.device("cpu")
        # ImageNet-C zooms the centre 1/zoom of a full-size layer: drawing at that size is the same.
        small = (max(1, math.ceil(height / p.zoom)), max(1, math.ceil(width / p.zoom)))
        noise = torch.randn(batch, 1, *small, generator=generator, device=device)
        noise = p.noise_mean + p.noise_std * noise
        layer = F.interpolate(noise, size=(height, width), mode="bilinear", align_corners=True)
        angle = torch.rand(batch, generator=generator, device=device)
        angle = p.angle_min + (p.angle_max - p.angle_min) * angle
        return {
            "layer": layer.to(device=x0.device, dtype=x0.dtype),
            "angle": angle.to(device=x0.device, dtype=x0.dtype),
        }

    def degrade(self, x0: Tensor, t: Tensor, params: DegradationParams | None = None) -> Tensor:
        check_images(x0)
        t = check_levels(t, x0, self.steps)
        if not params or "layer" not in params or "angle" not in params:
            raise ValueError(
                "snow needs the snow layers drawn by sample_params(x0, generator); pass them as "
                "params"
            )
        batch, channels, height, width = x0.shape
        if channels not in (1, 3):
            raise ValueError(f"snow works on 1- or 3-channel images, got {channels} channels")
        layer = params["layer"].to(device=x0.device, dtype=x0.dtype)
        angle = params["angle"].to(device=x0.device, dtype=x0.dtype)
        if layer.shape != (batch, 1, height, width):
            raise ValueError(
                f"params['layer'] must have shape {(batch, 1, height, width)}, got "
                f"{tuple(layer.shape)}; draw it with sample_params on the same images"
            )
        if batch == 0:
            return x0.clone()
        level = t.view(-1, 1, 1, 1)

        def at(table: Tensor) -> Tensor:  # per-sample schedule value, (B, 1, 1, 1)
            return table.to(device=x0.device, dtype=x0.dtype)[level]

        snow = torch.where(layer < at(self.thresholds), torch.zeros_like(layer), layer)
        snow = snow.clamp(0, 1)
        size = self.params.blur_size
        kernels = motion_kernels(size, at(self.blur_sigmas).view(-1), angle)
        # One grouped convolution: sample b is blurred with its own kernel b.
        snow = F.conv2d(
            snow.view(1, batch, height, width),
            kernels.unsqueeze(1),
            padding=size // 2,
            groups=batch,
        ).view(batch, 1, height, width)
        grey = x0 if channels == 1 else kornia.color.rgb_to_grayscale(x0)
        brightened = torch.maximum(x0, grey * 1.5 + 0.5)
        share = at(self.brightness)
        scaled = share * x0 + (1 - share) * brightened
        snowy = (scaled + snow + snow.flip(-2, -1)).clamp(0, 1)
        return torch.where(level == 0, x0, snowy)
