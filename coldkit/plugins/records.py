"""What loading plugins produces: a record per registered component (and building it), a
problem per plugin that failed, an info per plugin module."""

from __future__ import annotations

import functools
import importlib
import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from pydantic import BaseModel

from coldkit.errors import PluginError
from coldkit.plugins.building import Kind, build_component
from coldkit.plugins.compat import RestorerContext, as_build_context
from coldkit.protocols import BuildContext

#: The distribution whose entry points are loaded first, so built-in names win over third parties.
BUILTIN_DISTRIBUTION = "coldkit"


def normalise_distribution(name: str) -> str:
    """A distribution name as pip compares it (PEP 503): case and ``-_.`` runs do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class PluginRecord:
    """One registered component: what `list-*` shows and what a config name resolves to.

    ``target`` is what the plugin registered: the component itself, or for a lazy registration
    its ``"module:attribute"`` path, imported the first time :attr:`component` is read (so
    listing plugins never imports what a component needs, torch included).
    """

    kind: Kind
    name: str
    description: str
    target: Any
    params_model: type[BaseModel]
    plugin: str
    distribution: str | None = None
    version: str | None = None
    #: The plugin API its plugin module declares (``COLDKIT_PLUGIN_API``): how it is called.
    api: int = 1

    @property
    def is_lazy(self) -> bool:
        """Whether the component is registered by path and not imported until first built."""
        return isinstance(self.target, str)

    @functools.cached_property
    def component(self) -> Any:
        """The registered factory (class or function), imported now if registered by path.

        Raises :class:`PluginError` naming the package when the path does not import (its module
        failing, even by ``sys.exit``, included).
        """
        if not self.is_lazy:
            return self.target
        module_name, _, attribute = self.target.partition(":")
        try:
            value: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                value = getattr(value, part)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # an ImportError, a missing attribute, a sys.exit
            raise PluginError(
                f"{self.kind} {self.name!r} of {self.served_by} is registered as "
                f"{self.target!r}, which could not be imported: {exc!r}. Reinstall or upgrade "
                f"that package (pip install --force-reinstall {self.distribution or self.plugin}),"
                f" or disable the plugin {self.plugin!r}."
            ) from exc
        return value

    @property
    def qualified_name(self) -> str:
        """``package:name``, which always selects this record (``plugin:name`` if no package)."""
        return f"{self.distribution or self.plugin}:{self.name}"

    @property
    def served_by(self) -> str:
        """``plugin (package version)``, as the trace shows it."""
        return describe(self.plugin, self.distribution, self.version)

    @property
    def is_builtin(self) -> bool:
        """Whether coldkit itself registers it."""
        return self.distribution is not None and (
            normalise_distribution(self.distribution) == BUILTIN_DISTRIBUTION
        )

    def build(
        self,
        params: BaseModel | Mapping[str, Any] | None = None,
        context: BuildContext | RestorerContext | None = None,
    ) -> Any:
        """The component, built by its kind's rule (:data:`coldkit.plugins.building.BUILD_RULES`).

        ``params`` is a validated parameter model, a plain mapping (validated here) or None for
        the defaults. ``context`` is what the run knows (:class:`~coldkit.protocols.BuildContext`);
        a component gets it when its factory has a keyword-only ``context`` parameter (plugin API
        2). Old-style factories are built as before: ``component(params)``, a restorer
        ``component(params, RestorerContext)``, a sampler is the registered function itself. A
        deprecated :class:`~coldkit.plugins.compat.RestorerContext` is still taken as ``context``
        (for one release) and read as the :class:`BuildContext` it describes.
        """
        context = as_build_context(context)
        if not isinstance(params, BaseModel):
            params = self.params_model.model_validate(dict(params or {}))
        label = f"{self.name!r} of {self.served_by}" + (
            f" (registered as {self.target!r})" if self.is_lazy else ""
        )
        return build_component(self.kind, self.component, params, context, label, self.api)


@dataclass(frozen=True)
class PluginProblem:
    """A plugin that could not be loaded, or a registration that did not get its name."""

    plugin: str
    message: str
    distribution: str | None = None

    @property
    def label(self) -> str:
        return self.plugin if self.distribution is None else f"{self.plugin} ({self.distribution})"


@dataclass(frozen=True)
class PluginInfo:
    """One plugin module (an entry point, or a module registered directly) and what became of it."""

    name: str
    distribution: str | None = None
    version: str | None = None
    target: str | None = None
    hooks: tuple[str, ...] = ()
    status: Literal["loaded", "failed", "disabled"] = "loaded"
    disabled_by: str | None = None

    @property
    def label(self) -> str:
        return self.name if self.distribution is None else f"{self.name} ({self.distribution})"

    def describe(self) -> str:
        """``name (package version)``."""
        return describe(self.name, self.distribution, self.version)

    def owns(self, item: PluginRecord | PluginProblem) -> bool:
        return item.plugin == self.name and item.distribution == self.distribution


def qualifier(record: PluginRecord) -> str:
    """What the part before the colon of a qualified name must normalise to."""
    return normalise_distribution(record.distribution or record.plugin)


def describe(name: str, distribution: str | None, version: str | None) -> str:
    """``name (package version)``, or ``name (registered directly)`` without a package."""
    if distribution is None:
        return f"{name} (registered directly)"
    return f"{name} ({distribution} {version})" if version else f"{name} ({distribution})"
