"""Plugin API versions: the one module that asks a plugin object what it can take.

Plugin API 1 factories are called ``factory(params)`` (a restorer ``factory(params,
RestorerContext)``); API 2 added the keyword-only ``context`` (a :class:`BuildContext`); API 3
registration by path; API 4 the sampler protocol's keywords (``generator``, ``callback``, and
``noise`` declared by ``takes_noise``). A plugin module declares the API it needs in
``COLDKIT_PLUGIN_API``; this module is where that declaration and, for the older APIs, a plugin's
signature are read (``tests/architecture/test_layering.py`` keeps ``inspect.signature`` out of every other
module). The adapters for API 1–3 samplers and priors are kept for one release.

:class:`RestorerContext` lives here too, deprecated: an API 1 restorer factory is still built as
``factory(params, RestorerContext)``, and ``coldkit.RestorerContext`` still imports, for one
release; everywhere else (coldkit's own code, ``run.json``'s reading, ``coldkit.testing``) the
context is the :class:`~coldkit.protocols.BuildContext`.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable

from coldkit import hookspecs
from coldkit.protocols import BuildContext, PriorWithParams, StepCallback

#: The API a sampler must declare to be called by the API 4 protocol without an adapter.
SAMPLER_PROTOCOL_API = 4


@dataclass(frozen=True)
class RestorerContext:
    """Deprecated (plugin API 1, kept for one release): what an old-style restorer factory
    ``factory(params, context)`` is given. Declare ``*, context`` instead and get the
    :class:`~coldkit.protocols.BuildContext`, which has the same ``channels``, ``image_size`` and
    ``steps``."""

    channels: int
    image_size: int
    steps: int


def restorer_context(context: BuildContext) -> RestorerContext:
    """The :class:`RestorerContext` an old-style (plugin API 1) restorer factory takes."""
    return RestorerContext(**context.model_shape())


def as_build_context(context: BuildContext | RestorerContext | None) -> BuildContext | None:
    """A context as coldkit uses it: a deprecated :class:`RestorerContext` given by an older
    caller (``check_restorer(context=...)``) becomes the :class:`BuildContext` it describes."""
    if isinstance(context, RestorerContext):
        return BuildContext(context.image_size, context.channels, context.steps)
    return context


def declared_api(plugin: object) -> Any:
    """The plugin API a plugin module declares (``COLDKIT_PLUGIN_API``; 1 when absent)."""
    return getattr(plugin, hookspecs.PLUGIN_API_ATTRIBUTE, 1)


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
    needed = declared_api(plugin)
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
    """Whether a prior is fitted with the degradation's parameters: a :class:`PriorWithParams`
    (it draws x_T with their params, so it learns from the pairs). One whose ``fit`` has no
    ``params`` argument (plugin API 1–3) is fitted on x_T alone, for one release."""
    return isinstance(prior, PriorWithParams) and "params" in _parameters(prior.fit)


def adapt_sampler(sampler: Callable[..., Any]) -> Callable[..., Any]:
    """An API 1–3 sampler called by the API 4 protocol: ``generator`` and ``noise`` passed only
    where its signature has them, and ``callback`` served by watching its restorer calls."""
    accepted = sampler_options(sampler)

    @functools.wraps(sampler)
    def adapted(restorer, degradation, x_t, t, params=None, *, generator=None, callback=None,
                **options):  # type: ignore[no-untyped-def]
        if generator is not None and "generator" in accepted:
            options["generator"] = generator
        if callback is not None:
            restorer = _reporting(restorer, callback)
        return sampler(restorer, degradation, x_t, t, params, **options)

    adapted.takes_noise = "noise" in accepted  # type: ignore[attr-defined]
    return adapted


def _reporting(restorer: Callable[..., Any], callback: StepCallback) -> Callable[..., Any]:
    """``restorer``, reporting each call to ``callback`` as an API 4 sampler step would."""

    def restore(x_t, t):  # type: ignore[no-untyped-def]
        denoised = restorer(x_t, t)
        callback({"x": x_t, "i": int(t.max()), "denoised": denoised})
        return denoised

    return restore


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


def stream_takes_size(dataset: Any) -> bool:
    """Whether a dataset's ``stream`` is still told the image size, ``stream(split,
    image_size)`` (the protocol before it learnt the size once, from its build context)."""
    return len(_parameters(dataset.stream)) >= 2


def open_stream(dataset: Any, split: str, image_size: int) -> Any:
    """A dataset's ``stream`` of ``split``: ``stream(split)``, at the image size of the dataset's
    build context; a dataset written for ``stream(split, image_size)`` is told ``image_size``
    again, for one release (docs/plugins.md, "Datasets that stream")."""
    if stream_takes_size(dataset):
        return dataset.stream(split, image_size)
    return dataset.stream(split)


def random_params(degradation: Any, like: Any) -> tuple[str, ...]:
    """The names of the random parameters a degradation draws, ``()`` for a deterministic one.

    A degradation of plugin API 4 declares them (``random_params``); one without the declaration
    (API 1–3) is asked the old way, for one release: one draw for an image like ``like[:1]``."""
    declared = getattr(degradation, "random_params", None)
    if declared is not None:
        return tuple(declared)
    import torch  # only for an undeclared degradation; importing the plugin API stays cheap

    return tuple(degradation.sample_params(like[:1], torch.Generator().manual_seed(0)))
