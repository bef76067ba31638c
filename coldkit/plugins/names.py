"""Names: which record a bare or qualified (``package:name``) name means, which bare names clash
between third-party packages, and the wording of every message about them.

A bare name means the built-in (distribution ``coldkit``) where there is one; otherwise the one
package that registers it. When two third-party packages register one name, the bare name is
ambiguous and a lookup raises a :class:`PluginError` naming both packages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coldkit.errors import PluginError
from coldkit.plugins.building import KINDS, Kind
from coldkit.plugins.discovery import DISABLE_ENV
from coldkit.plugins.records import (
    BUILTIN_DISTRIBUTION,
    PluginProblem,
    PluginRecord,
    normalise_distribution,
    qualifier,
)


@dataclass
class Names:
    """The bare names of one set of registrations: ``records[kind][name]`` for the names that
    resolve, ``clashes[kind][name]`` for those two or more third-party packages register, and
    the problems the shadowed and clashing registrations raise."""

    records: dict[Kind, dict[str, PluginRecord]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    clashes: dict[Kind, dict[str, tuple[PluginRecord, ...]]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    problems: list[PluginProblem] = field(default_factory=list)


def resolve_names(registered: list[PluginRecord]) -> Names:
    """Work out which record each bare name means, and the clashes, from ``registered``."""
    groups: dict[tuple[Kind, str], list[PluginRecord]] = {}
    for record in registered:
        groups.setdefault((record.kind, record.name), []).append(record)
    names = Names()
    for (kind, name), group in groups.items():
        builtin = next((record for record in group if record.is_builtin), None)
        if builtin is not None:
            names.records[kind][name] = builtin
            names.problems += [
                _shadowed(record, builtin) for record in group if record is not builtin
            ]
        elif len(group) == 1:
            names.records[kind][name] = group[0]
        else:
            names.clashes[kind][name] = tuple(group)
            names.problems += [_clashing(record, group) for record in group]
    return names


def _shadowed(record: PluginRecord, builtin: PluginRecord) -> PluginProblem:
    return PluginProblem(
        record.plugin,
        f"{record.kind} name {record.name!r} is already registered by the built-in plugin "
        f"{builtin.plugin!r} ({BUILTIN_DISTRIBUTION}), which keeps it; a config reaches this "
        f"registration only by its qualified name {record.qualified_name!r}",
        record.distribution,
    )


def _clashing(record: PluginRecord, group: list[PluginRecord]) -> PluginProblem:
    others = " and ".join(package_of(other) for other in group if other is not record)
    choices = " or ".join(repr(other.qualified_name) for other in group)
    return PluginProblem(
        record.plugin,
        f"{record.kind} name {record.name!r} is also registered by {others}, so a bare "
        f"{record.name!r} in a config is an error; write {choices}",
        record.distribution,
    )


def find_qualified(
    registered: list[PluginRecord], kind: Kind, name: str, hint: str
) -> PluginRecord | None:
    """The record a qualified ``package:name`` selects; None for a bare name. Raises
    :class:`PluginError` when the package registers no such name but another package does."""
    package, colon, bare = name.partition(":")
    if not colon:
        return None
    wanted = normalise_distribution(package)
    for record in registered:
        if record.kind == kind and record.name == bare and qualifier(record) == wanted:
            return record
    elsewhere = [r.qualified_name for r in registered if r.kind == kind and r.name == bare]
    if elsewhere:
        raise PluginError(
            f"Unknown {kind} {name!r}: package {package!r} registers no {kind} {bare!r}; "
            f"it is registered as {' and '.join(repr(q) for q in elsewhere)}. Fix the "
            f"package name before the colon (a distribution name `coldkit plugins` shows)."
            f"{hint}"
        )
    return None


def unknown_name(kind: Kind, name: str, valid: list[str], hint: str) -> PluginError:
    """The error for a name no plugin registers, listing the valid ones."""
    listed = ", ".join(valid) or "(none registered)"
    return PluginError(
        f"Unknown {kind} {name!r}. Registered {kind}s: {listed}. Fix the name in your "
        f"config, or install the package that provides it.{hint}"
    )


def clash_message(kind: Kind, name: str, group: tuple[PluginRecord, ...]) -> str:
    """Why a bare name is ambiguous, and how to choose one of its packages."""
    packages = [package_of(record) for record in group]
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


def package_of(record: PluginRecord) -> str:
    """``package version (plugin 'entry')``, or the plugin alone if registered directly."""
    if record.distribution is None:
        return f"plugin {record.plugin!r} (registered directly)"
    version = f" {record.version}" if record.version else ""
    return f"{record.distribution}{version} (plugin {record.plugin!r})"
