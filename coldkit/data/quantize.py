"""What image files hold: ``D(x0, t)`` rounded to 8-bit grey levels, as PNG and JPEG store it.

A model trained on float ``D(x0, t)`` reads detail that a file no longer has: at high blur levels
the digit lives in faint low-frequency modes, fainter than one grey level. Training on quantised
inputs (``train.quantize_inputs``) teaches the model what files contain; evaluating on them
(``evaluate.quantize_inputs``) scores Table 1 as a user restoring files would see it.
"""

from __future__ import annotations

import torch
from torch import Tensor


def quantize(x: Tensor, bits: int = 8) -> Tensor:
    """``x`` clamped to [0, 1] and rounded to the nearest of ``2**bits`` levels, as saving a file
    does (the official code's ``save_image`` rounds the same way, but for exact ties)."""
    top = float(2**bits - 1)
    return x.clamp(0.0, 1.0).mul(top).round().div(top)


def quantize_straight_through(x: Tensor, bits: int = 8) -> Tensor:
    """:func:`quantize` in the forward pass, the identity in the backward pass (the
    straight-through estimator), so gradients still flow through the quantised input."""
    return x + (quantize(x, bits) - x).detach()


def draw_share(count: int, share: float, generator: torch.Generator) -> Tensor | None:
    """Which of ``count`` samples an option applies to (quantisation, level jitter): each with
    probability ``share``, drawn from the (CPU) ``generator`` so a seed reproduces the choice;
    None (nothing drawn) when ``share`` is 1."""
    if share >= 1.0:
        return None
    return torch.rand(count, generator=generator) < share


def quantize_samples(x: Tensor, bits: int, chosen: Tensor | None = None) -> Tensor:
    """Quantise (straight-through) the samples of ``x`` ``(B, ...)`` marked in ``chosen``
    ``(B,)`` (all of them when None); the rest stay float."""
    quantised = quantize_straight_through(x, bits)
    if chosen is None:
        return quantised
    chosen = chosen.to(x.device).view(-1, *([1] * (x.ndim - 1)))
    return torch.where(chosen, quantised, x)


def holds_levels(x: Tensor, bits: int = 8) -> bool:
    """Whether every value of ``x`` (in [0, 1]) is one of the ``2**bits`` levels a file holds."""
    top = float(2**bits - 1)
    scaled = x.double() * top
    return bool(((scaled - scaled.round()).abs() < 1e-3).all())


__all__ = [
    "draw_share",
    "holds_levels",
    "quantize",
    "quantize_samples",
    "quantize_straight_through",
]
