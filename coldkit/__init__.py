"""coldkit: cold diffusion with pluggable degradations, restorers, samplers, datasets and priors."""

import os

# Before anything imports torch: idle OpenMP threads spin for 10,000 iterations, not libgomp's
# 300,000, before they sleep, so a second run on the same cores is not starved (two runs on 2
# cores: 3.5x the time of one alone instead of 7x) while a run alone keeps its speed (PASSIVE,
# which sleeps at once, cost a run alone 70 %). docs/performance.md has the numbers; a value the
# user set wins, and `coldkit sweep --parallel N` makes its processes PASSIVE with their share of
# the cores.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from coldkit.errors import ColdkitError
from coldkit.hookspecs import PLUGIN_API_VERSION, Listing, hookimpl
from coldkit.protocols import (
    BuildContext,
    DatasetAccess,
    Dataset,
    DatasetRef,
    Degradation,
    DegradationParams,
    ImageSet,
    NoParams,
    Prior,
    PriorWithParams,
    Restorer,
    Sampler,
    StepCallback,
)

__version__ = "0.1.0"


def __getattr__(name: str):  # noqa: ANN202 - PEP 562 module attribute
    """``coldkit.api`` (the Python API, docs/python.md) is imported on first use: importing
    ``coldkit`` stays cheap. ``coldkit.RestorerContext`` is the deprecated shim of
    :mod:`coldkit.plugins.compat` (plugin API 1 restorers), kept for one release."""
    import importlib

    if name == "api":
        return importlib.import_module("coldkit.api")
    if name == "RestorerContext":  # deprecated: API 1 restorers' context, kept for one release
        return importlib.import_module("coldkit.plugins.compat").RestorerContext
    raise AttributeError(f"module 'coldkit' has no attribute {name!r}")


__all__ = [
    "BuildContext",
    "ColdkitError",
    "Dataset",
    "DatasetAccess",
    "DatasetRef",
    "Degradation",
    "DegradationParams",
    "ImageSet",
    "Listing",
    "NoParams",
    "PLUGIN_API_VERSION",
    "Prior",
    "PriorWithParams",
    "Restorer",
    "RestorerContext",
    "Sampler",
    "StepCallback",
    "hookimpl",
]
