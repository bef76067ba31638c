"""coldkit: cold diffusion with pluggable degradations, restorers, samplers, datasets and priors."""

from coldkit.errors import ColdkitError
from coldkit.hookspecs import PLUGIN_API_VERSION, hookimpl
from coldkit.protocols import (
    Dataset,
    Degradation,
    DegradationParams,
    ImageSet,
    NoParams,
    Prior,
    Restorer,
    RestorerContext,
    Sampler,
)

__version__ = "0.1.0"

__all__ = [
    "ColdkitError",
    "Dataset",
    "Degradation",
    "DegradationParams",
    "ImageSet",
    "NoParams",
    "PLUGIN_API_VERSION",
    "Prior",
    "Restorer",
    "RestorerContext",
    "Sampler",
    "hookimpl",
]
