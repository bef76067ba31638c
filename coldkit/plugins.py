"""Plugin discovery on pluggy: built-ins and third parties alike come from entry points.

Loading is fault tolerant: a plugin that fails to import, raises in its hook, or registers a name
that is already taken is recorded as a :class:`PluginProblem` (the CLI shows it as a warning) and
every other plugin keeps working.

Names: every component is reachable by its qualified name ``package:name`` (distribution name,
a colon, the component's name, e.g. ``coldkit-swirl:swirl`` or ``coldkit:blur``). A bare name
means the built-in (distribution ``coldkit``) where there is one; otherwise the one package that
registers it. When two third-party packages register one name, the bare name is ambiguous and
:meth:`Registry.get` raises a :class:`PluginError` naming both packages.

Plugins are disabled by name: entry-point name, ``package:entry`` or a distribution name, in
``COLDKIT_DISABLE_PLUGINS`` (the plugin is not even imported) or with :meth:`Registry.without`
(what a config's ``disable_plugins`` does).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata as metadata
import inspect
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Mapping

import pluggy
from pydantic import BaseModel

from coldkit import hookspecs
from coldkit.errors import PluginError
from coldkit.protocols import BuildContext, NoParams, RestorerContext
from coldkit.runtime.log import Notify

ENTRY_POINT_GROUP = "coldkit"
#: The distribution whose entry points are loaded first, so built-in names win over third parties.
BUILTIN_DISTRIBUTION = "coldkit"
#: Comma-separated plugins not to load: entry-point names, ``package:entry`` or package names.
DISABLE_ENV = "COLDKIT_DISABLE_PLUGINS"
#: Set to 1 to log to stderr which plugin serves each name that is looked up.
TRACE_ENV = "COLDKIT_TRACE_PLUGINS"

Kind = Literal["degradation", "restorer", "sampler", "dataset", "prior"]
KINDS: tuple[Kind, ...] = ("degradation", "restorer", "sampler", "dataset", "prior")
_HOOK_OF_KIND: dict[Kind, str] = {
    "degradation": "register_degradations",
    "restorer": "register_restorers",
    "sampler": "register_samplers",
    "dataset": "register_datasets",
    "prior": "register_priors",
}


def normalise_distribution(name: str) -> str:
    """A distribution name as pip compares it (PEP 503): case and ``-_.`` runs do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


#: A lazy registration names its component as ``"package.module:attribute"``.
_LAZY_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


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

    @property
    def is_lazy(self) -> bool:
        """Whether the component is registered by path and not imported until first built."""
        return isinstance(self.target, str)

    @functools.cached_property
    def component(self) -> Any:
        """The registered factory (class or function), imported now if registered by path.

        Raises :class:`PluginError` naming the package when the path does not import.
        """
        if not self.is_lazy:
            return self.target
        module_name, _, attribute = self.target.partition(":")
        try:
            value: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                value = getattr(value, part)
        except Exception as exc:  # an ImportError, a missing attribute, a failing module body
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
        return _describe(self.plugin, self.distribution, self.version)

    @functools.cached_property
    def takes_context(self) -> bool:
        """Whether the component asks for the build context (read once from its signature)."""
        return takes_build_context(self.component)

    def build(
        self,
        params: BaseModel | Mapping[str, Any] | None = None,
        context: BuildContext | RestorerContext | None = None,
    ) -> Any:
        """The component, built as its kind is built (the one place that knows how).

        ``params`` is a validated parameter model, a plain mapping (validated here) or None for
        the defaults. ``context`` is what the run knows (:class:`~coldkit.protocols.BuildContext`);
        a component gets it when its factory has a keyword-only ``context`` parameter (plugin API
        2). Old-style factories are built as before: ``component(params)``, a restorer
        ``component(params, RestorerContext)``, a sampler is the registered function itself.
        """
        if isinstance(context, RestorerContext):
            context = BuildContext(context.image_size, context.channels, context.steps)
        wants_context = self.takes_context
        if self.kind == "sampler":
            if wants_context:
                return functools.partial(self.component, context=context or BuildContext())
            return self.component
        if not isinstance(params, BaseModel):
            params = self.params_model.model_validate(dict(params or {}))
        if wants_context:
            return self.component(params, context=context or BuildContext())
        if self.kind == "restorer":
            if context is None:
                raise TypeError(f"restorer {self.name!r} is built with a BuildContext")
            return self.component(params, context.restorer_context())
        return self.component(params)


