"""Training-time augmentation of the clean images x0, before they are degraded.

Augmenting x0 (not x_t) keeps every training pair exact: the restorer still learns
R(D(x0', t), t) ≈ x0' for the augmented x0', so any degradation works unchanged. It widens a
small training set (the 4,500 offline MNIST digits are seen about 57 times each in the
example's 4,000 steps) so the restorer learns digits rather than memorising these ones.

The parameters are drawn for the whole global batch from the trainer's seeded generator, as
the levels are, so runs stay reproducible and N processes train on what one process would.
Nothing is drawn when augmentation is off, so such runs draw exactly what they drew before.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from coldkit.config import AugmentSection


def augmentation_enabled(settings: AugmentSection) -> bool:
    """Whether ``settings`` changes any image."""
    return settings.shift > 0 or settings.rotate > 0 or settings.scale > 0 or settings.flip


def draw_augmentation(
    settings: AugmentSection, batch_size: int, generator: torch.Generator
) -> dict[str, Tensor]:
    """Per-image parameters for a global batch (CPU tensors of length ``batch_size``; keep
    them on the CPU: :func:`apply_augmentation` reads them there)."""

    def uniform(limit: float) -> Tensor:
        return (torch.rand(batch_size, generator=generator) * 2 - 1) * limit

    shift = settings.shift
    return {
        "dy": torch.randint(-shift, shift + 1, (batch_size,), generator=generator),
        "dx": torch.randint(-shift, shift + 1, (batch_size,), generator=generator),
        "angle": uniform(math.radians(settings.rotate)),
        "zoom": 1 + uniform(settings.scale),
        "flip": torch.rand(batch_size, generator=generator) < (0.5 if settings.flip else 0.0),
    }


def apply_augmentation(images: Tensor, params: dict[str, Tensor]) -> Tensor:
    """Augment a batch ``(B, C, H, W)`` with parameters from :func:`draw_augmentation`.

    Flips and whole-pixel circular shifts move pixels without resampling (exact). Rotation and
    zoom resample bilinearly (reflecting at the border), which softens an image slightly, so
    they run only for images whose angle or zoom is not the identity. Which images need which
    change is decided on the CPU parameters, so a GPU batch is never waited for.
    """
    device = images.device
    flip, dy, dx = params["flip"], params["dy"], params["dx"]
    angle, zoom = params["angle"], params["zoom"]
    out = images
    if bool(flip.any()):
        out = torch.where(flip.to(device).view(-1, 1, 1, 1), out.flip(-1), out)
    if bool((dy != 0).any() or (dx != 0).any()):
        out = _circular_shift(out, dy.to(device), dx.to(device))
    warped = (angle != 0) | (zoom != 1)
    if bool(warped.any()):
        index = warped.nonzero().squeeze(1).to(device)
        out = out.clone()
        out[index] = _rotate_and_zoom(
            out[index], angle[warped].to(device), zoom[warped].to(device)
        )
    return out


def _circular_shift(images: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """Roll each image by its own whole-pixel offset (wrapping around the border)."""
    batch, channels, height, width = images.shape
    rows = (torch.arange(height, device=images.device).view(1, height) - dy.view(-1, 1)) % height
    cols = (torch.arange(width, device=images.device).view(1, width) - dx.view(-1, 1)) % width
    index = (rows.view(batch, height, 1) * width + cols.view(batch, 1, width)).view(batch, 1, -1)
    flat = images.reshape(batch, channels, height * width)
    return flat.gather(2, index.expand(batch, channels, -1)).view_as(images)


def _rotate_and_zoom(images: Tensor, angle: Tensor, zoom: Tensor) -> Tensor:
    """Rotate by ``angle`` (radians) and magnify by ``zoom`` about the image centre."""
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    zero = torch.zeros_like(cos)
    theta = torch.stack([cos, -sin, zero, sin, cos, zero], dim=1).view(-1, 2, 3)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(
        images, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )


__all__ = ["apply_augmentation", "augmentation_enabled", "draw_augmentation"]
