"""The ``unet`` restorer: a compact time-conditioned U-Net.

Sinusoidal time embedding, residual blocks with GroupNorm, strided-conv downsampling,
nearest-neighbour upsampling, attention at chosen levels. Two presets:

* ``small`` (default): packs 2x2 pixels into channels (pixel-unshuffle) so the network runs at half
  resolution, width 32, multipliers (1, 2, 2), attention only at the second level and the middle.
  On a CPU the cost at full resolution decides quality per minute; this preset learns MNIST
  deblurring in minutes.
* ``paper``: shaped like the paper's MNIST network: full resolution, width 64, multipliers
  (1, 2, 4, 8), two residual blocks and linear attention at every level.

With ``residual = true`` the network predicts a correction added to its input. With
``standardize_input = true`` it sees each x_t at unit scale (minus its mean, over its standard
deviation), conditioned on both, so bf16 autocast can run all but its stem and output layer.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import Tensor, nn

from coldkit import BuildContext
from coldkit_plugins.entries.unet import UNetParams, UNET


#: The smallest standard deviation a standardised input is divided by (a flat x_t stays finite).
STD_FLOOR = 1e-4


def sinusoidal_embedding(t: Tensor, dim: int) -> Tensor:
    """Transformer-style sinusoidal embedding of (integer) levels ``t``, shape ``(B, dim)``."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResidualBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, time_dim: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, channels_in)
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.time = nn.Linear(time_dim, 2 * channels_out)
        self.norm2 = nn.GroupNorm(groups, channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1)
        self.skip = (
            nn.Conv2d(channels_in, channels_out, 1) if channels_in != channels_out else nn.Identity()
        )

    def forward(self, x: Tensor, time: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.time(time)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return h + self.skip(x)


class Attention(nn.Module):
    """Multi-head self-attention over pixels; linear attention scales to large maps."""

    def __init__(self, channels: int, groups: int, linear: bool, heads: int = 4) -> None:
        super().__init__()
        self.heads, self.linear = heads, linear
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=False)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(batch, 3, self.heads, -1, height * width).unbind(1)
        if self.linear:
            q, k = q.softmax(dim=-2), k.softmax(dim=-1)
            context = torch.einsum("bhdn,bhen->bhde", k, v)
            h = torch.einsum("bhde,bhdn->bhen", context, q)
        else:
            h = F.scaled_dot_product_attention(
                q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2)
            ).transpose(-1, -2)
        return x + self.out(h.reshape(batch, channels, height, width))


class Level(nn.Module):
    """Residual blocks, then attention if asked for."""

    def __init__(
        self, channels_in: int, channels_out: int, blocks: int, attention: bool, time_dim: int,
        params: UNetParams,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ResidualBlock(
                channels_in if i == 0 else channels_out, channels_out, time_dim, params.groups
            )
            for i in range(blocks)
        )
        self.attention = (
            Attention(channels_out, params.groups, params.linear_attention) if attention else None
        )

    def forward(self, x: Tensor, time: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x, time)
        return self.attention(x) if self.attention is not None else x


class UNet(nn.Module):
    """Time-conditioned U-Net restorer ``R(x_t, t) ≈ x0``."""

    name: ClassVar[str] = UNET.name
    description: ClassVar[str] = UNET.description
    Params: ClassVar[type[BaseModel]] = UNetParams

    def __init__(self, params: UNetParams, *, context: BuildContext) -> None:
        super().__init__()
        if context.image_size is None or context.channels is None:
            raise RuntimeError("a U-Net is built with the image size and channels known")
        self.params = params
        factor = params.pixel_unshuffle
        levels = len(params.multipliers)
        if context.image_size % (factor * 2 ** (levels - 1)):
            raise ValueError(
                f"image_size {context.image_size} must be divisible by "
                f"pixel_unshuffle * 2^(levels-1) = {factor * 2 ** (levels - 1)}"
            )
        width, time_dim = params.width, 4 * params.width
        self.time_mlp = nn.Sequential(
            nn.Linear(width, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim)
        )
        # With a standardised input the network still needs each x_t's level and contrast.
        self.input_stats = nn.Linear(2, time_dim) if params.standardize_input else None
        packed = context.channels * factor**2
        self.stem = nn.Conv2d(packed, width, 3, padding=1)
        dims = [width * m for m in params.multipliers]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        previous = width
        for index, dim in enumerate(dims):
            attention = index in params.attention_levels
            self.down.append(Level(previous, dim, params.blocks_per_level, attention, time_dim, params))
            last = index == levels - 1
            self.downsample.append(
                nn.Identity() if last else nn.Conv2d(dim, dim, 3, stride=2, padding=1)
            )
            previous = dim
        self.middle = Level(dims[-1], dims[-1], 2, True, time_dim, params)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for index in reversed(range(levels)):
            dim = dims[index]
            attention = index in params.attention_levels
            self.up.append(Level(previous + dim, dim, params.blocks_per_level, attention, time_dim, params))
            self.upsample.append(
                nn.Identity() if index == 0 else nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(dim, dims[index - 1], 3, padding=1),
                )
            )
            previous = dim if index == 0 else dims[index - 1]
        self.head = nn.Sequential(
            nn.GroupNorm(params.groups, width), nn.SiLU(), nn.Conv2d(width, packed, 3, padding=1)
        )
        if params.residual:
            # Start as the identity map: the correction is learned from zero.
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)

    def float32_layers(self) -> list[nn.Module]:
        """The layers that stay float32 under bf16/fp16 autocast
        (:func:`coldkit.runtime.acceleration.end_layers`): the input level, where the faint
        harmonics of a heavily degraded input are amplified — the stem, the first encoder level
        and its downsampling — and the output convolution. With ``standardize_input`` the faint
        harmonics reach the network at unit scale, so only the stem and the output convolution."""
        if self.params.standardize_input:
            return [self.stem, self.head[-1]]
        return [self.stem, self.down[0], self.downsample[0], self.head[-1]]

    def _network_input(self, x_t: Tensor, time: Tensor) -> tuple[Tensor, Tensor]:
        """The stem's input and the conditioning vector. Standardised in float32: a heavily
        blurred x_t is its mean plus harmonics a few per cent strong, which the mean would push
        out of bf16's 8-bit mantissa."""
        if self.input_stats is None:
            return x_t * 2 - 1, time
        x = x_t.float()
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True, correction=0).clamp_min(STD_FLOOR)
        stats = torch.cat([mean.flatten(1) * 2 - 1, std.flatten(1).log()], dim=1)
        return (x - mean) / std, time + self.input_stats(stats)

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        factor = self.params.pixel_unshuffle
        time = self.time_mlp(sinusoidal_embedding(t, self.params.width))
        h, time = self._network_input(x_t, time)
        h = F.pixel_unshuffle(h, factor) if factor > 1 else h
        h = self.stem(h)
        skips = []
        for level, downsample in zip(self.down, self.downsample):
            h = level(h, time)
            skips.append(h)
            h = downsample(h)
        h = self.middle(h, time)
        for level, upsample in zip(self.up, self.upsample):
            h = level(torch.cat([h, skips.pop()], dim=1), time)
            h = upsample(h)
        out = self.head(h)
        out = F.pixel_shuffle(out, factor) if factor > 1 else out
        return x_t + out if self.params.residual else (out + 1) / 2
