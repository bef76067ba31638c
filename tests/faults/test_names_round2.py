"""Issue 29, item 6: names no file system can hold, and paths that are not UTF-8, are exit 2
naming the fix before anything is written."""

from __future__ import annotations

import os

from tests.faults.conftest import config_file, finished_run, invoke, refused  # noqa: F401
from tests.generation.test_restore import write_png


def test_a_300_character_out_is_exit_2(tmp_path):
    out = tmp_path / ("r" * 300)
    refused(invoke("run", config_file(tmp_path), "--out", out), "longer than", "shorter")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tiny.toml"]


def test_a_300_character_run_name_is_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(invoke("run", config_file(tmp_path), "--set", f'name="{"n" * 300}"'), "name",
            "255")
    assert not (tmp_path / "runs").exists()


def test_an_out_that_is_not_utf8_is_exit_2(tmp_path):
    out = os.fsdecode(os.fsencode(str(tmp_path)) + b"/run-\xff")
    refused(invoke("run", config_file(tmp_path), "--out", out), "UTF-8")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tiny.toml"]


def test_an_image_whose_restored_name_is_too_long_is_exit_2(finished_run, tmp_path):
    image = write_png(tmp_path / ("i" * 250 + ".png"), 16, 16)
    result = invoke("restore", finished_run, image, "--t", "2", "--out", tmp_path / "out")
    refused(result, "longer than", "shorter")
    assert not (tmp_path / "out").exists()


def test_integers_beyond_their_range_are_refused_before_writing(tmp_path):
    config = config_file(tmp_path)
    for setting in ("train.level_jitter=9223372036854775807", "train.level_jitter=1e30",
                    "threads=1000000", "train.quantize_inputs=true", "train.steps=1e30",
                    "train.batch_size=true"):
        out = tmp_path / "run"
        result = invoke("run", config, "--out", out, "--set", setting)
        refused(result, setting.split("=")[0].split(".")[-1])
        assert not out.exists(), setting


def test_generate_and_restore_out_that_is_not_utf8_is_exit_2(finished_run, tmp_path):
    out = os.fsdecode(os.fsencode(str(tmp_path)) + b"/gen-\xff")
    refused(invoke("generate", finished_run, "-n", "4", "--no-judge", "--out", out), "UTF-8")
    image = write_png(tmp_path / "in.png", 16, 16)
    refused(invoke("restore", finished_run, image, "--t", "2", "--out", out), "UTF-8")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["finished", "in.png"]