def takes_build_context(component: Any) -> bool:
    """Whether a factory (class or function) asks for the build context: a keyword-only
    parameter named ``context``."""
    try:
        parameter = inspect.signature(component).parameters.get("context")
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return parameter is not None and parameter.kind is inspect.Parameter.KEYWORD_ONLY


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
        return _describe(self.name, self.distribution, self.version)

    def owns(self, item: PluginRecord | PluginProblem) -> bool:
        return item.plugin == self.name and item.distribution == self.distribution


@dataclass
class _DisableList:
    """The plugins one discovery must not load, where that list came from, and what it matched."""

    specs: list[str]
    source: str
    used: set[str] = field(default_factory=set)

    @classmethod
    def read(cls, disabled: Iterable[str] | None) -> "_DisableList":
        """``disabled`` as given, or ``COLDKIT_DISABLE_PLUGINS`` when it is None."""
        if disabled is None:
            return cls(parse_plugin_list(os.environ.get(DISABLE_ENV, "")), DISABLE_ENV)
        specs = [spec.strip() for spec in disabled if spec.strip()]
        return cls(specs, "Registry.discover(disabled=...)")

    def names(self, info: PluginInfo) -> bool:
        """Whether a spec names ``info``; remembers the specs that did, for :meth:`unused`."""
        matching = [spec for spec in self.specs if _matches(spec, info)]
        self.used.update(matching)
        return bool(matching)

    def unused(self) -> list[str]:
        """The specs, in order, that named no plugin."""
        return [spec for spec in self.specs if spec not in self.used]


