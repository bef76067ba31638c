"""Every component's parameter model, without torch: ``plugin.py`` imports only this module, so
``coldkit list-*``, ``plugins`` and ``validate`` never import torch for coldkit-swirl."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coldkit.params import PcaMixtureParams, SplitParams


class SwirlParams(BaseModel):
    """Parameters of the ``swirl`` degradation (the ``[degradation]`` section of a config)."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(10, ge=1, description="T, the number of swirl levels")
    strength: float = Field(3.0, gt=0.0, description="twist in the middle at t = T, in radians")
    radius: float = Field(
        0.6, gt=0.0, description="falloff of the twist, as a fraction of half the image side"
    )
    jitter: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="random shift of each image's centre, as a fraction of half the side",
    )
    padding: Literal["reflection", "border", "zeros"] = Field(
        "reflection", description="what is read outside the image"
    )


class SwirlCNNParams(BaseModel):
    """Parameters of the ``swirl-cnn`` restorer (the ``[restorer]`` section of a config)."""

    model_config = ConfigDict(extra="forbid")

    width: int = Field(32, ge=4, description="channels of every block")
    depth: int = Field(4, ge=1, description="number of residual blocks")


class SwirlPriorParams(PcaMixtureParams):
    """Parameters of the ``swirl-pca`` prior: coldkit's PCA mixture keys (components, dims,
    covariance, noise, rank_tolerance), smaller defaults."""

    components: int = Field(8, ge=1, description="number of Gaussian components")
    dims: int = Field(16, ge=1, description="at most this many principal components are kept")


class StripesParams(SplitParams):
    """Parameters of the ``stripes`` dataset: coldkit's split keys (val_fraction, test_fraction,
    split_seed, limit) and our own."""

    count: int = Field(600, ge=3, description="number of images over all splits")
    size: int = Field(32, ge=4, description="side of the square images")
    channels: Literal[1, 3] = Field(3, description="1: grey, 3: colour")
    seed: int = Field(0, description="seed of the images")
