"""How each kind of component is built: the one table of build rules.

A registered factory is called with its validated parameters and, if it asks for one (plugin API
2, see :mod:`coldkit.plugins.compat`), the run's :class:`~coldkit.protocols.BuildContext`. A
sampler is the registered function itself (with ``context`` bound if it asks for it). A
registration that points at something that cannot be called so (``math:pi``, ``os.path:join``)
is a :class:`PluginError` naming the plugin, not a ``TypeError`` traceback.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Literal

from pydantic import BaseModel

from coldkit.errors import PluginError
from coldkit.plugins.compat import (
    SAMPLER_PROTOCOL_API,
    adapt_sampler,
    restorer_context,
    takes_build_context,
)
from coldkit.protocols import BuildContext

Kind = Literal["degradation", "restorer", "sampler", "dataset", "prior"]
KINDS: tuple[Kind, ...] = ("degradation", "restorer", "sampler", "dataset", "prior")


@dataclass(frozen=True)
class BuildRule:
    """How one kind is built: whether its factory is called with parameters (a sampler is the
    registered function itself), and whether an old-style (API 1) factory gets the positional
    :class:`~coldkit.plugins.compat.RestorerContext` (deprecated)."""

    called: bool = True
    old_context: bool = False


#: The build rule of every kind.
BUILD_RULES: dict[Kind, BuildRule] = {
    "degradation": BuildRule(),
    "restorer": BuildRule(old_context=True),
    "sampler": BuildRule(called=False),
    "dataset": BuildRule(),
    "prior": BuildRule(),
}


def build_component(
    kind: Kind,
    component: Any,
    params: BaseModel,
    context: BuildContext | None,
    label: str,
    api: int = SAMPLER_PROTOCOL_API,
) -> Any:
    """Build ``component`` (what ``label``, a plugin's description, registered) as ``kind``,
    for a plugin module that declares plugin API ``api``."""
    if not callable(component):
        raise PluginError(_not_a_component(kind, label, f"it is a {type(component).__name__}"))
    rule = BUILD_RULES[kind]
    wants_context = takes_build_context(component)
    if not rule.called:
        if api < SAMPLER_PROTOCOL_API:
            component = adapt_sampler(component)
        if wants_context:
            return functools.partial(component, context=context or BuildContext())
        return component
    return _call(kind, component, params, context, rule, wants_context, label)


def _call(
    kind: Kind,
    component: Callable[..., Any],
    params: BaseModel,
    context: BuildContext | None,
    rule: BuildRule,
    wants_context: bool,
    label: str,
) -> Any:
    """Call the factory as its plugin API says; a call it cannot take is a plugin error."""
    arguments: tuple[Any, ...] = (params,)
    if rule.old_context and not wants_context:
        if context is None:
            raise TypeError(f"{kind} {label} is built with a BuildContext")
        arguments = (params, restorer_context(context))
    try:
        if wants_context:
            return component(params, context=context or BuildContext())
        return component(*arguments)
    except TypeError as exc:
        raise PluginError(
            _not_a_component(kind, label, f"building it as factory(params) raised {exc!r}")
        ) from exc


def _not_a_component(kind: Kind, label: str, why: str) -> str:
    return (
        f"{kind} {label} is not a coldkit {kind}: {why}. Fix the registration in that plugin "
        f"(a component class or factory function, see docs/plugins.md), or disable the plugin."
    )
