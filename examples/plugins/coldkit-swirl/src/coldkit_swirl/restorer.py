"""The ``swirl-cnn`` restorer: a small time-conditioned convolutional network.

A stem, ``depth`` residual blocks of dilated 3x3 convolutions (dilations 1, 2, 4, 8, 1, ... so the
receptive field covers the twist), each modulated by the level ``t`` (FiLM: a scale and a shift per
channel from a small MLP of ``t / T``), and a head that predicts a correction added to ``x_t``.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from pydantic import BaseModel
from torch import Tensor, nn

from coldkit import BuildContext
from coldkit_swirl.params import SWIRL_CNN, SwirlCNNParams


class SwirlCNN(nn.Module):
    """``R(x_t, t) = x_t + head(blocks(stem(x_t), t / T))``."""

    name: ClassVar[str] = SWIRL_CNN.name
    description: ClassVar[str] = SWIRL_CNN.description
    Params: ClassVar[type[BaseModel]] = SwirlCNNParams

    def __init__(self, params: SwirlCNNParams, *, context: BuildContext) -> None:
        super().__init__()
        if context.channels is None or context.steps is None:
            raise ValueError("swirl-cnn is built for a run: channels and T must be known")
        self.steps = context.steps
        width, depth = params.width, params.depth
        self.time = nn.Sequential(nn.Linear(1, width), nn.SiLU(), nn.Linear(width, 2 * width * depth))
        self.stem = nn.Conv2d(context.channels, width, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Conv2d(width, width, 3, padding=2 ** (i % 4), dilation=2 ** (i % 4))
            for i in range(depth)
        )
        self.head = nn.Conv2d(width, context.channels, 3, padding=1)

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        level = (t.to(x_t.dtype) / self.steps).view(-1, 1)
        film = self.time(level).view(len(x_t), len(self.blocks), 2, -1, 1, 1)
        h = self.stem(x_t * 2 - 1)
        for index, block in enumerate(self.blocks):
            scale, shift = film[:, index, 0], film[:, index, 1]
            h = h + block(F.silu(h)) * (1 + scale) + shift
        return x_t + self.head(F.silu(h))
