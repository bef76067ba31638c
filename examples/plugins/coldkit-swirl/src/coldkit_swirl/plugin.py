"""The plugin module named in ``[project.entry-points.coldkit]``: one hook per kind it adds.

Every component is registered **by path** (plugin API 3) from its :class:`coldkit.Listing` in
``params.py`` (name, description, parameter model and import path, stated once there), so
listing and validating never import torch; coldkit imports the component's module the first time
a run builds it. ``COLDKIT_PLUGIN_API = 4``: the sampler takes the API 4 keywords and the
degradation declares ``random_params``.
"""

from __future__ import annotations

from coldkit import hookimpl
from coldkit_swirl.params import STRIPES, STRIDE_2, SWIRL, SWIRL_CNN, SWIRL_PCA

COLDKIT_PLUGIN_API = 4


@hookimpl
def register_degradations(register) -> None:
    SWIRL.register(register)


@hookimpl
def register_restorers(register) -> None:
    SWIRL_CNN.register(register)


@hookimpl
def register_samplers(register) -> None:
    STRIDE_2.register(register)


@hookimpl
def register_priors(register) -> None:
    SWIRL_PCA.register(register)


@hookimpl
def register_datasets(register) -> None:
    STRIPES.register(register)
