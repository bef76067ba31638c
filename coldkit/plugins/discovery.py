"""Discovery and disabling: import every plugin module (entry points of group ``coldkit``,
built-ins first, then modules registered directly), skip the disabled ones, call their hooks,
and collect what they register.

Loading is fault tolerant: a plugin that fails to import (an exception or ``sys.exit`` in its
module), raises in its hook, or registers something malformed is recorded as a
:class:`PluginProblem` and every other plugin keeps working. Only ``KeyboardInterrupt`` goes
through.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as metadata
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pluggy
from pydantic import BaseModel

from coldkit import hookspecs
from coldkit.plugins.building import Kind
from coldkit.plugins.compat import api_problem, declared_api
from coldkit.plugins.records import (
    BUILTIN_DISTRIBUTION,
    PluginInfo,
    PluginProblem,
    PluginRecord,
    normalise_distribution,
    qualifier,
)
from coldkit.protocols import NoParams

ENTRY_POINT_GROUP = "coldkit"
#: Comma-separated plugins not to load: entry-point names, ``package:entry`` or package names.
DISABLE_ENV = "COLDKIT_DISABLE_PLUGINS"
HOOK_OF_KIND: dict[Kind, str] = {
    "degradation": "register_degradations",
    "restorer": "register_restorers",
    "sampler": "register_samplers",
    "dataset": "register_datasets",
    "prior": "register_priors",
}
#: A lazy registration names its component as ``"package.module:attribute"``.
_LAZY_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass
class DisableList:
    """The plugins one discovery must not load, where that list came from, and what it matched."""

    specs: list[str]
    source: str
    used: set[str] = field(default_factory=set)

    @classmethod
    def read(cls, disabled: Iterable[str] | None) -> "DisableList":
        """``disabled`` as given, or ``COLDKIT_DISABLE_PLUGINS`` when it is None."""
        if disabled is None:
            return cls(parse_plugin_list(os.environ.get(DISABLE_ENV, "")), DISABLE_ENV)
        specs = [spec.strip() for spec in disabled if spec.strip()]
        return cls(specs, "Registry.discover(disabled=...)")

    def names(self, info: PluginInfo) -> bool:
        """Whether a spec names ``info``; remembers the specs that did, for :meth:`unused`."""
        matching = [spec for spec in self.specs if matches(spec, info)]
        self.used.update(matching)
        return bool(matching)

    def unused(self) -> list[str]:
        """The specs, in order, that named no plugin."""
        return [spec for spec in self.specs if spec not in self.used]


@dataclass
class Loading:
    """What one discovery found: every plugin module, every accepted registration, and the
    problems met on the way."""

    plugins: list[PluginInfo] = field(default_factory=list)
    registered: list[PluginRecord] = field(default_factory=list)
    problems: list[PluginProblem] = field(default_factory=list)

    def problem(self, info: PluginInfo, message: str) -> None:
        self.problems.append(PluginProblem(info.name, message, info.distribution))


def load_plugins(
    entry_points: Iterable[metadata.EntryPoint] | None,
    extra_plugins: Iterable[tuple[str, object]],
    disabled: Iterable[str] | None,
) -> Loading:
    """Import and register every plugin not disabled (see :meth:`Registry.discover`)."""
    disabling = DisableList.read(disabled)
    loading = Loading()
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    if entry_points is None:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    loaded = _import_entry_points(loading, entry_points, disabling)
    for name, plugin in extra_plugins:
        info = PluginInfo(name=name, target=getattr(plugin, "__name__", None))
        if not _skip_disabled(loading, info, disabling):
            loaded.append((info, plugin))
    for info, plugin in loaded:
        loading.plugins.append(_register_plugin(loading, manager, info, plugin))
    for spec in disabling.unused():  # most likely a typo: say so, and which plugins exist
        loading.problems.append(PluginProblem(
            spec,
            f"{disabling.source} names {spec!r}, which matches no plugin, so nothing was "
            f"disabled by it; {known_plugins(loading.plugins)}",
        ))
    return loading


def _import_entry_points(
    loading: Loading, entry_points: Iterable[metadata.EntryPoint], disabling: DisableList
) -> list[tuple[PluginInfo, object]]:
    """Import every entry point not disabled, built-ins first; a failed import is a problem."""
    loaded: list[tuple[PluginInfo, object]] = []
    for entry_point in sorted(entry_points, key=_builtin_first):
        dist = entry_point.dist
        info = PluginInfo(
            name=entry_point.name,
            distribution=dist.metadata["Name"] if dist is not None else None,
            version=dist.version if dist is not None else None,
            target=entry_point.value,
        )
        if _skip_disabled(loading, info, disabling):
            continue
        try:
            plugin = entry_point.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # any import-time failure, sys.exit included
            loading.plugins.append(dataclasses.replace(info, status="failed"))
            loading.problem(info, f"failed to import {entry_point.value!r}: {exc!r}")
            continue
        loaded.append((info, plugin))
    return loaded


def _skip_disabled(loading: Loading, info: PluginInfo, disabling: DisableList) -> bool:
    """Record ``info`` as disabled if a disabled-plugin spec names it (then skip loading it)."""
    if not disabling.names(info):
        return False
    loading.plugins.append(
        dataclasses.replace(info, status="disabled", disabled_by=disabling.source)
    )
    return True


def _register_plugin(
    loading: Loading, manager: pluggy.PluginManager, info: PluginInfo, plugin: object
) -> PluginInfo:
    """Register one plugin module with pluggy and call its hooks; its info, hooks filled in."""
    problem = api_problem(plugin)
    if problem is not None:
        loading.problem(info, problem)
        return dataclasses.replace(info, status="failed")
    try:
        manager.register(plugin, name=f"{info.name}:{id(plugin)}")
    except Exception as exc:  # e.g. a misspelled or mistyped hook
        loading.problem(info, f"rejected by pluggy: {exc}")
        return dataclasses.replace(info, status="failed")
    # Call this plugin's implementations one by one, so each record knows its plugin and one
    # failing hook does not hide the others.
    hooks = []
    for kind, hook_name in HOOK_OF_KIND.items():
        for implementation in getattr(manager.hook, hook_name).get_hookimpls():
            if implementation.plugin is not plugin:
                continue
            hooks.append(hook_name)
            try:
                register = _make_register(loading, kind, info, declared_api(plugin))
                implementation.function(register=register)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # sys.exit in a hook included
                loading.problem(info, f"{hook_name} raised {exc!r}")
    for attribute in dir(plugin):
        if manager.parse_hookimpl_opts(plugin, attribute) is not None and (
            attribute not in HOOK_OF_KIND.values()
        ):
            loading.problem(info, f"defines {attribute!r}, which is not a coldkit hook")
    return dataclasses.replace(info, hooks=tuple(dict.fromkeys(hooks)))


def _make_register(
    loading: Loading, kind: Kind, info: PluginInfo, api: int
) -> Callable[..., None]:
    """The ``register`` callback one hook of one plugin is called with."""

    def register(
        component: Any,
        name: str | None = None,
        description: str | None = None,
        params: type[BaseModel] | None = None,
    ) -> None:
        if isinstance(component, str):
            problem = lazy_problem(kind, component, name, params)
        else:
            problem = _not_callable_problem(kind, component)
        if problem is not None:
            loading.problem(info, problem)
            return
        record = PluginRecord(
            kind=kind,
            name=name or getattr(component, "name", None) or component.__name__,
            description=description or getattr(component, "description", "") or "",
            target=component,
            params_model=params or getattr(component, "Params", NoParams),
            plugin=info.name,
            distribution=info.distribution,
            version=info.version,
            api=api,
        )
        taken = next((
            other for other in loading.registered
            if (other.kind, other.name) == (kind, record.name)
            and qualifier(other) == qualifier(record)
        ), None)
        if taken is not None:  # the same name twice from one package: even qualified, ambiguous
            loading.problem(
                info,
                f"{kind} name {record.name!r} is already registered by plugin "
                f"{taken.plugin!r} of the same package; this registration was ignored",
            )
            return
        loading.registered.append(record)

    return register


def lazy_problem(
    kind: Kind, target: str, name: str | None, params: type[BaseModel] | None
) -> str | None:
    """Why a registration by path is refused, or None: it needs ``module:attribute``, a name,
    and (but for samplers, which take no parameters) its parameter model."""
    if not _LAZY_TARGET.match(target):
        return (
            f"registered {kind} {target!r}: a component registered by path must be written "
            f"'package.module:attribute'; this registration was ignored"
        )
    missing = [label for label, given in (("name", name), ("params", params)) if not given]
    if kind == "sampler" and "params" in missing:
        missing.remove("params")
    if missing:
        return (
            f"registered {kind} {target!r} by path without {' and '.join(missing)}=: coldkit "
            f"lists a component without importing it, so it needs them given; this registration"
            f" was ignored"
        )
    return None


def _not_callable_problem(kind: Kind, component: Any) -> str | None:
    """Why an object registered directly is refused: a component is a class or a function."""
    if callable(component):
        return None
    return (
        f"registered {kind} {component!r} ({type(component).__name__}), which is not a component "
        f"(a class or a function that builds one); this registration was ignored"
    )


def parse_plugin_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]


def matches(spec: str, info: PluginInfo) -> bool:
    """Does a disable entry (``entry``, ``package:entry`` or ``package``) name this plugin?"""
    package, colon, entry = spec.partition(":")
    if colon:
        return (
            info.distribution is not None
            and normalise_distribution(package) == normalise_distribution(info.distribution)
            and entry == info.name
        )
    if spec == info.name:
        return True
    return info.distribution is not None and (
        normalise_distribution(spec) == normalise_distribution(info.distribution)
    )


def known_plugins(plugins: list[PluginInfo]) -> str:
    """``plugins: a, b (package)``, for messages about a plugin name that matched nothing."""
    names = ", ".join(sorted({info.label for info in plugins})) or "(none)"
    return f"plugins: {names}"


def _builtin_first(entry_point: metadata.EntryPoint) -> tuple[int, str]:
    dist = entry_point.dist
    is_builtin = dist is not None and dist.metadata["Name"] == BUILTIN_DISTRIBUTION
    return (0 if is_builtin else 1, entry_point.name)
