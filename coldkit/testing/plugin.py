"""The whole-distribution check: :func:`check_plugin` runs each kind's check (one entry of a table
per kind) on everything an installed distribution registers."""

from __future__ import annotations

import importlib.metadata as metadata
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from pydantic import BaseModel, ValidationError

from coldkit.errors import ColdkitError, ConfigError, PluginError
from coldkit.plugins.compat import RestorerContext, as_build_context
from coldkit.protocols import BuildContext, Degradation
from coldkit.testing._common import build_context
from coldkit.testing.dataset import check_dataset
from coldkit.testing.degradation import check_degradation
from coldkit.testing.prior import check_prior
from coldkit.testing.restorer import DEFAULT_RESTORER_CONTEXT, check_restorer
from coldkit.testing.sampler import builtin_degradations, check_sampler

if TYPE_CHECKING:
    from coldkit.plugins import PluginRecord


@dataclass
class PluginReport:
    """What :func:`check_plugin` checked for one distribution.

    ``checked`` maps ``"kind name"`` (e.g. ``"degradation swirl"``) to the checks it passed;
    ``skipped`` maps ``"kind name"`` to why it was not checked.
    """

    distribution: str
    version: str | None
    checked: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"{self.distribution} {self.version or ''}".rstrip()]
        lines += [f"  ok       {key}: {', '.join(passed)}" for key, passed in self.checked.items()]
        lines += [f"  skipped  {key}: {why}" for key, why in self.skipped.items()]
        return "\n".join(lines)


def check_plugin(
    distribution: str,
    *,
    params: dict[str, dict] | None = None,
    sampler_kwargs: dict[str, dict] | None = None,
    skip: Sequence[str] = (),
    context: BuildContext | RestorerContext | None = None,
    check_speed: bool = True,
    cost_factor: float = 3.0,
) -> PluginReport:
    """Run the right contract check on everything the installed ``distribution`` registers.

    One line in a plugin's test suite: ``def test_my_plugins(): check_plugin("my-dist")``.

    Components are found through :meth:`coldkit.plugins.Registry.discover` (records whose
    ``distribution`` is this one; names compared as pip does, so ``my_dist`` finds ``my-dist``)
    and built from their parameter model's defaults:

    * degradation: :func:`check_degradation` on ``component(Params())``;
    * restorer: :func:`check_restorer` on ``component(Params(), context)`` (``context`` defaults
      to :data:`DEFAULT_RESTORER_CONTEXT`);
    * sampler: :func:`check_sampler` over the built-in degradations and the distribution's own;
    * dataset: :func:`check_dataset` on ``component(Params())``;
    * prior: :func:`check_prior` on ``component(Params())``.

    Old- and new-style components alike: one that asks for the build context (a keyword-only
    ``context``, plugin API 2) gets a :class:`~coldkit.protocols.BuildContext` with ``context``'s
    image size, channels and T, split ``train``, and a data accessor over the installed plugins;
    a component whose check cannot read its data here (a missing dataset) is skipped, saying so.

    ``params`` maps a component's name (or ``"kind:name"`` where a name is used by two kinds) to
    parameters used instead of the defaults; a component whose parameter model has required
    fields and no entry there is skipped, and so is a dataset whose ``load`` raises
    :class:`coldkit.errors.ColdkitError` (its data is not available here). ``sampler_kwargs``
    maps a sampler's name to keyword arguments for its calls (e.g. ``{"noise": 0.0}``); ``skip``
    lists names (or ``"kind:name"``) not to check. ``check_speed`` and ``cost_factor`` go to
    :func:`check_degradation`.

    Raises :class:`AssertionError` if the distribution is not installed, registers nothing, had a
    plugin that failed to load or a name that was refused (e.g. already taken by another
    package), if no component could be checked, or on the first component that breaks its
    contract (the message names it). Returns a :class:`PluginReport`.
    """
    dist, records = _registered_records(distribution)
    run = _Run(
        distribution=distribution,
        report=PluginReport(distribution=dist.metadata["Name"], version=dist.version),
        params=params or {},
        sampler_kwargs=sampler_kwargs or {},
        context=DEFAULT_RESTORER_CONTEXT if context is None else as_build_context(context),
        check_speed=check_speed,
        cost_factor=cost_factor,
    )
    run.build_context = _build_context(run.context)
    _check_records(records, skip, run)
    assert run.report.checked, (
        f"distribution {distribution!r}: nothing could be checked ({run.report})"
    )
    return run.report


# ------------------------------------------------------------------------------ one check run
@dataclass
class _Run:
    """The settings of one :func:`check_plugin` call and what it has found so far."""

    distribution: str
    report: PluginReport
    params: Mapping[str, dict]
    sampler_kwargs: Mapping[str, dict]
    context: BuildContext
    check_speed: bool
    cost_factor: float
    build_context: BuildContext = field(default_factory=BuildContext)
    own_degradations: list[Degradation] = field(default_factory=list)  # checked so far
    degradations: list[Degradation] = field(default_factory=list)  # what samplers run on


