"""Issue 29, item 2: an export never follows a link out of the run folder, writes only into a
fresh folder of its own, and refuses a target it cannot be."""

from __future__ import annotations

import json
import os

import pytest

from tests.faults.conftest import finished_run, invoke, refused, snapshot, succeeded  # noqa: F401


@pytest.mark.parametrize("name", ["table.md", "metrics.json", "config.toml", "run.json"])
def test_a_link_in_the_run_folder_is_refused_not_exported(finished_run, tmp_path, name):
    secret = tmp_path / "secret.txt"
    secret.write_text("the user's private notes")
    (finished_run / name).unlink()
    (finished_run / name).symlink_to(secret)
    out = tmp_path / "model"
    refused(invoke("export", finished_run, out), name, "symbolic link")
    assert not out.exists()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_a_linked_checkpoint_folder_is_refused(finished_run, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (finished_run / "checkpoints").rename(elsewhere)
    (finished_run / "checkpoints").symlink_to(elsewhere)
    refused(invoke("export", finished_run, tmp_path / "model"), "checkpoints", "symbolic link")


def test_a_users_partial_folder_next_to_the_target_is_left_alone(finished_run, tmp_path):
    users = tmp_path / "m.partial"
    users.mkdir()
    (users / "thesis.txt").write_text("chapter 1")
    before = snapshot(users)
    succeeded(invoke("export", finished_run, tmp_path / "m"))
    assert snapshot(users) == before
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["finished", "m", "m.partial"]


@pytest.mark.parametrize("target", [".", "..", "x" * 300, "bad-\udcff-name"])
def test_a_target_that_cannot_be_a_new_folder_is_exit_2(finished_run, tmp_path, monkeypatch,
                                                        target):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    refused(invoke("export", finished_run, target), "OUT_DIR")
    assert list(empty.iterdir()) == []


def test_exported_from_carries_no_path_of_the_exporters_machine(finished_run, tmp_path):
    out = tmp_path / "model"
    succeeded(invoke("export", finished_run.resolve(), out))
    manifest = json.loads((out / "coldkit_model.json").read_text())
    assert manifest["exported_from"] == "finished"
    assert str(tmp_path) not in (out / "coldkit_model.json").read_text()
    assert os.sep not in manifest["exported_from"]
