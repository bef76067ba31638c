"""coldkit: cold diffusion with pluggable degradations, restorers, samplers, datasets and priors."""

import os

# Before anything imports torch: OpenMP threads that wait passively (sleep) instead of spinning let
# several runs share a machine (two spinning runs on 2 cores each took 6-11x the time of one;
# docs/performance.md, which also measures the cost to a run alone). A value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from coldkit.errors import ColdkitError
from coldkit.hookspecs import PLUGIN_API_VERSION, hookimpl
from coldkit.protocols import (
    BuildContext,
    DatasetAccess,
    Dataset,
    Degradation,
    DegradationParams,
    ImageSet,
    NoParams,
    Prior,
    PriorWithParams,
    Restorer,
    RestorerContext,
    Sampler,
)

__version__ = "0.1.0"


def __getattr__(name: str):  # noqa: ANN202 - PEP 562 module attribute
    """``coldkit.api`` (the Python API, docs/python.md) is imported on first use: importing
    ``coldkit`` stays cheap."""
    if name == "api":
        import importlib

        return importlib.import_module("coldkit.api")
    raise AttributeError(f"module 'coldkit' has no attribute {name!r}")


__all__ = [
    "BuildContext",
    "ColdkitError",
    "Dataset",
    "DatasetAccess",
    "Degradation",
    "DegradationParams",
    "ImageSet",
    "NoParams",
    "PLUGIN_API_VERSION",
    "Prior",
    "PriorWithParams",
    "Restorer",
    "RestorerContext",
    "Sampler",
    "hookimpl",
]
