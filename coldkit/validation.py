"""Input checks shared by plugins: clear messages instead of shape errors deep in torch."""

from __future__ import annotations

import torch
from torch import Tensor


def check_images(x: Tensor) -> None:
    """Require a floating-point batch of images ``(B, C, H, W)``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a torch.Tensor of images, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"expected floating-point images in [0, 1], got dtype {x.dtype}")


def check_levels(t: Tensor | int, x: Tensor, steps: int) -> Tensor:
    """Return ``t`` as a ``(B,)`` long tensor on ``x``'s device, checking ``0 <= t <= steps``.

    A Python int is broadcast to the whole batch.
    """
    batch = x.shape[0]
    if isinstance(t, int):
        t = torch.full((batch,), t, dtype=torch.long, device=x.device)
    if t.ndim != 1 or t.shape[0] != batch:
        raise ValueError(f"expected t of shape ({batch},), one level per sample, got {tuple(t.shape)}")
    if t.is_floating_point():
        raise TypeError(f"expected integer levels t, got dtype {t.dtype}")
    t = t.to(device=x.device, dtype=torch.long)
    if batch and (int(t.min()) < 0 or int(t.max()) > steps):
        raise ValueError(f"levels t must lie in 0..{steps}, got {int(t.min())}..{int(t.max())}")
    return t
