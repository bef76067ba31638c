"""Fault injection on a read-only folder: a finished run in a read-only folder is read by
generate, restore, compare and api.open, which write only to --out; a run that would have to write
there says why."""

from __future__ import annotations

from PIL import Image

from tests.faults.conftest import invoke, refused, snapshot, succeeded


def test_generate_restore_compare_and_open_read_a_read_only_run(finished_run, tmp_path, read_only):
    import coldkit.api as api

    out = tmp_path / "out"
    image = tmp_path / "blurry.png"
    Image.new("L", (16, 16), 128).save(image)
    before = snapshot(finished_run)
    read_only(finished_run)
    succeeded(invoke("generate", finished_run, "-n", 4, "--no-judge", "--out", out / "gen"))
    assert (out / "gen" / "samples.pt").is_file() and (out / "gen" / "log.txt").is_file()
    succeeded(invoke("restore", finished_run, image, "--t", 2, "--out", out / "restored"))
    succeeded(invoke("compare", finished_run, "--figure", out / "compare.png"))
    opened = api.open(finished_run)
    assert opened is not None
    assert snapshot(finished_run) == before


def test_generate_with_a_prior_to_fit_in_a_read_only_run_uses_it_uncached(
    finished_run, tmp_path, read_only
):
    import shutil

    shutil.rmtree(finished_run / "priors")
    read_only(finished_run)
    result = invoke("generate", finished_run, "-n", 4, "--judge", "--out", tmp_path / "out")
    succeeded(result)
    assert "not cached" in result.output
    assert not (finished_run / "priors").exists()


def test_writing_into_a_read_only_run_is_exit_2_naming_the_fix(finished_run, read_only):
    read_only(finished_run)
    refused(invoke("run", finished_run, "--set", "train.steps=8"), ".lock", "read-only",
            "--out")
    refused(invoke("generate", finished_run, "-n", 2, "--no-judge"), "Could not write",
            "--out")
