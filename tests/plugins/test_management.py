"""Plugin management: disabling plugins, tracing lookups, `coldkit plugins`, and name clashes.

Third-party packages are faked as pip leaves them (a dist-info folder with entry points, and the
module) in a temporary folder put on ``sys.path``; nothing is installed.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldkit.cli import app
from coldkit.config import build_experiment, write_toml
from coldkit.errors import PluginError
from coldkit.plugins import Registry
from tests.conftest import tiny_experiment
from tests.conftest import install_fake_distribution
from tests.plugins.test_discovery import GOOD_PLUGIN

runner = CliRunner()

#: The same degradation under another description, so tests can tell the two packages apart.
OTHER_DIM = GOOD_PLUGIN.replace("darken linearly in t", "the other dim")
BLUR_THIEF = GOOD_PLUGIN.replace('name: ClassVar[str] = "dim"', 'name: ClassVar[str] = "blur"')
RAISING_HOOK = '''
from coldkit import hookimpl

@hookimpl
def register_samplers(register):
    raise RuntimeError("sampler hook exploded")
'''


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("COLDKIT_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("COLDKIT_TRACE_PLUGINS", raising=False)
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return root


@pytest.fixture
def two_dims(site: Path) -> Path:
    """Two third-party packages that both register the degradation name ``dim``."""
    install_fake_distribution(
        site, "coldkit-dim", "1.0", {"dim": "coldkit_dim_one"}, {"coldkit_dim_one": GOOD_PLUGIN}
    )
    install_fake_distribution(
        site, "coldkit-otherdim", "2.0", {"otherdim": "coldkit_dim_two"},
        {"coldkit_dim_two": OTHER_DIM},
    )
    return site


def _experiment(degradation: str | None = None, **changes) -> dict:
    """The tiny experiment; ``degradation`` replaces the blur section by that name's defaults."""
    data = tiny_experiment(**changes)
    if degradation is not None:
        data["degradation"] = {"name": degradation, "steps": 3}
    return data


def _config(tmp_path: Path, degradation: str | None = None, **changes) -> Path:
    path = tmp_path / "experiment.toml"
    write_toml(path, _experiment(degradation, **changes))
    return path


# --- disabling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["dim", "coldkit-dim:dim", "coldkit-dim", "Coldkit_Dim"])
def test_env_var_disables_a_plugin_without_importing_it(site: Path, monkeypatch, spec: str):
    marker = "coldkit_dim_marker_module"
    install_fake_distribution(
        site, "coldkit-dim", "1.0", {"dim": marker}, {marker: GOOD_PLUGIN}
    )
    sys.modules.pop(marker, None)
    monkeypatch.setenv("COLDKIT_DISABLE_PLUGINS", f" {spec} , ")
    registry = Registry.discover()
    assert "dim" not in registry.names("degradation")
    assert "blur" in registry.names("degradation")  # the rest still load
    assert marker not in sys.modules  # not even imported
    assert [(p.name, p.distribution, p.disabled_by) for p in registry.disabled] == [
        ("dim", "coldkit-dim", "COLDKIT_DISABLE_PLUGINS")
    ]
    assert not registry.problems
    with pytest.raises(PluginError, match=r"Disabled plugins: dim \(coldkit-dim 1.0\)"):
        registry.get("degradation", "dim")


def test_env_var_disabled_plugin_is_reported_by_the_cli(site: Path, monkeypatch):
    install_fake_distribution(
        site, "coldkit-dim", "1.0", {"dim": "coldkit_dim_cli"}, {"coldkit_dim_cli": GOOD_PLUGIN}
    )
    monkeypatch.setenv("COLDKIT_DISABLE_PLUGINS", "dim,no-such-plugin")
    result = runner.invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    row = next(row for row in report["plugins"] if row["name"] == "dim")
    assert (row["status"], row["disabled_by"], row["registered"]) == (
        "disabled", "COLDKIT_DISABLE_PLUGINS", []
    )
    # a name that matches nothing is a problem, not silently ignored
    assert any("'no-such-plugin', which matches no plugin" in p["message"] for p in report["problems"])
    listing = runner.invoke(app, ["list-degradations"])
    assert listing.exit_code == 0
    assert "plugins disabled by COLDKIT_DISABLE_PLUGINS: dim (coldkit-dim 1.0)" in listing.stderr


