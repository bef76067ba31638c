"""Plugin discovery through entry points of (fake) installed distributions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldkit.cli import app
from coldkit.errors import PluginError
from coldkit.plugins import Registry
from tests.conftest import install_fake_distribution

runner = CliRunner()

GOOD_PLUGIN = '''
from typing import ClassVar
import torch
from pydantic import BaseModel, ConfigDict
from coldkit import hookimpl


class DimParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = 4


class Dim:
    """Darkens the image linearly in t."""

    name: ClassVar[str] = "dim"
    description: ClassVar[str] = "darken linearly in t"
    Params = DimParams

    def __init__(self, params=None):
        self.params = params or DimParams()
        self.steps = self.params.steps

    def sample_params(self, x0, generator=None):
        return {}

    def degrade(self, x0, t, params=None):
        return x0 * (1 - t.view(-1, 1, 1, 1) / self.steps)


@hookimpl
def register_degradations(register):
    register(Dim)
'''


def test_plugin_is_discovered_through_an_installed_distribution(site: Path):
    install_fake_distribution(
        site, "coldkit-dim", "1.2.3", {"dim": "coldkit_dim_plugin"}, {"coldkit_dim_plugin": GOOD_PLUGIN}
    )
    registry = Registry.discover()
    record = registry.get("degradation", "dim")
    assert (record.distribution, record.version, record.plugin) == ("coldkit-dim", "1.2.3", "dim")
    assert "blur" in registry.names("degradation")  # built-ins still there
    result = runner.invoke(app, ["list-degradations", "--json"])
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["dim"]["distribution"] == "coldkit-dim" and rows["dim"]["version"] == "1.2.3"


def test_plugin_that_fails_to_import_does_not_break_the_others(site: Path):
    install_fake_distribution(
        site,
        "coldkit-broken",
        "0.1",
        {"broken": "coldkit_broken_plugin", "dim": "coldkit_dim_plugin"},
        {
            "coldkit_broken_plugin": "import a_module_that_does_not_exist\n",
            "coldkit_dim_plugin": GOOD_PLUGIN,
        },
    )
    registry = Registry.discover()
    assert "dim" in registry.names("degradation") and "blur" in registry.names("degradation")
    assert [(p.plugin, p.distribution) for p in registry.problems] == [("broken", "coldkit-broken")]
    assert registry.problems[0].label == "broken (coldkit-broken)"
    result = runner.invoke(app, ["list-degradations"])
    assert result.exit_code == 0
    assert "warning" in result.output and "broken" in result.output
    assert "blur" in result.output and "dim" in result.output


def test_builtin_name_is_kept_by_the_builtin(site: Path):
    stealer = GOOD_PLUGIN.replace('name: ClassVar[str] = "dim"', 'name: ClassVar[str] = "blur"')
    install_fake_distribution(
        site, "coldkit-thief", "0.1", {"thief": "coldkit_thief_plugin"}, {"coldkit_thief_plugin": stealer}
    )
    registry = Registry.discover()
    assert registry.get("degradation", "blur").distribution == "coldkit"  # the built-in kept it
    messages = [f"{p.plugin}: {p.message}" for p in registry.problems]
    assert any("thief" in m and "'blur' is already registered" in m for m in messages)
    assert [p.distribution for p in registry.problems] == ["coldkit-thief"]


def test_hook_that_raises_and_misspelled_hook_are_reported():
    from coldkit import hookimpl

    class Raising:
        @staticmethod
        @hookimpl
        def register_degradations(register):
            raise RuntimeError("boom")

    class Misspelled:
        @staticmethod
        @hookimpl
        def register_degradation(register):
            pass

    registry = Registry.discover(
        entry_points=[], extra_plugins=[("raising", Raising), ("misspelled", Misspelled)]
    )
    messages = {p.plugin: p.message for p in registry.problems}
    assert "boom" in messages["raising"]
    assert "register_degradation" in messages["misspelled"]


def test_unknown_name_lists_valid_names():
    registry = Registry.discover()
    with pytest.raises(PluginError, match="Registered degradations: .*blur"):
        registry.get("degradation", "blurr")