@dataclass
class Registry:
    """Registered components by kind and name, plus the problems met while loading.

    ``records[kind]`` maps each bare name that resolves to its record; ``clashes[kind]`` maps a
    bare name that two or more third-party packages registered to their records; ``registered``
    holds every accepted registration (qualified names reach each of them); ``plugins`` every
    plugin module found, loaded or not. ``trace``, when set, receives one line per lookup;
    ``notify`` receives notes such as the plugins a config disabled.
    """

    records: dict[Kind, dict[str, PluginRecord]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    problems: list[PluginProblem] = field(default_factory=list)
    clashes: dict[Kind, dict[str, tuple[PluginRecord, ...]]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    registered: list[PluginRecord] = field(default_factory=list)
    plugins: list[PluginInfo] = field(default_factory=list)
    trace: Notify | None = None
    notify: Notify | None = None
    _load_problems: list[PluginProblem] = field(default_factory=list, repr=False)

    @classmethod
    def discover(
        cls,
        entry_points: Iterable[metadata.EntryPoint] | None = None,
        extra_plugins: Iterable[tuple[str, object]] = (),
        disabled: Iterable[str] | None = None,
        trace: Notify | None = None,
    ) -> "Registry":
        """Load every entry point of group ``coldkit`` (built-ins first), then ``extra_plugins``.

        ``extra_plugins`` are ``(name, module_or_object)`` pairs registered directly, which is
        handy for tests and notebooks. ``disabled`` names plugins not to load (entry-point name,
        ``package:entry`` or package name); by default they are read from
        ``COLDKIT_DISABLE_PLUGINS``. ``trace`` receives one line per lookup; by default lookups
        are traced to stderr when ``COLDKIT_TRACE_PLUGINS`` is set (to anything but 0/false/no).
        """
        disabling = _DisableList.read(disabled)
        if trace is None and trace_requested():
            trace = _stderr_line
        registry = cls(trace=trace)
        manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        if entry_points is None:
            entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
        loaded = registry._import_entry_points(entry_points, disabling)
        loaded += registry._direct_plugins(extra_plugins, disabling)
        for info, plugin in loaded:
            registry.plugins.append(registry._register_plugin(manager, info, plugin))
        registry._report_unused(disabling)
        registry._rebuild()
        return registry

    def _import_entry_points(
        self, entry_points: Iterable[metadata.EntryPoint], disabling: _DisableList
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
            if self._skip_disabled(info, disabling):
                continue
            try:
                plugin = entry_point.load()
            except Exception as exc:  # any import-time failure must not break the others
                self.plugins.append(dataclasses.replace(info, status="failed"))
                self._load_problems.append(
                    PluginProblem(
                        info.name, f"failed to import {entry_point.value!r}: {exc!r}",
                        info.distribution,
                    )
                )
                continue
            loaded.append((info, plugin))
        return loaded

    def _direct_plugins(
        self, extra_plugins: Iterable[tuple[str, object]], disabling: _DisableList
    ) -> list[tuple[PluginInfo, object]]:
        """The ``(name, module_or_object)`` pairs registered directly, less the disabled ones."""
        loaded: list[tuple[PluginInfo, object]] = []
        for name, plugin in extra_plugins:
            info = PluginInfo(name=name, target=getattr(plugin, "__name__", None))
            if self._skip_disabled(info, disabling):
                continue
            loaded.append((info, plugin))
        return loaded

    def _skip_disabled(self, info: PluginInfo, disabling: _DisableList) -> bool:
        """Record ``info`` as disabled if a disabled-plugin spec names it (then skip loading it)."""
        if not disabling.names(info):
            return False
        self.plugins.append(
            dataclasses.replace(info, status="disabled", disabled_by=disabling.source)
        )
        return True

    def _report_unused(self, disabling: _DisableList) -> None:
        """A disable spec that matched nothing is most likely a typo: say so, and which exist."""
        for spec in disabling.unused():
            self._load_problems.append(
                PluginProblem(
                    spec,
                    f"{disabling.source} names {spec!r}, which matches no plugin, so nothing was "
                    f"disabled by it; {_known_plugins(self.plugins)}",
                )
            )

    def _register_plugin(
        self, manager: pluggy.PluginManager, info: PluginInfo, plugin: object
    ) -> PluginInfo:
        problem = _api_problem(info, plugin)
        if problem is not None:
            self._load_problems.append(problem)
            return dataclasses.replace(info, status="failed")
        try:
            manager.register(plugin, name=f"{info.name}:{id(plugin)}")
        except Exception as exc:  # e.g. a misspelled or mistyped hook
            self._load_problems.append(
                PluginProblem(info.name, f"rejected by pluggy: {exc}", info.distribution)
            )
            return dataclasses.replace(info, status="failed")
        # Call this plugin's implementations one by one, so each record knows its plugin and one
        # failing hook does not hide the others.
        hooks = []
        for kind, hook_name in _HOOK_OF_KIND.items():
            caller = getattr(manager.hook, hook_name)
            for implementation in caller.get_hookimpls():
                if implementation.plugin is not plugin:
                    continue
                hooks.append(hook_name)
                register = self._make_register(kind, info)
                try:
                    implementation.function(register=register)
                except Exception as exc:
                    self._load_problems.append(
                        PluginProblem(info.name, f"{hook_name} raised {exc!r}", info.distribution)
                    )
        unknown = [
            attribute
            for attribute in dir(plugin)
            if manager.parse_hookimpl_opts(plugin, attribute) is not None
            and attribute not in _HOOK_OF_KIND.values()
        ]
        for attribute in unknown:
            self._load_problems.append(
                PluginProblem(
                    info.name, f"defines {attribute!r}, which is not a coldkit hook",
                    info.distribution,
                )
            )
        return dataclasses.replace(info, hooks=tuple(dict.fromkeys(hooks)))

    def _make_register(self, kind: Kind, info: PluginInfo) -> Callable[..., None]:
        def register(
            component: Any,
            name: str | None = None,
            description: str | None = None,
            params: type[BaseModel] | None = None,
        ) -> None:
            if isinstance(component, str):
                problem = _lazy_problem(kind, component, name, params)
                if problem is not None:
                    self._load_problems.append(
                        PluginProblem(info.name, problem, info.distribution)
                    )
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
            )
            taken = next(
                (
                    other
                    for other in self.registered
                    if (other.kind, other.name) == (kind, record.name)
                    and _qualifier(other) == _qualifier(record)
                ),
                None,
            )
            if taken is not None:  # the same name twice from one package: even qualified, ambiguous
                self._load_problems.append(
                    PluginProblem(
                        info.name,
                        f"{kind} name {record.name!r} is already registered by plugin "
                        f"{taken.plugin!r} of the same package; this registration was ignored",
                        info.distribution,
                    )
                )
                return
            self.registered.append(record)

        return register

    def _rebuild(self) -> None:
        """Work out which record each bare name means, and the clashes, from ``registered``."""
        groups: dict[tuple[Kind, str], list[PluginRecord]] = {}
        for record in self.registered:
            groups.setdefault((record.kind, record.name), []).append(record)
        self.records = {kind: {} for kind in KINDS}
        self.clashes = {kind: {} for kind in KINDS}
        derived: list[PluginProblem] = []
        for (kind, name), group in groups.items():
            builtin = next((record for record in group if _is_builtin(record)), None)
            if builtin is not None:
                self.records[kind][name] = builtin
                for record in group:
                    if record is not builtin:
                        derived.append(
                            PluginProblem(
                                record.plugin,
                                f"{kind} name {name!r} is already registered by the built-in "
                                f"plugin {builtin.plugin!r} ({BUILTIN_DISTRIBUTION}), which keeps "
                                f"it; a config reaches this registration only by its qualified "
                                f"name {record.qualified_name!r}",
                                record.distribution,
                            )
                        )
            elif len(group) == 1:
                self.records[kind][name] = group[0]
            else:
                self.clashes[kind][name] = tuple(group)
                for record in group:
                    others = " and ".join(
                        _package(other) for other in group if other is not record
                    )
                    choices = " or ".join(repr(other.qualified_name) for other in group)
                    derived.append(
                        PluginProblem(
                            record.plugin,
                            f"{kind} name {name!r} is also registered by {others}, so a bare "
                            f"{name!r} in a config is an error; write {choices}",
                            record.distribution,
                        )
                    )
        self.problems = [*self._load_problems, *derived]

    def without(self, names: Iterable[str], disabled_by: str) -> "Registry":
        """A copy with the named plugins disabled: their registrations and problems dropped.

        ``names`` are entry-point names, ``package:entry`` or package (distribution) names. A
        name that matches no plugin raises :class:`PluginError`. The plugins were already
        imported; unlike ``COLDKIT_DISABLE_PLUGINS``, this only forgets what they registered.
        """
        specs = [spec.strip() for spec in names if spec.strip()]
        unknown = [spec for spec in specs if not any(_matches(spec, p) for p in self.plugins)]
        if unknown:
            raise PluginError(
                f"{', '.join(repr(spec) for spec in unknown)} matches no plugin, so it cannot be "
                f"disabled; {_known_plugins(self.plugins)}. Use a plugin name as "
                "`coldkit plugins` shows it, package:plugin, or a package name, or remove it."
            )
        plugins, dropped = [], []
        for info in self.plugins:
            if info.status != "disabled" and any(_matches(spec, info) for spec in specs):
                info = dataclasses.replace(info, status="disabled", disabled_by=disabled_by)
                dropped.append(info)
            plugins.append(info)
        registry = Registry(
            registered=[r for r in self.registered if not any(p.owns(r) for p in dropped)],
            plugins=plugins,
            trace=self.trace,
            notify=self.notify,
            _load_problems=[p for p in self._load_problems if not any(d.owns(p) for d in dropped)],
        )
        registry._rebuild()
        if dropped and self.notify is not None:
            self.notify(
                f"plugins disabled by {disabled_by}: "
                + ", ".join(info.describe() for info in dropped)
            )
        return registry

    @property
    def disabled(self) -> list[PluginInfo]:
        """Every plugin that was disabled, by the environment variable or by :meth:`without`."""
        return [info for info in self.plugins if info.status == "disabled"]

    def names(self, kind: Kind) -> list[str]:
        """Sorted bare names of every registered component of ``kind`` (ambiguous ones too)."""
        return sorted(set(self.records[kind]) | set(self.clashes[kind]))

    def all_records(self, kind: Kind) -> list[PluginRecord]:
        """Every registration of ``kind``, clashing and shadowed ones too, sorted by name."""
        order = {id(record): index for index, record in enumerate(self.registered)}
        return sorted(
            (record for record in self.registered if record.kind == kind),
            key=lambda record: (record.name, order[id(record)]),
        )

    def config_name(self, record: PluginRecord) -> str:
        """The name a config uses for ``record``: its bare name if that means it, else qualified."""
        if self.records[record.kind].get(record.name) is record:
            return record.name
        return record.qualified_name

    def get(self, kind: Kind, name: str) -> PluginRecord:
        """Look up a component by bare or qualified (``package:name``) name.

        Raises :class:`PluginError` for an unknown name (listing the valid ones) and for a bare
        name that two third-party packages register (naming both, and how to choose one).
        """
        record = self._lookup(kind, name)
        if self.trace is not None:
            self.trace(f"plugin: {kind} {name!r} served by {record.served_by}")
        return record

    def _lookup(self, kind: Kind, name: str) -> PluginRecord:
        record = self.records[kind].get(name)
        if record is not None:
            return record
        if name in self.clashes[kind]:
            raise PluginError(self._clash_message(kind, name, self.clashes[kind][name]))
        package, colon, bare = name.partition(":")
        if colon:
            wanted = normalise_distribution(package)
            for record in self.registered:
                if record.kind == kind and record.name == bare and _qualifier(record) == wanted:
                    return record
            elsewhere = [
                r.qualified_name for r in self.registered if r.kind == kind and r.name == bare
            ]
            if elsewhere:
                raise PluginError(
                    f"Unknown {kind} {name!r}: package {package!r} registers no {kind} {bare!r}; "
                    f"it is registered as {' and '.join(repr(q) for q in elsewhere)}. Fix the "
                    f"package name before the colon (a distribution name `coldkit plugins` shows)."
                    f"{self._hint()}"
                )
        valid = ", ".join(self.names(kind)) or "(none registered)"
        raise PluginError(
            f"Unknown {kind} {name!r}. Registered {kind}s: {valid}. Fix the name in your "
            f"config, or install the package that provides it.{self._hint()}"
        )

    def _hint(self) -> str:
        hint = ""
        if self.problems:
            hint += " Some plugins had problems; run `coldkit plugins` to see which."
        if self.disabled:
            hint += " Disabled plugins: " + ", ".join(
                f"{info.describe()} by {info.disabled_by}" for info in self.disabled
            ) + "."
        return hint

    @staticmethod
    def _clash_message(kind: Kind, name: str, group: tuple[PluginRecord, ...]) -> str:
        packages = [_package(record) for record in group]
        listed = ", ".join(packages[:-1]) + " and " + packages[-1]
        choices = " or ".join(f'name = "{record.qualified_name}"' for record in group)
        plugins = ", ".join(
            f"{record.distribution}:{record.plugin}" if record.distribution else record.plugin
            for record in group
        )
        return (
            f"{kind} name {name!r} is ambiguous: {len(group)} packages register it, {listed}. "
            f"Choose one with its qualified name package:name, e.g. {choices}; or disable the "
            f"plugins you do not want (disable_plugins = [...] in the config or "
            f"{DISABLE_ENV}, with one of {plugins})."
        )


def _lazy_problem(
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


def _api_problem(info: PluginInfo, plugin: object) -> PluginProblem | None:
    """A problem if the plugin module declares a newer plugin API than this coldkit's."""
    needed = getattr(plugin, hookspecs.PLUGIN_API_ATTRIBUTE, 1)
    if isinstance(needed, int) and not isinstance(needed, bool) and (
        needed <= hookspecs.PLUGIN_API_VERSION
    ):
        return None
    return PluginProblem(
        info.name,
        f"needs coldkit plugin API {needed!r} ({hookspecs.PLUGIN_API_ATTRIBUTE}); this coldkit "
        f"has API {hookspecs.PLUGIN_API_VERSION}: upgrade coldkit, or install a version of the "
        "plugin made for this one",
        info.distribution,
    )


def parse_plugin_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]


def trace_requested() -> bool:
    """Whether ``COLDKIT_TRACE_PLUGINS`` asks for the lookup trace."""
    value = os.environ.get(TRACE_ENV, "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def _stderr_line(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _matches(spec: str, info: PluginInfo) -> bool:
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


def _known_plugins(plugins: list[PluginInfo]) -> str:
    names = ", ".join(sorted({info.label for info in plugins})) or "(none)"
    return f"plugins: {names}"


def _describe(name: str, distribution: str | None, version: str | None) -> str:
    if distribution is None:
        return f"{name} (registered directly)"
    return f"{name} ({distribution} {version})" if version else f"{name} ({distribution})"


def _package(record: PluginRecord) -> str:
    if record.distribution is None:
        return f"plugin {record.plugin!r} (registered directly)"
    version = f" {record.version}" if record.version else ""
    return f"{record.distribution}{version} (plugin {record.plugin!r})"


def _qualifier(record: PluginRecord) -> str:
    return normalise_distribution(record.distribution or record.plugin)


def _is_builtin(record: PluginRecord) -> bool:
    return record.distribution is not None and (
        normalise_distribution(record.distribution) == BUILTIN_DISTRIBUTION
    )


def _builtin_first(entry_point: metadata.EntryPoint) -> tuple[int, str]:
    dist = entry_point.dist
    is_builtin = dist is not None and dist.metadata["Name"] == BUILTIN_DISTRIBUTION
    return (0 if is_builtin else 1, entry_point.name)
