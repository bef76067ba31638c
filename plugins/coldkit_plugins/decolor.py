"""Colour removed linearly in ``t`` (the paper's colourisation experiments)::

    D(x0, t) = (1 - t/T) * x0 + (t/T) * grey(x0)

``grey`` is the luma (ITU-R BT.601 weights, ``kornia.color.rgb_to_grayscale``) or the channel mean
(the official code's choice), repeated on every channel. One blend, whatever ``t``.

Grey-level (1-channel) images have no colour to remove: for them ``D(x0, t) = x0`` at every ``t``,
so train and preview ``decolor`` on colour images.
"""

from __future__ import annotations

from typing import ClassVar

import kornia
import torch
from pydantic import BaseModel
from torch import Tensor

from coldkit import DegradationParams
from coldkit.validation import check_images, check_levels
from coldkit_plugins.entries.decolor import DecolorParams, DECOLOR


class Decolor:
    """Linear blend from the image to its grey version (identity on 1-channel images)."""

    name: ClassVar[str] = DECOLOR.name
    description: ClassVar[str] = DECOLOR.description
    Params: ClassVar[type[BaseModel]] = DecolorParams

    def __init__(self, params: DecolorParams | None = None) -> None:
        self.params = params or DecolorParams()
        self.steps = self.params.steps
        #: What sample_params draws (plugin API 4): nothing.
        self.random_params: tuple[str, ...] = ()

    def sample_params(
        self, x0: Tensor, generator: torch.Generator | None = None
    ) -> DegradationParams:
        """Decolouring is deterministic: nothing to draw."""
        return {}

    def grey(self, x0: Tensor) -> Tensor:
        """The grey version of ``x0``, one grey channel repeated ``C`` times."""
        channels = x0.shape[1]
        if self.params.grey == "mean":
            grey = x0.mean(dim=1, keepdim=True)
        elif channels == 3:
            grey = kornia.color.rgb_to_grayscale(x0)
        else:
            raise ValueError(
                f"decolor with grey = 'luma' needs 3-channel (RGB) images, got {channels} "
                "channels; use grey = 'mean'"
            )
        return grey.expand_as(x0)

    def degrade(self, x0: Tensor, t: Tensor, params: DegradationParams | None = None) -> Tensor:
        check_images(x0)
        t = check_levels(t, x0, self.steps)
        if x0.shape[1] == 1:
            return x0.clone()  # already grey: nothing to remove
        share = (t.to(x0.dtype) / self.steps).view(-1, 1, 1, 1)
        faded = (1 - share) * x0 + share * self.grey(x0)
        return torch.where(share == 0, x0, faded)