def _build_context(context: BuildContext) -> BuildContext:
    """What check_plugin tells a component that asks: the restorer context's shape, split train,
    and registered datasets read through a discovery (see :func:`build_context`)."""
    return build_context(
        image_size=context.image_size, channels=context.channels, steps=context.steps
    )


class _Skipped(Exception):
    """A component that cannot be checked here; the message says why (for the report)."""


def _lookup(mapping: Mapping[str, Any], record: PluginRecord) -> Any:
    return mapping.get(f"{record.kind}:{record.name}", mapping.get(record.name))


# ------------------------------------------------------------------------------ the kinds
def _kind_and_name(record: PluginRecord) -> str:
    return f"{record.kind} {record.name}"


@dataclass(frozen=True)
class _KindCheck:
    """How :func:`check_plugin` checks the components of one kind.

    ``build(record, params, run)`` makes what the check takes from the record and its validated
    ``params`` (None where ``validates`` is false); ``check(component, record, run)`` runs the
    contract and returns the names of the checks passed; ``label(record)`` is the component's key
    in the report. ``deferred`` kinds are checked after all the others.
    """

    build: Callable[[PluginRecord, BaseModel | None, _Run], object]
    check: Callable[[Any, PluginRecord, _Run], Sequence[str]]
    validates: bool = True
    deferred: bool = False
    label: Callable[[PluginRecord], str] = _kind_and_name


def _check_own_degradation(degradation: Degradation, record: PluginRecord, run: _Run) -> list[str]:
    with _data_or_skip():
        passed = check_degradation(
            degradation, check_speed=run.check_speed, cost_factor=run.cost_factor
        ).passed
    run.own_degradations.append(degradation)  # the samplers are checked on it too
    return passed


@contextmanager
def _data_or_skip() -> Iterator[None]:
    """A check that stops because data it reads is missing here is skipped, saying why."""
    try:
        yield
    except ConfigError as exc:  # e.g. a prior that reads its run's degradation
        raise _Skipped(f"it needs a run or parameters to be checked: {exc}; pass "
                       "params={'kind:name': {...}}") from exc
    except ColdkitError as exc:
        raise _Skipped(f"its data is not available here: {exc}") from exc


def _check_sampler(sampler: Callable, record: PluginRecord, run: _Run) -> list[str]:
    kwargs = _lookup(run.sampler_kwargs, record)
    return check_sampler(sampler, run.degradations, kwargs=kwargs, name=record.name)


def _check_available_dataset(dataset: object, record: PluginRecord, run: _Run) -> list[str]:
    with _data_or_skip():
        return check_dataset(dataset)


def _prior_context(run: _Run) -> BuildContext:
    """A prior's context carries the run's degradation: the package's own first one, if any."""
    degradation = run.own_degradations[0] if run.own_degradations else None
    return replace(run.build_context, degradation=degradation)


def _check_available_prior(factory: Callable, record: PluginRecord, run: _Run) -> list[str]:
    with _data_or_skip():
        return check_prior(factory)


#: One entry per kind: how check_plugin builds it for checking, and which check it runs.
_KIND_CHECKS: dict[str, _KindCheck] = {
    "degradation": _KindCheck(
        build=lambda record, params, run: record.build(params, run.build_context),
        check=_check_own_degradation,
    ),
    "restorer": _KindCheck(
        build=lambda record, params, run: record.build(params, run.build_context),
        check=lambda restorer, record, run: check_restorer(restorer, run.context),
    ),
    "sampler": _KindCheck(  # the registered function; checked on the degradations, so last
        build=lambda record, params, run: record.build(None, run.build_context),
        check=_check_sampler,
        validates=False,
        deferred=True,
    ),
    "dataset": _KindCheck(
        build=lambda record, params, run: record.build(params, run.build_context),
        check=_check_available_dataset,
    ),
    "prior": _KindCheck(  # check_prior takes a factory: it builds a fresh prior twice
        build=lambda record, params, run: lambda: record.build(params, _prior_context(run)),
        check=_check_available_prior,
        deferred=True,  # after the package's degradations, which its priors are given
    ),
}


# ------------------------------------------------------------------------------ the steps
def _registered_records(distribution: str) -> tuple[metadata.Distribution, list[PluginRecord]]:
    """The installed distribution and the records it registers; fails if it has none, or if one
    of its plugins had a problem."""
    from coldkit.plugins import KINDS, Registry, normalise_distribution

    wanted = normalise_distribution(distribution)
    dist, entry_points = _entry_points(distribution)
    registry = Registry.discover()
    labels = {ep.name for ep in entry_points} | {
        f"{ep.name} ({dist.metadata['Name']})" for ep in entry_points
    }
    problems = [f"{p.plugin}: {p.message}" for p in registry.problems if p.plugin in labels]
    assert not problems, (
        f"distribution {distribution!r}: plugin problems: " + "; ".join(problems)
    )
    records = [
        record
        for kind in KINDS
        for record in registry.records[kind].values()
        if record.distribution is not None and normalise_distribution(record.distribution) == wanted
    ]
    assert records, (
        f"distribution {distribution!r} registers nothing: its entry points "
        f"({', '.join(ep.name for ep in entry_points)}) implement no coldkit hook that registers "
        "a component (see coldkit.hookspecs)"
    )
    return dist, records


