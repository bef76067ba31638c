"""Fault injection on plugin loading: a plugin that registers something which is not a component,
or whose import ends the interpreter (``sys.exit``), is reported by name like any other plugin
that failed; coldkit itself carries on, and a command that needs the broken component ends with
exit 2 and a message, never a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from coldkit.config import write_toml
from coldkit.errors import PluginError
from coldkit.plugins import Registry
from tests.conftest import install_fake_distribution, tiny_experiment
from tests.faults.conftest import invoke, refused, succeeded

#: A plugin module that registers a degradation by path to ``{target}``.
BY_PATH = '''
from pydantic import BaseModel, ConfigDict
from coldkit import hookimpl

COLDKIT_PLUGIN_API = 3


class NothingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@hookimpl
def register_degradations(register):
    register({target!r}, name="bogus", description="not a component", params=NothingParams)
'''

EXITS_ON_IMPORT = '''
import sys
sys.exit({code})
'''

EXITS_IN_HOOK = '''
import sys
from coldkit import hookimpl


@hookimpl
def register_degradations(register):
    sys.exit({code})
'''


@pytest.fixture(autouse=True)
def _forget_fake_modules():
    yield
    for module in [name for name in sys.modules if name.startswith("fault_plugin_")]:
        sys.modules.pop(module, None)


def _install(site: Path, modules: dict[str, str], entry: str = "fault_plugin_entry") -> None:
    install_fake_distribution(site, "coldkit-fault", "0.1.0", {"faulty": entry}, modules)


def _problems(registry: Registry) -> str:
    return " | ".join(f"{problem.label}: {problem.message}" for problem in registry.problems)


@pytest.mark.parametrize("target", ["math:pi", "os.path:join"])
def test_a_path_to_something_that_is_not_a_component_is_a_plugin_error(site, target):
    _install(site, {"fault_plugin_entry": BY_PATH.format(target=target)})
    record = Registry.discover().get("degradation", "coldkit-fault:bogus")  # listing still works
    with pytest.raises(PluginError) as raised:
        record.build()
    message = str(raised.value)
    assert "faulty" in message and "coldkit-fault" in message and target in message
    assert "not a coldkit degradation" in message


@pytest.mark.parametrize("target", ["math:pi", "os.path:join"])
def test_a_run_with_a_component_that_is_not_one_exits_2_naming_the_plugin(site, tmp_path, target):
    _install(site, {"fault_plugin_entry": BY_PATH.format(target=target)})
    config = tmp_path / "bogus.toml"
    write_toml(config, {**tiny_experiment(), "degradation": {"name": "coldkit-fault:bogus"}})
    refused(invoke("run", config, "--out", tmp_path / "run"), "faulty", target,
            "not a coldkit degradation")


@pytest.mark.parametrize("code", [0, 3])
def test_an_entry_point_that_calls_sys_exit_on_import_is_a_failed_plugin(site, code):
    _install(site, {"fault_plugin_entry": EXITS_ON_IMPORT.format(code=code)})
    registry = Registry.discover()
    assert "faulty (coldkit-fault): failed to import" in _problems(registry)
    assert f"SystemExit({code})" in _problems(registry)
    assert "blur" in registry.names("degradation")  # the others still load
    [info] = [info for info in registry.plugins if info.name == "faulty"]
    assert info.status == "failed"


@pytest.mark.parametrize("code", [0, 3])
def test_a_hook_that_calls_sys_exit_is_a_plugin_problem(site, code):
    _install(site, {"fault_plugin_entry": EXITS_IN_HOOK.format(code=code)})
    registry = Registry.discover()
    assert f"register_degradations raised SystemExit({code})" in _problems(registry)
    assert "blur" in registry.names("degradation")


@pytest.mark.parametrize("code", [0, 3])
def test_a_path_whose_module_calls_sys_exit_is_a_plugin_error_when_built(site, code):
    _install(site, {
        "fault_plugin_entry": BY_PATH.format(target="fault_plugin_impl:Nothing"),
        "fault_plugin_impl": EXITS_ON_IMPORT.format(code=code),
    })
    record = Registry.discover().get("degradation", "coldkit-fault:bogus")
    with pytest.raises(PluginError, match=rf"faulty.*SystemExit\({code}\)"):
        record.build()


def test_the_cli_lists_plugins_when_one_calls_sys_exit_on_import(site):
    _install(site, {"fault_plugin_entry": EXITS_ON_IMPORT.format(code=3)})
    result = invoke("plugins", "--json")
    succeeded(result)
    rows = json.loads(result.stdout)["plugins"]
    assert any(row["name"] == "faulty" and row["status"] == "failed" for row in rows)
    succeeded(invoke("list-degradations"))


def test_an_object_registered_directly_that_is_not_a_component_is_refused_at_registration():
    import math

    from coldkit import hookimpl

    class Plugin:
        @staticmethod
        @hookimpl
        def register_degradations(register):
            register(math.pi, name="pi", description="not a component")

    registry = Registry.discover(entry_points=[], extra_plugins=[("numbers", Plugin)])
    assert "pi" not in registry.names("degradation")
    assert "numbers: registered degradation 3.14159" in _problems(registry)
    assert "not a component" in _problems(registry)
