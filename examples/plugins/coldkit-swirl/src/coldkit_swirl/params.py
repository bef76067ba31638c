"""Every component's parameter model and listing, without torch: ``plugin.py`` imports only this
module, so ``coldkit list-*``, ``plugins`` and ``validate`` never import torch for coldkit-swirl.

Each component's name, description, parameter model and import path are stated once, in its
:class:`coldkit.Listing` at the end: ``plugin.py`` registers with it and each class reads its
``name``, ``description`` and ``Params`` from it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coldkit import Listing
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


SWIRL = Listing(
    name="swirl",
    description="twist about the centre, the angle growing with t (grid_sample)",
    target="coldkit_swirl.degradation:Swirl",
    params=SwirlParams,
)
SWIRL_CNN = Listing(
    name="swirl-cnn",
    description="small time-conditioned conv net (dilated residual blocks, FiLM)",
    target="coldkit_swirl.restorer:SwirlCNN",
    params=SwirlCNNParams,
)
#: A sampler takes no parameters: its name and description only.
STRIDE_2 = Listing(
    name="stride-2",
    description="Algorithm 2 two levels at a time: x_{s-2} = x_s - D(x̂0, s) + D(x̂0, s-2)",
    target="coldkit_swirl.sampler:stride_2",
)
SWIRL_PCA = Listing(
    name="swirl-pca",
    description="PCA mixture over swirled images, with the swirl's own centre draw",
    target="coldkit_swirl.prior:SwirlPrior",
    params=SwirlPriorParams,
)
STRIPES = Listing(
    name="stripes",
    description="seeded coloured stripes at random angles (no download)",
    target="coldkit_swirl.dataset:Stripes",
    params=StripesParams,
)
