"""The ``priors`` plugin's entry point: its parameters and registration, without torch.

The components live in ``coldkit_plugins.priors``, imported the first time a run builds one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coldkit import NoParams, hookimpl
from coldkit_plugins.entries import Listing

#: Components registered by path (plugin API 3).
COLDKIT_PLUGIN_API = 3


class MixtureParams(BaseModel):
    """Parameters shared by the mixture priors."""

    model_config = ConfigDict(extra="forbid")

    components: int = Field(10, ge=1, description="number of Gaussian components")
    covariance: Literal["full", "diag"] = Field("full", description="covariance of each component")
    noise: float = Field(
        0.0, ge=0.0, description="std of Gaussian noise added to every pixel of a drawn x_T"
    )


class GmmParams(MixtureParams):
    noise: float = Field(
        0.002, ge=0.0, description="std of Gaussian noise on x_T (the paper's symmetry breaker)"
    )


class PcaGmmParams(MixtureParams):
    components: int = Field(20, ge=1, description="number of Gaussian components")
    dims: int = Field(32, ge=1, description="at most this many principal components are kept")
    rank_tolerance: float = Field(
        1e-4,
        ge=0.0,
        lt=1.0,
        description="components whose singular value is below this fraction of the largest "
        "are dropped: rounding noise, not structure",
    )


GMM = Listing(
    "gmm",
    "paper §5: Gaussian mixture over the channel means of D(x0, T)",
    "coldkit_plugins.priors:Gmm",
    GmmParams,
)
PCA_GMM = Listing(
    "pca-gmm",
    "Gaussian mixture over the leading principal components of D(x0, T)",
    "coldkit_plugins.priors:PcaGmm",
    PcaGmmParams,
)
STANDARD_NORMAL = Listing(
    "standard-normal",
    "the hot baseline: x_T = D(0, T; ε) + mean, ε standard normal (a noise degradation's noise)",
    "coldkit_plugins.normal_prior:StandardNormal",
    NoParams,
)


@hookimpl
def register_priors(register) -> None:
    GMM.register(register)
    PCA_GMM.register(register)
    STANDARD_NORMAL.register(register)
