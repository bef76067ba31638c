"""coldkit: cold diffusion with pluggable degradations, restorers, samplers and datasets."""

from coldkit.errors import ColdkitError
from coldkit.hookspecs import hookimpl
from coldkit.protocols import (
    Dataset,
    Degradation,
    DegradationParams,
    ImageSet,
    NoParams,
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
    "Restorer",
    "RestorerContext",
    "Sampler",
    "hookimpl",
]
