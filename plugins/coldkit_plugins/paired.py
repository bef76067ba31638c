"""The ``paired`` degradation: the straight path from a clean image to its degraded twin (InDI).

``D(x0, t; y) = (1 - w_t) x0 + w_t y + sigma_t n``, with ``w_t`` rising from 0 at ``t = 0`` to 1
at ``t = T`` (``t/T``, InDI's linear path, or ``sin^2(pi t / 2T)``), ``y`` the degraded twin of
``x0`` that the data serves (``data_params = ("y",)``: a ``paired-folder`` dataset, or an
``ImageSet`` with ``params={"y": ...}``), and optional noise ``sigma_t = 2 bridge_noise
sqrt(w_t (1 - w_t))`` on a field ``n`` drawn by ``sample_params``: none at either end, so
``D(x0, T) = y`` exactly and a real degraded file *is* ``x_T``.

A file to restore is its own ``y`` (:meth:`Paired.params_of_degraded`), so ``coldkit restore``
needs no level. There is no prior over degraded images: generation is not offered.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import BaseModel
from torch import Tensor

from coldkit import DegradationParams
from coldkit.errors import ParamsError
from coldkit.validation import check_images, check_levels
from coldkit_plugins.entries.paired import PAIRED, PairedParams


def path_weights(schedule: str, steps: int) -> Tensor:
    """``w_0 .. w_T`` (float64), the weight of y at each level: 0 at t = 0, 1 at t = T."""
    fraction = torch.arange(steps + 1, dtype=torch.float64) / steps
    if schedule == "cosine":
        return torch.sin(fraction * math.pi / 2) ** 2
    return fraction


class Paired:
    """D(x0, t; y) = (1 - w_t) x0 + w_t y (+ noise zero at both ends), y served by the data."""

    name: ClassVar[str] = PAIRED.name
    description: ClassVar[str] = PAIRED.description
    Params: ClassVar[type[BaseModel]] = PairedParams
    #: What the data serves for each image (ImageSet.params): its degraded twin.
    data_params: ClassVar[tuple[str, ...]] = ("y",)

    def __init__(self, params: PairedParams | None = None) -> None:
        self.params = params or PairedParams()
        self.steps = self.params.steps
        self.weight = path_weights(self.params.schedule, self.steps)
        self.sigma = 2.0 * self.params.bridge_noise * (self.weight * (1.0 - self.weight)).sqrt()
        #: What sample_params draws (plugin API 4): the path's noise field, if any.
        self.random_params: tuple[str, ...] = ("noise",) if self.params.bridge_noise > 0 else ()

    def sample_params(
        self, x0: Tensor, generator: torch.Generator | None = None
    ) -> DegradationParams:
        """The path's noise field (when ``bridge_noise > 0``); y comes from the data, not a draw."""
        check_images(x0)
        if not self.random_params:
            return {}
        noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32)
        return {"noise": noise.to(device=x0.device, dtype=x0.dtype)}

    def params_of_degraded(self, x_T: Tensor) -> DegradationParams:
        """Images that arrive degraded are x_T = y themselves; the noise field (if any) is drawn
        from a fixed seed, so restoring a file twice gives the same result."""
        params = self.sample_params(x_T, torch.Generator().manual_seed(0))
        return {**params, "y": x_T}

    def degrade(self, x0: Tensor, t: Tensor, params: DegradationParams | None = None) -> Tensor:
        check_images(x0)
        t = check_levels(t, x0, self.steps)
        y = (params or {}).get("y")
        if y is None:
            raise ParamsError(
                "degradation 'paired' needs the degraded twin y of each image, and y comes from "
                "the data (a paired-folder dataset; docs/paired.md). It has no prior over "
                "degraded images, so generation is not offered for it: restore degraded files "
                "with `coldkit restore RUN FILE...` instead."
            )
        y = y.to(device=x0.device, dtype=x0.dtype)
        if y.shape != x0.shape:
            raise ValueError(f"params['y'] has shape {tuple(y.shape)}, x0 {tuple(x0.shape)}")
        weight = self.weight.to(device=x0.device, dtype=x0.dtype)[t].view(-1, 1, 1, 1)
        out = x0 + weight * (y - x0)
        if self.random_params:
            if "noise" not in params:  # type: ignore[operator]
                raise ValueError("paired with bridge_noise > 0 needs params['noise'] (sample_params)")
            sigma = self.sigma.to(device=x0.device, dtype=x0.dtype)[t].view(-1, 1, 1, 1)
            out = out + sigma * params["noise"].to(device=x0.device, dtype=x0.dtype)  # type: ignore[index]
        return torch.where((t == 0).view(-1, 1, 1, 1), x0, out)
