"""Fault injection with bad files: malformed, malicious and hostile files in every place coldkit
reads from get exit 2 naming the file (or are skipped, for images in a dataset folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.faults.conftest import config_file, invoke, refused, succeeded


def _checkpoint(run: Path) -> Path:
    return run / "checkpoints" / "last.pt"


@pytest.mark.parametrize(
    "change, words",
    [
        ({"step": "three"}, ["step", "not a whole number"]),
        ({"step": -1}, ["step"]),
        ({"losses": "abc"}, ["losses"]),
        ({"losses": [1.0, "x"]}, ["losses"]),
        ({"elapsed_seconds": "x"}, ["elapsed_seconds"]),
        ({"model": [1, 2]}, ["model"]),
        ({"generator": "x"}, ["random state"]),
        ({"trained_for": [1]}, ["trained_for"]),
    ],
)
def test_a_checkpoint_of_the_wrong_shape_is_exit_2_naming_it(finished_run, change, words):
    state = torch.load(_checkpoint(finished_run), weights_only=True)
    state.update(change)
    torch.save(state, _checkpoint(finished_run))
    for command in (["run", finished_run, "--set", "train.steps=8"],
                    ["generate", finished_run, "-n", 2, "--no-judge"]):
        result = invoke(*command)
        if "generator" in change and command[0] == "generate":
            continue  # reading the weights does not need the training's random state
        refused(result, "last.pt", *words)


def test_a_refused_pickle_never_suggests_weights_only_false(finished_run):
    state = torch.load(_checkpoint(finished_run), weights_only=True)
    state["payload"] = Path("x")
    torch.save(state, _checkpoint(finished_run))
    for command in (["run", finished_run], ["generate", finished_run, "-n", 2, "--no-judge"]):
        result = invoke(*command)
        refused(result, "not a coldkit checkpoint", "PosixPath")
        assert "weights_only" not in result.output


def test_garbage_where_a_checkpoint_belongs_is_named_without_torch_advice(finished_run):
    _checkpoint(finished_run).write_bytes(b"\x80\x02garbage")
    result = invoke("run", finished_run)
    refused(result, "last.pt", "cannot be read")
    assert "weights_only" not in result.output


@pytest.mark.parametrize(
    "payload, words",
    [
        ({"format": "coldkit-prior", "version": 1, "params": "{}", "state": {}}, ["no prior name"]),
        ({"format": "coldkit-prior", "version": 1, "name": "gmm", "params": "{not json",
          "state": {}}, ["does not fit"]),
        ({"format": "coldkit-prior", "version": 1, "name": "gmm", "params": '{"bogus": 1}',
          "state": {}}, ["does not fit"]),
        ({"format": "coldkit-prior", "version": 1, "name": "no-such-prior", "params": "{}",
          "state": {}}, ["no-such-prior"]),
        ({"format": "coldkit-prior", "version": 1, "name": "gmm", "params": 3, "state": {}},
         ["params"]),
        ([1, 2], ["not a coldkit prior file"]),
    ],
)
def test_a_malformed_prior_file_is_exit_2_naming_it(finished_run, tmp_path, payload, words):
    from coldkit.generation.priors import load_prior
    from coldkit.errors import CheckpointError
    from coldkit.plugins import Registry

    path = tmp_path / "gmm.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as caught:
        load_prior(path, Registry.discover())
    for word in [str(path), *words]:
        assert word in str(caught.value)
    assert "weights_only" not in str(caught.value)


def test_a_malformed_cached_prior_in_a_run_is_exit_2(finished_run):
    prior = next((finished_run / "priors").glob("*.pt"))
    torch.save({"format": "coldkit-prior", "params": "{}", "state": {}}, prior)
    refused(invoke("generate", finished_run, "-n", 2, "--no-judge"), prior.name, "Delete it")


@pytest.mark.parametrize("content", [b"", b"\x80garbage", None])
def test_a_malformed_judge_classifier_is_exit_2_naming_it(finished_run, tmp_path, content):
    path = tmp_path / "classifier.pt"
    if content is None:
        torch.save({"format": "coldkit-classifier", "payload": Path("x")}, path)
    else:
        path.write_bytes(content)
    result = invoke("generate", finished_run, "-n", 2, "--set",
                    f'generate.classifier="{path}"', "--judge", "--out", tmp_path / "out")
    refused(result, "classifier.pt")
    assert "weights_only" not in result.output


def test_malformed_json_in_a_run_folder_does_not_break_reading_it(finished_run, tmp_path):
    (finished_run / "metrics.json").write_text("{ NaN")
    (finished_run / "run.json").write_text("[1, 2")
    (finished_run / "generation.json").write_bytes(b"\xff\xfe")
    result = invoke("compare", finished_run, "--no-figure")
    assert result.exit_code in (0, 2) and "Traceback" not in result.output


@pytest.mark.parametrize("kind", ["folder", "binary", "latin-1", "deep"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_config_files_that_are_not_toml_are_exit_2(tmp_path, kind, command):
    path = tmp_path / f"{kind}.toml"
    if kind == "folder":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(bytes(range(256)))
    elif kind == "latin-1":
        path.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    else:
        path.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    refused(invoke(command, path), str(path.name))


def test_show_degradation_into_a_folder_is_exit_2(tmp_path):
    refused(invoke("show-degradation", "blur", "--out", tmp_path), "is a folder")


def _bomb(path: Path) -> None:
    """A PNG whose header claims more pixels than Pillow's limit (a decompression bomb)."""
    Image.new("L", (16, 16)).save(path)
    limit = Image.MAX_IMAGE_PIXELS
    side = int((2 * limit) ** 0.5) + 10
    data = bytearray(path.read_bytes())
    import struct
    import zlib

    data[16:24] = struct.pack(">II", side, side)  # IHDR width and height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def test_a_decompression_bomb_is_refused_by_restore_and_skipped_by_image_folder(
    finished_run, tmp_path
):
    bomb = tmp_path / "bomb.png"
    _bomb(bomb)
    refused(invoke("restore", finished_run, bomb, "--t", 2, "--out", tmp_path / "out"),
            "bomb.png", "Pillow")
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(12):
        Image.new("L", (16, 16), index * 20).save(folder / f"{index}.png")
    _bomb(folder / "bomb.png")
    from coldkit.protocols import BuildContext
    from coldkit_plugins.datasets import ImageFolder, ImageFolderParams

    for split in ("train", "test"):
        loaded = ImageFolder(ImageFolderParams(path=str(folder))).load("all")
        assert "bomb.png" in loaded.source and len(loaded.images) == 12
        stream = ImageFolder(
            ImageFolderParams(path=str(folder)), context=BuildContext(image_size=16)
        ).stream(split)
        assert stream is not None

