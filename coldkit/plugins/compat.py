"""Plugin API versions: the one module that asks a plugin object what it can take.

Plugin API 1 factories are called ``factory(params)`` (a restorer ``factory(params,
RestorerContext)``); API 2 added the keyword-only ``context`` (a :class:`BuildContext`); API 3
registration by path. A plugin module declares the API it needs in ``COLDKIT_PLUGIN_API``; this
module is where that declaration and the factory's signature are read (``tests/test_architecture``
keeps ``inspect.signature`` on plugin objects out of every other module).
"""

from __future__ import annotations

import inspect
from typing import Any

from coldkit import hookspecs


def takes_build_context(component: Any) -> bool:
    """Whether a factory (class or function) asks for the build context: a keyword-only
    parameter named ``context`` (plugin API 2)."""
    try:
        parameter = inspect.signature(component).parameters.get("context")
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return parameter is not None and parameter.kind is inspect.Parameter.KEYWORD_ONLY


def api_problem(plugin: object) -> str | None:
    """Why a plugin module cannot be loaded by this coldkit's plugin API, or None if it can."""
    needed = getattr(plugin, hookspecs.PLUGIN_API_ATTRIBUTE, 1)
    if isinstance(needed, int) and not isinstance(needed, bool) and (
        needed <= hookspecs.PLUGIN_API_VERSION
    ):
        return None
    return (
        f"needs coldkit plugin API {needed!r} ({hookspecs.PLUGIN_API_ATTRIBUTE}); this coldkit "
        f"has API {hookspecs.PLUGIN_API_VERSION}: upgrade coldkit, or install a version of the "
        "plugin made for this one"
    )


def fit_takes_params(prior: Any) -> bool:
    """Whether a prior's ``fit`` asks for the degradation's parameters (a ``params`` argument):
    a prior that draws x_T with its params learns from the pairs, not from x_T alone."""
    return "params" in _parameters(prior.fit)


def sampler_options(sampler: Any) -> frozenset[str]:
    """Which per-run options a sampler takes as keywords: ``generator`` (its seeded draws) and
    ``noise`` (the per-step noise of ``generate.step_noise``)."""
    return frozenset(_parameters(sampler)) & {"generator", "noise"}


def _parameters(function: Any) -> list[str]:
    """The parameter names of a plugin's function; none for a callable without a signature."""
    try:
        return list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return []