def test_config_key_disables_a_plugin(two_dims: Path, tmp_path: Path):
    config = _config(tmp_path, degradation="dim", disable_plugins=["otherdim"])
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    assert "plugins disabled by disable_plugins in the config: otherdim (coldkit-otherdim 2.0)" in (
        result.stderr
    )
    assert "otherdim" in result.stdout  # the resolved config keeps the list

    data = _experiment("dim", disable_plugins=["coldkit-otherdim"])
    experiment = build_experiment(data, Registry.discover())
    assert experiment.degradation.record.distribution == "coldkit-dim"
    assert [(p.name, p.disabled_by) for p in experiment.disabled_plugins] == [
        ("otherdim", "disable_plugins in the config")
    ]


def test_config_key_with_an_unknown_plugin_is_a_config_error(site: Path, tmp_path: Path):
    config = _config(tmp_path, disable_plugins=["nosuchplugin"])
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert "disable_plugins: 'nosuchplugin' matches no plugin" in result.output
    assert "Traceback" not in result.output


def test_config_key_disabling_a_builtin_removes_its_names(site: Path, tmp_path: Path):
    config = _config(tmp_path, disable_plugins=["coldkit:blur"])  # the example uses blur
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert "Unknown degradation 'blur'" in result.output
    assert "blur (coldkit 0.1.0) by disable_plugins in the config" in result.output


# --- tracing -----------------------------------------------------------------------------------


def test_trace_option_logs_which_plugin_served_each_name(site: Path, tmp_path: Path):
    config = _config(tmp_path)
    traced = runner.invoke(app, ["--trace-plugins", "validate", str(config)])
    assert traced.exit_code == 0, traced.output
    assert "plugin: degradation 'blur' served by blur (coldkit 0.1.0)" in traced.stderr
    assert "plugin: restorer 'unet' served by unet (coldkit 0.1.0)" in traced.stderr
    assert "served by" not in traced.stdout  # stderr only: stdout stays the resolved config
    quiet = runner.invoke(app, ["validate", str(config)])
    assert quiet.exit_code == 0 and "served by" not in quiet.output


@pytest.mark.parametrize(("value", "traced"), [("1", True), ("0", False)])
def test_trace_env_var(two_dims: Path, tmp_path: Path, monkeypatch, value: str, traced: bool):
    monkeypatch.setenv("COLDKIT_TRACE_PLUGINS", value)
    config = _config(tmp_path, degradation="coldkit-otherdim:dim")
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    line = "plugin: degradation 'coldkit-otherdim:dim' served by otherdim (coldkit-otherdim 2.0)"
    assert (line in result.stderr) is traced


# --- `coldkit plugins` -------------------------------------------------------------------------


def test_plugins_command_shows_hooks_registrations_and_load_errors(site: Path):
    install_fake_distribution(
        site,
        "coldkit-mixed",
        "0.3",
        {"dim": "coldkit_mixed_dim", "broken": "coldkit_mixed_broken", "raising": "coldkit_mixed_raise"},
        {
            "coldkit_mixed_dim": GOOD_PLUGIN,
            "coldkit_mixed_broken": "import a_module_that_does_not_exist\n",
            "coldkit_mixed_raise": RAISING_HOOK,
        },
    )
    result = runner.invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = {(row["distribution"], row["name"]): row for row in json.loads(result.stdout)["plugins"]}
    dim = rows["coldkit-mixed", "dim"]
    assert (dim["version"], dim["status"], dim["hooks"]) == ("0.3", "loaded", ["register_degradations"])
    assert dim["registered"] == [{"kind": "degradation", "name": "dim", "config_name": "dim"}]
    broken = rows["coldkit-mixed", "broken"]
    assert broken["status"] == "failed" and "a_module_that_does_not_exist" in broken["problems"][0]
    raising = rows["coldkit-mixed", "raising"]
    assert raising["hooks"] == ["register_samplers"]
    assert "sampler hook exploded" in raising["problems"][0]
    blur = rows["coldkit", "blur"]
    assert blur["hooks"] == ["register_degradations"] and blur["status"] == "loaded"

    text = runner.invoke(app, ["plugins"])
    assert text.exit_code == 0
    assert "problem: broken (coldkit-mixed): failed to import 'coldkit_mixed_broken'" in text.output
    assert "problem: raising (coldkit-mixed): register_samplers raised" in text.output


