"""Gaussian inpainting masks that grow with ``t`` (the paper's inpainting experiments).

Step ``s`` multiplies the image by ``1 - G_s / max G_s``, where ``G_s`` is a Gaussian bump of width
``sigma_s`` centred at the mask centre; ``D(x0, t)`` applies steps ``1 .. t``::

    m_t = prod_{s <= t} (1 - exp(-r^2 / (2 sigma_s^2)))        r: distance to the mask centre

(with ``r^2`` counted from the nearest pixel when a fixed centre falls between pixels)
    D(x0, t) = x0 * m_t + fill * (1 - m_t)

The cumulative products ``m_0 .. m_T`` are precomputed once per image size as a table, so
``D(x0, t)`` is one lookup and one blend for any mix of ``t`` in a batch: the cost does not grow
with ``t``. With random centres the table is drawn on a ``(2H-1) x (2W-1)`` grid of offsets and each
sample reads the ``H x W`` window around its own centre (as the official code crops its masks).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel
from torch import Tensor

from coldkit import DegradationParams
from coldkit.validation import check_images, check_levels
from coldkit_plugins.entries.mask import MaskParams, MASK


def step_sigmas(params: MaskParams) -> Tensor:
    """Widths ``sigma_1 .. sigma_T`` of the per-step bumps, shape ``(T,)``, float64."""
    steps = torch.arange(params.steps, dtype=torch.float64)
    return params.sigma_start + params.sigma_increment * steps


def cumulative_masks(squared_distance: Tensor, sigmas: Tensor) -> Tensor:
    """``m_0 .. m_T`` for a grid of squared distances: shape ``(T+1, *squared_distance.shape)``.

    ``m_0`` is 1 everywhere; ``m_t`` multiplies the per-step masks of steps ``1 .. t``. Each bump
    is divided by its maximum over the grid (as ``1 - G / max G``), so the pixel(s) nearest the
    centre are fully masked from step 1 even when the centre falls between pixels.
    """
    variance = (2 * sigmas**2).view(-1, *([1] * squared_distance.ndim))
    relative = (squared_distance - squared_distance.min()).double().unsqueeze(0)
    per_step = 1.0 - torch.exp(-relative / variance)
    identity = torch.ones_like(per_step[:1])
    return torch.cat([identity, torch.cumprod(per_step, dim=0)])


class Mask:
    """Gaussian masks multiplied over ``t`` steps, read from a precomputed table."""

    name: ClassVar[str] = MASK.name
    description: ClassVar[str] = MASK.description
    Params: ClassVar[type[BaseModel]] = MaskParams

    def __init__(self, params: MaskParams | None = None) -> None:
        self.params = params or MaskParams()
        self.steps = self.params.steps
        #: What sample_params draws (plugin API 4): a centre per image, unless it is fixed.
        self.random_params: tuple[str, ...] = () if self.params.centre == "fixed" else ("centre",)
        self.sigmas = step_sigmas(self.params)
        self._table_cache: dict[tuple[int, int, str, torch.device, torch.dtype], Tensor] = {}

    def sample_params(
        self, x0: Tensor, generator: torch.Generator | None = None
    ) -> DegradationParams:
        """Draw one integer mask centre ``(row, col)`` per sample (nothing for a fixed centre)."""
        check_images(x0)
        if self.params.centre == "fixed":
            return {}
        batch, height, width = x0.shape[0], x0.shape[-2], x0.shape[-1]
        device = generator.device if generator is not None else torch.device("cpu")
        rows = torch.randint(0, height, (batch,), generator=generator, device=device)
        cols = torch.randint(0, width, (batch,), generator=generator, device=device)
        return {"centre": torch.stack([rows, cols], dim=1).to(x0.device)}

    def degrade(self, x0: Tensor, t: Tensor, params: DegradationParams | None = None) -> Tensor:
        check_images(x0)
        t = check_levels(t, x0, self.steps)
        mask = self.masks(x0, t, params).unsqueeze(1)  # (B, 1, H, W)
        masked = x0 * mask + self.params.fill * (1 - mask)
        # Exactly x0 where t == 0.
        return torch.where((t == 0).view(-1, 1, 1, 1), x0, masked)

    def masks(self, x0: Tensor, t: Tensor, params: DegradationParams | None = None) -> Tensor:
        """The cumulative masks ``m_t`` of a batch, shape ``(B, H, W)``: 1 keeps, 0 fills."""
        height, width = x0.shape[-2:]
        if self.params.centre == "fixed":
            return self.table(height, width, "fixed", x0.device, x0.dtype)[t]
        if not params or "centre" not in params:
            raise ValueError(
                "mask with centre = 'random' needs the centres drawn by sample_params(x0, "
                "generator); pass them as params (or set centre = 'fixed')"
            )
        centre = params["centre"].to(device=x0.device, dtype=torch.long)
        if centre.shape != (x0.shape[0], 2):
            raise ValueError(
                f"params['centre'] must have shape ({x0.shape[0]}, 2), got {tuple(centre.shape)}"
            )
        table = self.table(height, width, "random", x0.device, x0.dtype)
        # The table's origin (offset 0) sits at (H-1, W-1): each sample reads its own window.
        rows = (height - 1 - centre[:, :1]) + torch.arange(height, device=x0.device)  # (B, H)
        cols = (width - 1 - centre[:, 1:]) + torch.arange(width, device=x0.device)  # (B, W)
        return table[t.view(-1, 1, 1), rows.unsqueeze(2), cols.unsqueeze(1)]

    def table(
        self, height: int, width: int, kind: str, device: torch.device, dtype: torch.dtype
    ) -> Tensor:
        """Masks ``m_0 .. m_T``: ``(T+1, H, W)`` for a fixed centre, ``(T+1, 2H-1, 2W-1)`` of
        offsets from the centre for random centres. Computed once per size, device and dtype."""
        key = (height, width, kind, device, dtype)
        if key not in self._table_cache:
            if kind == "fixed":
                ys = torch.arange(height, dtype=torch.float64) - (height - 1) / 2
                xs = torch.arange(width, dtype=torch.float64) - (width - 1) / 2
            else:
                ys = torch.arange(-(height - 1), height, dtype=torch.float64)
                xs = torch.arange(-(width - 1), width, dtype=torch.float64)
            squared_distance = ys.view(-1, 1) ** 2 + xs.view(1, -1) ** 2
            table = cumulative_masks(squared_distance, self.sigmas)
            self._table_cache[key] = table.to(device=device, dtype=dtype)
        return self._table_cache[key]
