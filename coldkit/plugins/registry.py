"""The registry: registered components by kind and name, the plugins found, and lookup."""

from __future__ import annotations

import dataclasses
import importlib.metadata as metadata
import os
import sys
from dataclasses import dataclass, field
from typing import Iterable

from coldkit.errors import PluginError
from coldkit.plugins.building import KINDS, Kind
from coldkit.plugins.discovery import known_plugins, load_plugins, matches
from coldkit.plugins.names import (
    clash_message,
    find_qualified,
    resolve_names,
    unknown_name,
)
from coldkit.plugins.records import PluginInfo, PluginProblem, PluginRecord
from coldkit.runtime.log import Notify

#: Set to 1 to log to stderr which plugin serves each name that is looked up.
TRACE_ENV = "COLDKIT_TRACE_PLUGINS"


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
        if trace is None and trace_requested():
            trace = _stderr_line
        loading = load_plugins(entry_points, extra_plugins, disabled)
        registry = cls(
            registered=loading.registered,
            plugins=loading.plugins,
            trace=trace,
            _load_problems=loading.problems,
        )
        registry._rebuild()
        return registry

    def _rebuild(self) -> None:
        """Work out which record each bare name means, and the clashes, from ``registered``."""
        names = resolve_names(self.registered)
        self.records, self.clashes = names.records, names.clashes
        self.problems = [*self._load_problems, *names.problems]

    def without(self, names: Iterable[str], disabled_by: str) -> "Registry":
        """A copy with the named plugins disabled: their registrations and problems dropped.

        ``names`` are entry-point names, ``package:entry`` or package (distribution) names. A
        name that matches no plugin raises :class:`PluginError`. The plugins were already
        imported; unlike ``COLDKIT_DISABLE_PLUGINS``, this only forgets what they registered.
        """
        specs = [spec.strip() for spec in names if spec.strip()]
        unknown = [spec for spec in specs if not any(matches(spec, p) for p in self.plugins)]
        if unknown:
            raise PluginError(
                f"{', '.join(repr(spec) for spec in unknown)} matches no plugin, so it cannot be "
                f"disabled; {known_plugins(self.plugins)}. Use a plugin name as "
                "`coldkit plugins` shows it, package:plugin, or a package name, or remove it."
            )
        plugins, dropped = [], []
        for info in self.plugins:
            if info.status != "disabled" and any(matches(spec, info) for spec in specs):
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
            raise PluginError(clash_message(kind, name, self.clashes[kind][name]))
        record = find_qualified(self.registered, kind, name, self._hint())
        if record is not None:
            return record
        raise unknown_name(kind, name, self.names(kind), self._hint())

    def _hint(self) -> str:
        hint = ""
        if self.problems:
            hint += " Some plugins had problems; run `coldkit plugins` to see which."
        if self.disabled:
            hint += " Disabled plugins: " + ", ".join(
                f"{info.describe()} by {info.disabled_by}" for info in self.disabled
            ) + "."
        return hint


def trace_requested() -> bool:
    """Whether ``COLDKIT_TRACE_PLUGINS`` asks for the lookup trace."""
    value = os.environ.get(TRACE_ENV, "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def _stderr_line(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
