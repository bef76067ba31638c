"""Issue 29, items 2, 3 and 5: a model folder's manifest is validated as strictly as a config,
only the files it lists (hashed, regular, inside the folder) are read, and commands that read a
model folder or run folder never write into it nor follow a link at their default output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.faults.conftest import (  # noqa: F401
    _finished_run,
    config_file,
    invoke,
    refused,
    snapshot,
    succeeded,
)
from tests.generation.test_restore import write_png

MANIFEST = "coldkit_model.json"


@pytest.fixture(scope="module")
def _exported(_finished_run: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "model"
    succeeded(invoke("export", _finished_run, out))
    return out


@pytest.fixture
def model(_exported: Path, tmp_path: Path, monkeypatch) -> Path:
    """A copy of an exported tiny model; the user's cache directory is under tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    copy = tmp_path / "model"
    shutil.copytree(_exported, copy)
    return copy


def _edit(model: Path, change) -> None:
    data = json.loads((model / MANIFEST).read_text())
    change(data)
    (model / MANIFEST).write_text(json.dumps(data))


def _restore(model: Path, tmp_path: Path, *extra: str):
    image = write_png(tmp_path / "in.png", 16, 16)
    return invoke("restore", model, image, "--t", "2", "--out", tmp_path / "restored", *extra)


def _set(path: str, value):
    def change(data):
        *parents, last = path.split(".")
        for key in parents:
            data = data[key]
        data[last] = value
    return change


@pytest.mark.parametrize(
    "path, value",
    [
        ("format_version", "1"), ("format_version", None), ("step", "3"), ("step", None),
        ("step", [1]), ("files", []), ("files", None), ("restorer_context", "x"),
        ("restorer_context", None), ("restorer_context.evil", 1),
        ("restorer_context.steps", 2.5), ("config", []), ("config", None), ("plugins", []),
        ("plugins", "x"),
    ],
)
def test_a_manifest_field_of_the_wrong_type_is_exit_2(model, tmp_path, path, value):
    _edit(model, _set(path, value))
    refused(_restore(model, tmp_path), MANIFEST, path.split(".")[-1])


def test_a_deeply_nested_manifest_is_exit_2(model, tmp_path):
    (model / MANIFEST).write_text("[" * 100_000 + "]" * 100_000)
    refused(_restore(model, tmp_path), MANIFEST)


@pytest.mark.parametrize("field, value", [("distribution", "evil-pkg; curl x | sh"),
                                          ("version", "1.0 && rm -rf ~")])
def test_a_plugin_package_that_is_not_a_name_is_never_printed(model, tmp_path, field, value):
    _edit(model, _set(f"plugins.restorer.{field}", value))
    _edit(model, _set("plugins.restorer.name", "not-installed"))
    result = _restore(model, tmp_path)
    refused(result, MANIFEST, field)
    assert "curl" not in result.output and "rm -rf" not in result.output


@pytest.mark.parametrize("target", ["/proc/self/mem", "/etc/hostname", "../../secret.txt",
                                    "priors/../../secret.safetensors", "config.toml"])
def test_listed_files_outside_the_models_own_are_refused(model, tmp_path, target):
    (tmp_path / "secret.txt").write_text("private")
    _edit(model, lambda data: data["files"].__setitem__(target, "0" * 64))
    refused(_restore(model, tmp_path), MANIFEST, "files")


def test_weights_left_out_of_the_manifest_are_not_loaded(model, tmp_path):
    _edit(model, lambda data: data["files"].pop("model.safetensors"))
    refused(_restore(model, tmp_path), "model.safetensors", "not listed")


def test_weights_that_link_outside_the_folder_are_refused(model, tmp_path):
    outside = tmp_path / "outside.safetensors"
    shutil.move(model / "model.safetensors", outside)
    (model / "model.safetensors").symlink_to(outside)
    refused(_restore(model, tmp_path), "symbolic link")


def test_an_unlisted_prior_file_is_never_loaded(model, tmp_path):
    (model / "priors" / "pca-gmm.pt").write_bytes(b"not a prior at all")
    before = snapshot(model)
    result = invoke("generate", model, "-n", "4", "--no-judge", "--out", tmp_path / "gen")
    succeeded(result)
    assert "pca-gmm.safetensors" in result.output.replace("\n", "")  # rich wraps long lines
    assert snapshot(model) == before


def test_edited_steps_are_caught_against_the_weights(model, tmp_path):
    def more_steps(data):
        data["restorer_context"]["steps"] = 50
        data["config"]["degradation"]["steps"] = 50
    _edit(model, more_steps)
    result = invoke("restore", model, write_png(tmp_path / "in.png", 16, 16), "--t", "40",
                    "--out", tmp_path / "restored")
    refused(result, "trained for another model", "degradation.steps")
    assert not (tmp_path / "restored").exists()


def test_steps_of_a_billion_get_the_cost_checks_of_a_config(model, tmp_path):
    def huge(data):
        data["restorer_context"]["steps"] = 10**9
        data["config"]["degradation"]["steps"] = 10**9
    _edit(model, huge)
    refused(_restore(model, tmp_path), "degradation.steps", "GiB")


def test_a_run_is_not_trained_inside_a_model_folder(model, tmp_path):
    before = snapshot(model)
    refused(invoke("run", config_file(tmp_path), "--out", model), "exported model", "--out")
    assert snapshot(model) == before


def test_generate_and_restore_leave_a_model_folder_as_exported(model, tmp_path):
    before = snapshot(model)
    succeeded(invoke("generate", model, "-n", "4"))
    succeeded(invoke("restore", model, write_png(tmp_path / "in.png", 16, 16), "--t", "2"))
    assert snapshot(model) == before
    cached = list((tmp_path / "cache" / "coldkit" / "models").iterdir())
    assert len(cached) == 1 and (cached[0] / "restored" / "in_restored.png").is_file()
    assert any((cached[0] / "generated").iterdir())


@pytest.mark.parametrize("command", ["generate", "restore"])
def test_a_link_at_the_default_output_folder_is_not_followed(_finished_run, tmp_path, command):
    run = tmp_path / "run"
    shutil.copytree(_finished_run, run)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / ("generated" if command == "generate" else "restored")).symlink_to(elsewhere)
    args = ["-n", "4", "--no-judge"] if command == "generate" else [
        write_png(tmp_path / "in.png", 16, 16), "--t", "2"]
    refused(invoke(command, run, *args), "symbolic link", "--out")
    assert list(elsewhere.iterdir()) == []


def test_restore_into_a_read_only_run_folder_says_pass_out(_finished_run, tmp_path, read_only):
    run = tmp_path / "run"
    shutil.copytree(_finished_run, run)
    read_only(run)
    result = invoke("restore", run, write_png(tmp_path / "in.png", 16, 16), "--t", "2")
    refused(result, "--out")


def test_restore_out_naming_a_file_is_exit_2(_finished_run, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = invoke("restore", _finished_run, write_png(tmp_path / "in.png", 16, 16), "--t", "2",
                    "--out", tmp_path / "notes.txt")
    refused(result, "notes.txt", "--out")
    assert (tmp_path / "notes.txt").read_text() == "mine"
