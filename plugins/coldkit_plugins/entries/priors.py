"""The ``priors`` plugin's entry point: its parameters and registration, without torch.

The components live in ``coldkit_plugins.priors``, imported the first time a run builds one.
"""

from __future__ import annotations

from pydantic import Field

from coldkit import NoParams, hookimpl
from coldkit.params import MixtureParams, PcaMixtureParams
from coldkit import Listing

#: Components registered by path (plugin API 3).
COLDKIT_PLUGIN_API = 3


class GmmParams(MixtureParams):
    noise: float = Field(
        0.002, ge=0.0, description="std of Gaussian noise on x_T (the paper's symmetry breaker)"
    )


class PcaGmmParams(PcaMixtureParams):
    """Parameters of ``pca-gmm``: those of :class:`coldkit.blocks.PcaMixturePrior`."""


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
