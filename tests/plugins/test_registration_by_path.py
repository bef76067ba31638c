"""Components registered by path ("module:attribute", plugin API 3): listed without being
imported, imported when first built, refused with a reason when the registration is incomplete,
and an import that fails at build time is an error naming the package."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldkit.cli import app
from coldkit.errors import PluginError
from coldkit.plugins import KINDS, Registry
from coldkit.testing import check_plugin
from tests.conftest import install_fake_distribution

runner = CliRunner()

ENTRY = '''
from pydantic import BaseModel, ConfigDict, Field
from coldkit import hookimpl

COLDKIT_PLUGIN_API = 3


class DimParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(4, ge=1, description="T")


@hookimpl
def register_degradations(register):
    register("lazy_dim_impl:Dim", name="dim", description="darken linearly in t",
             params=DimParams)
'''

IMPLEMENTATION = '''
import torch
from lazy_dim_entry import DimParams


class Dim:
    name = "dim"
    description = "darken linearly in t"
    Params = DimParams

    def __init__(self, params=None):
        self.params = params or DimParams()
        self.steps = self.params.steps

    def sample_params(self, x0, generator=None):
        return {}

    def degrade(self, x0, t, params=None):
        return x0 * (1 - t.view(-1, 1, 1, 1).to(x0.dtype) / self.steps)
'''


def _install(site: Path, implementation: str = IMPLEMENTATION) -> None:
    install_fake_distribution(
        site, "coldkit-lazy-dim", "0.1.0", {"dim": "lazy_dim_entry"},
        {"lazy_dim_entry": ENTRY, "lazy_dim_impl": implementation},
    )


def _forget_modules() -> None:
    for module in ("lazy_dim_entry", "lazy_dim_impl"):
        sys.modules.pop(module, None)


@pytest.fixture(autouse=True)
def _fresh_modules():
    _forget_modules()
    yield
    _forget_modules()


def test_listed_without_importing_then_built_on_first_use(site: Path):
    _install(site)
    registry = Registry.discover()
    record = registry.get("degradation", "dim")
    assert record.is_lazy and record.target == "lazy_dim_impl:Dim"
    assert "lazy_dim_impl" not in sys.modules  # listing read the name, text and schema only
    result = runner.invoke(app, ["list-degradations", "--json"])
    row = next(row for row in json.loads(result.output) if row["name"] == "dim")
    assert row["description"] == "darken linearly in t"
    assert row["parameters"]["steps"]["description"] == "T"
    assert "lazy_dim_impl" not in sys.modules

    degradation = record.build({"steps": 2})
    assert "lazy_dim_impl" in sys.modules
    assert degradation.steps == 2 and type(degradation).__name__ == "Dim"


def test_the_conformance_kit_checks_a_path_registration(site: Path):
    _install(site)
    report = check_plugin("coldkit-lazy-dim", check_speed=False)
    assert "registered by path" in report.checked["degradation dim"]


def test_the_kit_catches_a_params_model_that_differs_from_the_components(site: Path):
    other = IMPLEMENTATION.replace(
        "from lazy_dim_entry import DimParams",
        "from lazy_dim_entry import DimParams as _Registered\n"
        "class DimParams(_Registered):\n    pass",
    )
    _install(site, other)
    with pytest.raises(AssertionError, match="register it with the same model"):
        check_plugin("coldkit-lazy-dim", check_speed=False)


def test_the_kit_catches_a_description_written_twice_that_drifted(site: Path):
    # Stated on the class and at registration, the two texts drift apart; the kit says so.
    _install(site, IMPLEMENTATION.replace(
        'description = "darken linearly in t"', 'description = "darken in t"',
    ))
    with pytest.raises(AssertionError, match="state it once, in a coldkit.Listing"):
        check_plugin("coldkit-lazy-dim", check_speed=False)


def test_a_listing_states_a_component_once_for_registration_and_class():
    from coldkit import Listing

    seen: list[tuple] = []
    listing = Listing(name="dim", description="darken", target="lazy_dim_impl:Dim")
    listing.register(lambda *args, **kwargs: seen.append((args, kwargs)))
    assert seen == [(("lazy_dim_impl:Dim",), {"name": "dim", "description": "darken", "params": None})]


def test_a_path_that_does_not_import_is_an_error_naming_the_package(site: Path):
    _install(site, "raise ImportError('kornia is not installed')\n")
    record = Registry.discover().get("degradation", "dim")  # listing still works
    with pytest.raises(PluginError) as error:
        record.build()
    message = str(error.value)
    assert "lazy_dim_impl:Dim" in message and "kornia is not installed" in message
    assert "coldkit-lazy-dim" in message


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        ('register("not a path", name="x", params=P)', "must be written"),
        ('register("mod:Thing", params=P)', "without name="),
        ('register("mod:Thing", name="x")', "without params="),
    ],
)
def test_an_incomplete_path_registration_is_refused_with_a_reason(call: str, reason: str):
    namespace: dict = {}
    exec(  # a plugin module written inline: its hook makes the registration under test
        "from pydantic import BaseModel\nfrom coldkit import hookimpl\n"
        "class P(BaseModel):\n    pass\n"
        f"@hookimpl\ndef register_degradations(register):\n    {call}\n",
        namespace,
    )
    plugin = type("Plugin", (), {"register_degradations": staticmethod(
        namespace["register_degradations"])})
    registry = Registry.discover(entry_points=[], extra_plugins=[("inline", plugin)])
    assert registry.names("degradation") == []
    assert any(reason in problem.message for problem in registry.problems)


def test_a_sampler_registered_by_path_needs_no_params():
    from coldkit.hookspecs import hookimpl

    class Plugin:
        @staticmethod
        @hookimpl
        def register_samplers(register):
            register("coldkit_plugins.samplers:improved", name="improved-again")

    registry = Registry.discover(entry_points=[], extra_plugins=[("inline", Plugin)])
    record = registry.get("sampler", "improved-again")
    assert record.is_lazy and not registry.problems
    assert record.component.__name__ == "improved"


def test_every_builtin_is_registered_by_path_with_its_components_own_schema():
    registry = Registry.discover()
    builtins = [
        record for kind in KINDS for record in registry.all_records(kind)
        if record.distribution == "coldkit"
    ]
    assert len(builtins) >= 20
    for record in builtins:
        assert record.is_lazy, record.name
        component = record.component
        if hasattr(component, "Params"):
            assert component.Params is record.params_model, record.name
            assert (component.name, component.description) == (record.name, record.description)
