"""Plugin discovery on pluggy: built-ins and third parties alike come from entry points.

Loading is fault tolerant: a plugin that fails to import, raises in its hook, or registers a name
that is already taken is recorded as a :class:`PluginProblem` (the CLI shows it as a warning) and
every other plugin keeps working.
"""

from __future__ import annotations

import importlib.metadata as metadata
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal

import pluggy
from pydantic import BaseModel

from coldkit import hookspecs
from coldkit.errors import PluginError
from coldkit.protocols import NoParams

ENTRY_POINT_GROUP = "coldkit"
#: The distribution whose entry points are loaded first, so built-in names win over third parties.
BUILTIN_DISTRIBUTION = "coldkit"

Kind = Literal["degradation", "restorer", "sampler", "dataset", "prior"]
KINDS: tuple[Kind, ...] = ("degradation", "restorer", "sampler", "dataset", "prior")
_HOOK_OF_KIND: dict[Kind, str] = {
    "degradation": "register_degradations",
    "restorer": "register_restorers",
    "sampler": "register_samplers",
    "dataset": "register_datasets",
    "prior": "register_priors",
}


@dataclass(frozen=True)
class PluginRecord:
    """One registered component: what `list-*` shows and what a config name resolves to."""

    kind: Kind
    name: str
    description: str
    component: Any
    params_model: type[BaseModel]
    plugin: str
    distribution: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class PluginProblem:
    """A plugin that could not be loaded, or a registration that was refused."""

    plugin: str
    message: str


@dataclass
class Registry:
    """Registered components by kind and name, plus the problems met while loading."""

    records: dict[Kind, dict[str, PluginRecord]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    problems: list[PluginProblem] = field(default_factory=list)

    @classmethod
    def discover(
        cls,
        entry_points: Iterable[metadata.EntryPoint] | None = None,
        extra_plugins: Iterable[tuple[str, object]] = (),
    ) -> "Registry":
        """Load every entry point of group ``coldkit`` (built-ins first), then ``extra_plugins``.

        ``extra_plugins`` are ``(name, module_or_object)`` pairs registered directly, which is
        handy for tests and notebooks.
        """
        registry = cls()
        manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        if entry_points is None:
            entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
        loaded: list[tuple[str, object, str | None, str | None]] = []
        for entry_point in sorted(entry_points, key=_builtin_first):
            dist = entry_point.dist
            dist_name = dist.metadata["Name"] if dist is not None else None
            version = dist.version if dist is not None else None
            label = entry_point.name if dist_name is None else f"{entry_point.name} ({dist_name})"
            try:
                plugin = entry_point.load()
            except Exception as exc:  # any import-time failure must not break the others
                registry.problems.append(
                    PluginProblem(label, f"failed to import {entry_point.value!r}: {exc!r}")
                )
                continue
            loaded.append((entry_point.name, plugin, dist_name, version))
        loaded.extend((name, plugin, None, None) for name, plugin in extra_plugins)
        for name, plugin, dist_name, version in loaded:
            registry._register_plugin(manager, name, plugin, dist_name, version)
        return registry

    def _register_plugin(
        self,
        manager: pluggy.PluginManager,
        plugin_name: str,
        plugin: object,
        distribution: str | None,
        version: str | None,
    ) -> None:
        try:
            manager.register(plugin, name=f"{plugin_name}:{id(plugin)}")
        except Exception as exc:  # e.g. a misspelled or mistyped hook
            self.problems.append(PluginProblem(plugin_name, f"rejected by pluggy: {exc}"))
            return
        # Call this plugin's implementations one by one, so each record knows its plugin and one
        # failing hook does not hide the others.
        for kind, hook_name in _HOOK_OF_KIND.items():
            caller = getattr(manager.hook, hook_name)
            for implementation in caller.get_hookimpls():
                if implementation.plugin is not plugin:
                    continue
                register = self._make_register(kind, plugin_name, distribution, version)
                try:
                    implementation.function(register=register)
                except Exception as exc:
                    self.problems.append(
                        PluginProblem(plugin_name, f"{hook_name} raised {exc!r}")
                    )
        unknown = [
            attribute
            for attribute in dir(plugin)
            if manager.parse_hookimpl_opts(plugin, attribute) is not None
            and attribute not in _HOOK_OF_KIND.values()
        ]
        for attribute in unknown:
            self.problems.append(
                PluginProblem(plugin_name, f"defines {attribute!r}, which is not a coldkit hook")
            )

    def _make_register(
        self, kind: Kind, plugin_name: str, distribution: str | None, version: str | None
    ) -> Callable[..., None]:
        def register(
            component: Any,
            name: str | None = None,
            description: str | None = None,
            params: type[BaseModel] | None = None,
        ) -> None:
            record = PluginRecord(
                kind=kind,
                name=name or getattr(component, "name", None) or component.__name__,
                description=description or getattr(component, "description", "") or "",
                component=component,
                params_model=params or getattr(component, "Params", NoParams),
                plugin=plugin_name,
                distribution=distribution,
                version=version,
            )
            taken = self.records[kind].get(record.name)
            if taken is not None:
                self.problems.append(
                    PluginProblem(
                        plugin_name,
                        f"{kind} name {record.name!r} is already registered by plugin "
                        f"{taken.plugin!r}; this registration was ignored",
                    )
                )
                return
            self.records[kind][record.name] = record

        return register

    def names(self, kind: Kind) -> list[str]:
        """Sorted names of every registered component of ``kind``."""
        return sorted(self.records[kind])

    def get(self, kind: Kind, name: str) -> PluginRecord:
        """Look up a component by name, or raise an error that lists the valid names."""
        try:
            return self.records[kind][name]
        except KeyError:
            valid = ", ".join(self.names(kind)) or "(none registered)"
            hint = ""
            if self.problems:
                hint = " Some plugins failed to load; run `coldkit plugins` to see which."
            raise PluginError(
                f"Unknown {kind} {name!r}. Registered {kind}s: {valid}. Fix the name in your "
                f"config, or install the package that provides it.{hint}"
            ) from None


def _builtin_first(entry_point: metadata.EntryPoint) -> tuple[int, str]:
    dist = entry_point.dist
    is_builtin = dist is not None and dist.metadata["Name"] == BUILTIN_DISTRIBUTION
    return (0 if is_builtin else 1, entry_point.name)
