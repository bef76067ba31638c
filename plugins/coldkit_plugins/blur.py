"""Gaussian blur degradation (the paper's deblurring experiments).

``D(x0, t)`` applies the per-step Gaussian kernels of steps ``1 .. t`` one after another. With
circular padding the composition is exact in the Fourier domain: the product of the per-step
transfer functions is precomputed for every ``t``, so one FFT pair gives ``D(x0, t)`` for any mix
of ``t`` in a batch and the cost does not grow with ``t``. With reflect padding, sequential
convolutions do not compose exactly near the border; ``D(x0, t)`` is then one Gaussian with the
composed width ``sqrt(sum of sigma_s^2)``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import kornia
import torch
from pydantic import BaseModel
from torch import Tensor

from coldkit import DegradationParams
from coldkit.validation import check_images, check_levels
from coldkit_plugins.entries.blur import BlurParams, BLUR


def step_sigmas(params: BlurParams) -> Tensor:
    """The per-step sigmas ``sigma_1 .. sigma_T`` of the schedule, shape ``(T,)``."""
    steps = params.steps
    fraction = torch.linspace(0.0, 1.0, steps, dtype=torch.float64) if steps > 1 else torch.zeros(1)
    start, end = params.sigma, params.sigma_end or params.sigma
    if params.schedule == "constant":
        return torch.full((steps,), start, dtype=torch.float64)
    if params.schedule == "linear":
        return start + (end - start) * fraction.double()
    return start * (end / start) ** fraction.double()


def gaussian_kernel(kernel_size: int, sigma: float) -> Tensor:
    """The normalised 2-D Gaussian kernel kornia uses, shape ``(k, k)``, float64."""
    kernel = kornia.filters.get_gaussian_kernel2d(
        (kernel_size, kernel_size), (sigma, sigma), dtype=torch.float64
    )
    return kernel[0]


def circular_transfer_function(kernel: Tensor, height: int, width: int) -> Tensor:
    """Real FFT of ``kernel`` wrapped onto an ``height x width`` torus, centred at the origin.

    Multiplying an image's ``rfft2`` by it equals a circular-padded convolution with ``kernel``.
    """
    size = kernel.shape[-1]
    centre = size // 2
    offsets = torch.arange(size) - centre
    rows = (offsets % height).view(-1, 1).expand(size, size)
    cols = (offsets % width).view(1, -1).expand(size, size)
    wrapped = torch.zeros(height * width, dtype=kernel.dtype)
    wrapped.index_add_(0, (rows * width + cols).reshape(-1), kernel.reshape(-1))
    return torch.fft.rfft2(wrapped.view(height, width))


class Blur:
    """Gaussian blur applied ``t`` times (composed, never looped)."""

    name: ClassVar[str] = BLUR.name
    description: ClassVar[str] = BLUR.description
    Params: ClassVar[type[BaseModel]] = BlurParams

    def __init__(self, params: BlurParams | None = None) -> None:
        self.params = params or BlurParams()
        self.steps = self.params.steps
        #: What sample_params draws (plugin API 4): nothing.
        self.random_params: tuple[str, ...] = ()
        self.sigmas = step_sigmas(self.params)
        self._transfer_cache: dict[tuple[int, int, torch.device], Tensor] = {}

    def sample_params(
        self, x0: Tensor, generator: torch.Generator | None = None
    ) -> DegradationParams:
        """Blur is deterministic: nothing to draw."""
        return {}

    def degrade(self, x0: Tensor, t: Tensor, params: DegradationParams | None = None) -> Tensor:
        check_images(x0)
        t = check_levels(t, x0, self.steps)
        if self.params.padding == "circular":
            return self._degrade_circular(x0, t)
        return self._degrade_reflect(x0, t)

    def cumulative_transfer(self, height: int, width: int, device: torch.device) -> Tensor:
        """Transfer functions of ``D(., t)`` for ``t = 0 .. T``, shape ``(T+1, H, W//2+1)``."""
        key = (height, width, device)
        if key not in self._transfer_cache:
            per_step = torch.stack(
                [
                    circular_transfer_function(
                        gaussian_kernel(self.params.kernel_size, float(sigma)), height, width
                    )
                    for sigma in self.sigmas
                ]
            )
            identity = torch.ones_like(per_step[:1])
            cumulative = torch.cat([identity, torch.cumprod(per_step, dim=0)])
            # Frequencies blurred below 1e-12 become exactly 0. Multiplied with an image's small
            # Fourier coefficients they give denormal float32 numbers, which x86 CPUs process up
            # to 4x slower; a factor below 1e-12 changes no pixel by more than about 1e-12.
            cumulative[cumulative.abs() < 1e-12] = 0
            self._transfer_cache[key] = cumulative.to(device=device, dtype=torch.complex64)
        return self._transfer_cache[key]

    def _degrade_circular(self, x0: Tensor, t: Tensor) -> Tensor:
        height, width = x0.shape[-2:]
        transfer = self.cumulative_transfer(height, width, x0.device)[t]  # (B, H, W//2+1)
        spectrum = torch.fft.rfft2(x0.float()) * transfer[:, None]
        blurred = torch.fft.irfft2(spectrum, s=(height, width)).to(x0.dtype)
        # Exactly x0 where t == 0, whatever the rounding of the FFT pair.
        return torch.where((t == 0).view(-1, 1, 1, 1), x0, blurred)

    def _degrade_reflect(self, x0: Tensor, t: Tensor) -> Tensor:
        height, width = x0.shape[-2:]
        variance = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(self.sigmas**2, 0)])
        sigma = variance.sqrt().to(x0.device)[t].clamp_min(1e-3)  # (B,)
        largest = float(sigma.max())
        # One kernel size per batch (kornia's rule), wide enough for the widest sigma in it.
        size = min(2 * math.ceil(3 * largest) + 1, 2 * (min(height, width) // 2) - 1)
        size = max(size, 3)
        sigmas = torch.stack([sigma, sigma], dim=1).to(x0.dtype)
        blurred = kornia.filters.gaussian_blur2d(
            x0, (size, size), sigmas, border_type="reflect", separable=True
        )
        return torch.where((t == 0).view(-1, 1, 1, 1), x0, blurred)
