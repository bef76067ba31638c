"""Hooks a coldkit plugin implements. This module is the plugin author's reference.

A plugin is a module exposed under the ``coldkit`` entry-point group of its distribution::

    # pyproject.toml of your package
    [project.entry-points.coldkit]
    my_blur = "my_package.my_blur"

    # my_package/my_blur.py
    from coldkit import hookimpl

    @hookimpl
    def register_degradations(register):
        register(MyBlur)

``register(component, name=None, description=None, params=None)`` records one component. By
default the name, description and parameter model are read from the component's ``name``,
``description`` and ``Params`` attributes. ``Params`` is a pydantic model; the TOML section of the
component (every key but ``name``) is validated against it.

Registration by path (plugin API 3): ``register("package.module:Attribute", name=...,
description=..., params=...)`` records a component without importing it; coldkit imports it the
first time it is built, so listing plugins never waits for torch. ``name`` and ``params`` are then
required (``params`` but for samplers); the component's own ``Params`` should be that model.

How each kind of component is built from its validated parameters:

* degradation: ``component(params)`` returns a :class:`coldkit.protocols.Degradation`.
* restorer: ``component(params, *, context)`` returns a ``torch.nn.Module`` restorer, where
  ``context`` is the :class:`coldkit.protocols.BuildContext` (channels, image size, T, ...).
* sampler: the component is a function following :class:`coldkit.protocols.Sampler` (plugin API
  4: keywords ``generator`` and ``callback``, and ``noise`` with ``takes_noise = True`` for a
  sampler that adds noise per step; samplers of plugin modules declaring API 1–3 are adapted).
* dataset: ``component(params)`` returns a :class:`coldkit.protocols.Dataset`.
* prior: ``component(params)`` returns an unfitted :class:`coldkit.protocols.Prior`; coldkit
  fits it on ``D(x0, T)`` of the training split and saves its ``state_dict``.

The build context (plugin API 2): a component whose factory has a keyword-only parameter named
``context`` gets a :class:`coldkit.protocols.BuildContext` (image size, channels, T, device, seed,
the split served, and ``load_dataset`` to read another registered dataset), for every kind::

    def __init__(self, params: MorphParams, *, context: BuildContext) -> None: ...

A restorer factory without it (plugin API 1) is called ``component(params, context)`` with the
deprecated :class:`coldkit.plugins.compat.RestorerContext` (kept for one release); a sampler so
declared is bound to it (``functools.partial``). Other factories without it get ``params`` only.

A plugin module that needs a newer API than the installed coldkit declares it, and is then
reported and skipped instead of failing at run time::

    COLDKIT_PLUGIN_API = 4

The declared API also says how a component is called: a sampler of a module without
``COLDKIT_PLUGIN_API = 4`` is adapted to the API 4 sampler protocol (see
:mod:`coldkit.plugins.compat`; that adapter is kept for one release).

Built-in plugins use these same hooks through the same entry-point group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:
    from pydantic import BaseModel

PROJECT_NAME = "coldkit"
#: The plugin API coldkit promises (hook names, ``register``'s signature, the protocols as
#: documented). A change to any of them raises this number and coldkit's minor version.
PLUGIN_API_VERSION = 4
#: The module attribute a plugin sets to the plugin API it needs (an int; absent means 1).
PLUGIN_API_ATTRIBUTE = "COLDKIT_PLUGIN_API"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

Register = Callable[..., None]


@dataclass(frozen=True)
class Listing:
    """A component's name, description, parameter model and import path, stated once.

    Write it in a module without torch (beside the parameter model), register with it in the hook
    (``SWIRL.register(register)``: registration by path, so listing never imports the component),
    and let the class read its attributes from it (``name = SWIRL.name``, ``description =
    SWIRL.description``, ``Params = SWIRL.params``), so the text exists in one place. coldkit's
    built-ins are registered this way (``coldkit_plugins/entries/``); ``check_plugin`` fails a
    class whose own ``name``, ``description`` or ``Params`` differ from its registration.
    """

    name: str
    description: str
    #: ``"package.module:Attribute"``, imported the first time a run builds the component.
    target: str
    #: The parameter model (``None`` for a sampler, which takes no parameters).
    params: "type[BaseModel] | None" = None

    def register(self, register: Register) -> None:
        """Register the component by path with its name, description and parameter model."""
        register(self.target, name=self.name, description=self.description, params=self.params)


@hookspec
def register_degradations(register: Register) -> None:
    """Register degradations ``D(x0, t)``: call ``register(DegradationClass)`` for each."""


@hookspec
def register_restorers(register: Register) -> None:
    """Register restorer networks: call ``register(factory)`` for each."""


@hookspec
def register_samplers(register: Register) -> None:
    """Register sampling algorithms: call ``register(function, name=..., description=...)``."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register image datasets: call ``register(DatasetClass)`` for each."""


@hookspec
def register_priors(register: Register) -> None:
    """Register priors over fully degraded images (generation): call ``register(PriorClass)``."""