def _entry_points(distribution: str) -> tuple[metadata.Distribution, list[metadata.EntryPoint]]:
    """The installed distribution and its entry points in coldkit's group (there must be some)."""
    from coldkit.plugins import ENTRY_POINT_GROUP

    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise AssertionError(
            f"distribution {distribution!r} is not installed in this environment "
            "(pip install -e . in the plugin's folder, then run the tests)"
        ) from None
    entry_points = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    assert entry_points, (
        f"distribution {distribution!r} declares no entry point in group {ENTRY_POINT_GROUP!r}; "
        f"add [project.entry-points.{ENTRY_POINT_GROUP}] to its pyproject.toml and reinstall it"
    )
    return dist, entry_points


def _check_record(record: PluginRecord, run: _Run) -> None:
    """Build ``record``'s component as its kind says, run its check and enter the result (or why
    it was skipped) in the report."""
    kind = _KIND_CHECKS[record.kind]
    key = kind.label(record)
    try:
        registration = _check_registered_path(record, key)
        params = _validated(record, run, key) if kind.validates else None
        component = _build(kind, record, params, run, key)
        result = _run_check(kind, component, record, run, key)
    except _Skipped as skipped:
        run.report.skipped[key] = str(skipped)
        return
    run.report.checked[key] = [*registration, *result]


def _check_registered_path(record: PluginRecord, key: str) -> list[str]:
    """A component registered by path imports, and its ``Params`` (if it has one) is the model
    it was registered with, so configs are validated against the schema it is built from."""
    if not record.is_lazy:
        return []
    try:
        component = record.component
    except PluginError as exc:
        raise AssertionError(f"{key}: {exc}") from None
    own = getattr(component, "Params", None)
    assert own is None or own is record.params_model, (
        f"{key}: registered by path {record.target!r} with params={record.params_model.__name__}"
        f", but the component's Params is {own.__name__}: register it with the same model"
    )
    for attribute in ("name", "description"):
        stated = getattr(component, attribute, None)
        registered = getattr(record, attribute)
        assert not isinstance(stated, str) or stated == registered, (
            f"{key}: registered by path {record.target!r} as {attribute} {registered!r}, but the "
            f"component's own {attribute} is {stated!r}: state it once, in a coldkit.Listing the "
            f"registration and the class both read (docs/plugins.md)"
        )
    return ["registered by path"]


def _check_records(records: list[PluginRecord], skip: Sequence[str], run: _Run) -> None:
    """Check every record not in ``skip``, kind by kind (deferred kinds last), name by name."""
    from coldkit.plugins import KINDS

    deferred: list[PluginRecord] = []
    for record in sorted(records, key=lambda r: (KINDS.index(r.kind), r.name)):
        kind = _KIND_CHECKS[record.kind]
        if f"{record.kind}:{record.name}" in skip or record.name in skip:
            run.report.skipped[kind.label(record)] = "skipped as asked"
        elif kind.deferred:
            deferred.append(record)
        else:
            _check_record(record, run)
    if deferred:
        _check_deferred(deferred, run)


def _check_deferred(records: list[PluginRecord], run: _Run) -> None:
    """Samplers and priors, after the rest: the samplers over the built-in degradations and the
    distribution's own, the priors with its first degradation in their context."""
    degradations = builtin_degradations()
    names = {d.name for d in degradations}
    run.degradations = degradations + [d for d in run.own_degradations if d.name not in names]
    for record in records:
        _check_record(record, run)


def _validated(record: PluginRecord, run: _Run, key: str) -> BaseModel:
    """The record's parameters (given in ``params``, or the defaults); skipped if some are required
    and none were given."""
    given = _lookup(run.params, record)
    try:
        return record.params_model.model_validate(given or {})
    except ValidationError as exc:
        required = [
            str(error["loc"][0]) for error in exc.errors() if error["type"] == "missing"
        ]
        assert required and given is None, (
            f"{key}: its parameters are invalid: {exc}"
        )
        raise _Skipped(
            f"no default for {', '.join(required)}; pass params={{{record.name!r}: {{...}}}}"
        ) from None


def _build(
    kind: _KindCheck, record: PluginRecord, params: BaseModel | None, run: _Run, key: str
) -> object:
    try:
        return kind.build(record, params, run)
    except Exception as exc:
        raise AssertionError(
            f"{key} ({run.distribution}): building it from {params!r} raised {exc!r}"
        ) from exc


def _run_check(
    kind: _KindCheck, component: object, record: PluginRecord, run: _Run, key: str
) -> Sequence[str]:
    try:
        return kind.check(component, record, run)
    except (AssertionError, _Skipped):
        raise
    except Exception as exc:
        raise AssertionError(f"{key} ({run.distribution}): its check raised {exc!r}") from exc
