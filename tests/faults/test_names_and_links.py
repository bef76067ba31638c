"""Fault injection with hostile paths: a run writes only into its own folder — hostile names,
foreign folders, links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults.conftest import config_file, invoke, refused, snapshot, succeeded


@pytest.mark.parametrize("name", ["..", ".", "../x", "a/b", "/tmp/elsewhere", "a\\\\b", " "])
def test_a_run_name_that_is_not_a_plain_folder_name_is_refused(tmp_path, monkeypatch, name):
    work = tmp_path / "p"
    work.mkdir()
    (work / "table.md").write_text("mine")
    (work / "figure.png").write_bytes(b"mine")
    config = config_file(tmp_path)
    before = snapshot(tmp_path)
    monkeypatch.chdir(work)
    result = invoke("run", config, "--set", f"name={name!r}".replace("'", '"'))
    refused(result, "name", "plain folder name", "--out")
    assert snapshot(tmp_path) == before  # nothing written anywhere


def test_out_into_a_foreign_non_empty_folder_is_refused_and_nothing_written(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.json").write_text('{"mine": 1}')
    before = snapshot(mine)
    refused(invoke("run", config_file(tmp_path), "--out", mine), "not a coldkit run folder",
            "--out")
    assert snapshot(mine) == before and sorted(os.listdir(mine)) == ["metrics.json"]


def test_out_into_an_empty_folder_runs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    succeeded(invoke("run", config_file(tmp_path), "--out", empty))
    assert (empty / "checkpoints" / "last.pt").is_file()


@pytest.mark.parametrize("entry", ["log.txt", ".lock", "checkpoints", "metrics.json"])
def test_a_run_folder_with_links_where_coldkit_writes_is_refused(finished_run, tmp_path, entry):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep")
    target = finished_run / entry
    if target.is_dir():
        import shutil

        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    target.symlink_to(victim / "precious" if entry != "checkpoints" else victim)
    before = snapshot(victim)
    refused(invoke("run", finished_run, "--set", "train.steps=9"), "symbolic links", entry)
    assert snapshot(victim) == before


def test_an_atomic_write_replaces_a_link_and_never_writes_through_it(tmp_path):
    from coldkit.runtime.files import write_text_atomic

    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    link = tmp_path / "table.md"
    link.symlink_to(victim)
    write_text_atomic(link, "new")
    assert victim.read_text() == "keep"
    assert not link.is_symlink() and link.read_text() == "new"


def test_the_log_never_appends_through_a_link(tmp_path):
    from coldkit.errors import WriteError
    from coldkit.runtime.files import append_line

    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "log.txt").symlink_to(victim)
    with pytest.raises(WriteError, match="log.txt"):
        append_line(tmp_path / "log.txt", "line\n")
    assert victim.read_text() == "keep"


def test_a_plain_name_still_makes_runs_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    succeeded(invoke("run", config_file(tmp_path), "--set", 'name="plain-name_1.x"'))
    assert Path("runs/plain-name_1.x/checkpoints/last.pt").is_file()