# --- name clashes ------------------------------------------------------------------------------


def test_two_packages_with_one_name_bare_name_is_an_error_naming_both(two_dims: Path):
    registry = Registry.discover()
    with pytest.raises(PluginError) as caught:
        registry.get("degradation", "dim")
    message = str(caught.value)
    assert "coldkit-dim 1.0" in message and "coldkit-otherdim 2.0" in message
    assert "coldkit-dim:dim" in message and "coldkit-otherdim:dim" in message
    assert "\n" not in message
    one = registry.get("degradation", "coldkit-dim:dim")
    two = registry.get("degradation", "coldkit_otherdim:dim")  # pip's spelling rules apply
    assert (one.distribution, one.description) == ("coldkit-dim", "darken linearly in t")
    assert (two.distribution, two.description) == ("coldkit-otherdim", "the other dim")
    # both are told about it when loading
    assert {p.label for p in registry.problems} == {"dim (coldkit-dim)", "otherdim (coldkit-otherdim)"}
    with pytest.raises(PluginError, match="registers no degradation 'dim'"):
        registry.get("degradation", "coldkit-nope:dim")


def test_clash_in_a_config_exits_2_and_qualified_names_work(two_dims: Path, tmp_path: Path):
    bare = runner.invoke(app, ["validate", str(_config(tmp_path, degradation="dim"))])
    assert bare.exit_code == 2
    assert "degradation.name: degradation name 'dim' is ambiguous" in bare.output
    assert "coldkit-dim" in bare.output and "coldkit-otherdim" in bare.output
    assert "Traceback" not in bare.output
    qualified = _config(tmp_path, degradation="coldkit-otherdim:dim")
    result = runner.invoke(app, ["validate", str(qualified)])
    assert result.exit_code == 0, result.output
    assert 'name = "coldkit-otherdim:dim"' in result.stdout  # the run folder keeps the choice


def test_listing_shows_both_clashing_records(two_dims: Path):
    result = runner.invoke(app, ["list-degradations", "--json"])
    assert result.exit_code == 0, result.output
    rows = [row for row in json.loads(result.stdout) if row["name"] == "dim"]
    assert sorted((row["distribution"], row["config_name"]) for row in rows) == [
        ("coldkit-dim", "coldkit-dim:dim"),
        ("coldkit-otherdim", "coldkit-otherdim:dim"),
    ]
    text = runner.invoke(app, ["list-degradations"])
    assert "note: degradation 'dim' is registered by 2 packages" in text.output


def test_builtin_name_stays_the_builtins_and_qualified_names_reach_each(site: Path):
    install_fake_distribution(
        site, "coldkit-thief", "0.1", {"thief": "coldkit_thief_one"}, {"coldkit_thief_one": BLUR_THIEF}
    )
    install_fake_distribution(
        site, "coldkit-robber", "0.2", {"robber": "coldkit_thief_two"}, {"coldkit_thief_two": BLUR_THIEF}
    )
    registry = Registry.discover()
    assert registry.get("degradation", "blur").distribution == "coldkit"  # not ambiguous
    assert registry.get("degradation", "coldkit:blur") is registry.get("degradation", "blur")
    assert registry.get("degradation", "coldkit-thief:blur").distribution == "coldkit-thief"
    assert registry.get("degradation", "coldkit-robber:blur").distribution == "coldkit-robber"
    messages = {p.label: p.message for p in registry.problems}
    assert "'blur' is already registered by the built-in plugin 'blur'" in messages["thief (coldkit-thief)"]
    assert "'coldkit-robber:blur'" in messages["robber (coldkit-robber)"]


def test_disabling_one_of_two_clashing_plugins_makes_the_bare_name_work(two_dims: Path, monkeypatch):
    monkeypatch.setenv("COLDKIT_DISABLE_PLUGINS", "coldkit-dim")
    registry = Registry.discover()
    assert registry.get("degradation", "dim").distribution == "coldkit-otherdim"
    assert not registry.problems
