"""Plugin discovery on pluggy: built-ins and third parties alike come from entry points.

One module per job:

* :mod:`~coldkit.plugins.compat`: plugin API versions (the one place a plugin's signature is read);
* :mod:`~coldkit.plugins.building`: the build rule of each kind, in one table;
* :mod:`~coldkit.plugins.records`: :class:`PluginRecord` (what was registered, and building it),
  :class:`PluginProblem`, :class:`PluginInfo`;
* :mod:`~coldkit.plugins.names`: bare and qualified names, clashes, and their messages;
* :mod:`~coldkit.plugins.discovery`: importing plugin modules, disable lists, calling hooks;
* :mod:`~coldkit.plugins.registry`: :class:`Registry`, what the rest of coldkit asks.

Names: every component is reachable by its qualified name ``package:name`` (distribution name,
a colon, the component's name, e.g. ``coldkit-swirl:swirl`` or ``coldkit:blur``). A bare name
means the built-in (distribution ``coldkit``) where there is one; otherwise the one package that
registers it. Plugins are disabled by name: entry-point name, ``package:entry`` or a distribution
name, in ``COLDKIT_DISABLE_PLUGINS`` (the plugin is not even imported) or with
:meth:`Registry.without` (what a config's ``disable_plugins`` does).
"""

from coldkit.plugins.building import BUILD_RULES, KINDS, Kind
from coldkit.plugins.compat import takes_build_context
from coldkit.plugins.discovery import DISABLE_ENV, ENTRY_POINT_GROUP, parse_plugin_list
from coldkit.plugins.records import (
    BUILTIN_DISTRIBUTION,
    PluginInfo,
    PluginProblem,
    PluginRecord,
    normalise_distribution,
)
from coldkit.plugins.registry import TRACE_ENV, Registry, trace_requested

__all__ = [
    "BUILD_RULES",
    "BUILTIN_DISTRIBUTION",
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "KINDS",
    "TRACE_ENV",
    "Kind",
    "PluginInfo",
    "PluginProblem",
    "PluginRecord",
    "Registry",
    "normalise_distribution",
    "parse_plugin_list",
    "takes_build_context",
    "trace_requested",
]
