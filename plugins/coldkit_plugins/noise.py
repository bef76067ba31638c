"""Gaussian noise with a DDPM variance schedule: the "hot" diffusion baseline::

    D(x0, t) = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * eps,   abar_t = prod_{s <= t} (1 - beta_s)

``eps`` (standard normal, one per pixel) is drawn once by ``sample_params`` and reused, so
``D`` is deterministic given the draw, as the cold samplers need. ``abar_0 = 1``.

Schedules: ``linear`` betas from ``beta_start`` to ``beta_end`` multiplied by ``1000 / T`` (as in
improved DDPM, so any T reaches the noise level of DDPM's 1000 steps), or ``cosine`` (Nichol &
Dhariwal 2021, offset ``s = 0.008``, betas capped at 0.999). Values are not clipped to [0, 1].
The formula applies to the images as given, in [0, 1]; ``symmetric = true`` applies it in
[-1, 1] as DDPM does (``x0 -> 2 x0 - 1``, then back), where the same noise is half as strong
relative to the image.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import BaseModel
from torch import Tensor

from coldkit import DegradationParams
from coldkit.validation import check_images, check_levels
from coldkit_plugins.entries.noise import NoiseParams, NOISE


def alphas_cumprod(params: NoiseParams) -> Tensor:
    """``abar_0 .. abar_T``, shape ``(T+1,)``, float64, with ``abar_0 = 1``."""
    steps = params.steps
    if params.schedule == "linear":
        scale = 1000 / steps
        betas = torch.linspace(
            params.beta_start * scale, params.beta_end * scale, steps, dtype=torch.float64
        ).clamp(max=0.999)
    else:
        s = 0.008
        x = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((x + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, dim=0)])


class Noise:
    """Additive Gaussian noise, ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``."""

    name: ClassVar[str] = NOISE.name
    description: ClassVar[str] = NOISE.description
    Params: ClassVar[type[BaseModel]] = NoiseParams

    def __init__(self, params: NoiseParams | None = None) -> None:
        self.params = params or NoiseParams()
        self.steps = self.params.steps
        #: What sample_params draws (plugin API 4): noise.
        self.random_params: tuple[str, ...] = ("noise",)
        self.alphas_cumprod = alphas_cumprod(self.params)

    def sample_params(
        self, x0: Tensor, generator: torch.Generator | None = None
    ) -> DegradationParams:
        """Draw the noise ``eps``, shaped like ``x0``."""
        check_images(x0)
        device = generator.device if generator is not None else torch.device("cpu")
        noise = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype)
        return {"noise": noise.to(x0.device)}

    def degrade(self, x0: Tensor, t: Tensor, params: DegradationParams | None = None) -> Tensor:
        check_images(x0)
        t = check_levels(t, x0, self.steps)
        if not params or "noise" not in params:
            raise ValueError(
                "noise needs eps drawn by sample_params(x0, generator); pass it as params"
            )
        noise = params["noise"].to(device=x0.device, dtype=x0.dtype)
        if noise.shape != x0.shape:
            raise ValueError(
                f"params['noise'] must have the images' shape {tuple(x0.shape)}, got "
                f"{tuple(noise.shape)}"
            )
        abar = self.alphas_cumprod.to(device=x0.device, dtype=x0.dtype)[t].view(-1, 1, 1, 1)
        signal = 2 * x0 - 1 if self.params.symmetric else x0
        noisy = abar.sqrt() * signal + (1 - abar).sqrt() * noise
        if self.params.symmetric:
            noisy = (noisy + 1) / 2
        return torch.where((t == 0).view(-1, 1, 1, 1), x0, noisy)
