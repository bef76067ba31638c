"""coldkit.evaluation.judge: the classifier that judges generated images, its file format, the Fréchet
distance and the generation report. Tiny synthetic data (16x16 discs labelled by quadrant)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from coldkit.errors import CheckpointError
from coldkit.evaluation.judge import (
    Classifier,
    GenerationReport,
    frechet_distance,
    judge_generation,
    load_classifier,
    load_or_train_classifier,
    save_classifier,
    train_classifier,
)
from coldkit_plugins.datasets import SYNTHETIC_CLASSES, make_synthetic

TRAIN = dict(epochs=8, width=16, batch_size=64, validation_fraction=0.2)


@pytest.fixture(scope="module")
def labelled() -> tuple[torch.Tensor, torch.Tensor]:
    return make_synthetic(600, 16, 1, seed=0)


@pytest.fixture(scope="module")
def trained(labelled) -> tuple[Classifier, float]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before conftest's per-test thread limit
    try:
        return train_classifier(*labelled, seed=0, **TRAIN)
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def held_out() -> torch.Tensor:
    """Real images the classifier never saw (another seed)."""
    return make_synthetic(400, 16, 1, seed=1)[0]


def test_classifier_shapes_and_size_check():
    classifier = Classifier(3, 5, width=8).eval()
    for size in (16, 20, 32):
        x = torch.rand(2, 3, size, size)
        assert classifier(x).shape == (2, 5)
        assert classifier.features(x).shape == (2, Classifier.feature_dim)
    with pytest.raises(ValueError, match="H, W >= 16"):
        classifier(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="3, H, W"):
        classifier(torch.rand(2, 1, 16, 16))


def test_classifier_learns_the_quadrant_labels(trained, labelled):
    classifier, accuracy = trained
    assert not classifier.training
    assert classifier.num_classes == SYNTHETIC_CLASSES
    chance = torch.bincount(labelled[1]).max().item() / len(labelled[1])  # majority class
    assert accuracy >= 0.6 > chance + 0.2
    # The accuracy is really measured on images: new images of the same kind agree.
    images, labels = make_synthetic(200, 16, 1, seed=7)
    with torch.no_grad():
        fresh = (classifier(images).argmax(1) == labels).float().mean().item()
    assert fresh >= 0.6


def test_training_is_seeded_and_leaves_global_rng_alone(labelled):
    images, labels = labelled[0][:200], labelled[1][:200]
    state = torch.get_rng_state()
    first, acc_first = train_classifier(images, labels, seed=3, epochs=1, width=8)
    assert torch.equal(torch.get_rng_state(), state)
    second, acc_second = train_classifier(images, labels, seed=3, epochs=1, width=8)
    other, _ = train_classifier(images, labels, seed=4, epochs=1, width=8)
    x = images[:16]
    with torch.no_grad():
        assert torch.equal(first(x), second(x)) and acc_first == acc_second
        assert not torch.equal(first(x), other(x))


def test_training_input_checks(labelled):
    images, labels = labelled
    with pytest.raises(ValueError, match="one label per image"):
        train_classifier(images, labels[:-1], epochs=1)
    with pytest.raises(ValueError, match="out of range"):
        train_classifier(images, labels, num_classes=2, epochs=1)
    with pytest.raises(ValueError, match="H, W >= 16"):
        train_classifier(images[:, :, :8, :8], labels, epochs=1)
    _, accuracy = train_classifier(
        images[:50], labels[:50], epochs=1, width=4, validation_fraction=0
    )
    assert math.isnan(accuracy)


def test_save_load_round_trip(trained, labelled, tmp_path: Path):
    classifier, _ = trained
    path = tmp_path / "sub" / "classifier.pt"
    save_classifier(classifier, path)
    assert not path.with_name(path.name + ".tmp").exists()
    raw = torch.load(path, weights_only=True, map_location="cpu")  # no pickled classes
    assert raw["format"] == "coldkit-classifier" and raw["version"] == 1
    assert (raw["channels"], raw["num_classes"], raw["width"]) == (1, SYNTHETIC_CLASSES, 16)
    loaded = load_classifier(path)
    assert not loaded.training
    x = labelled[0][:32]
    with torch.no_grad():
        assert torch.equal(loaded(x), classifier(x))
        assert torch.equal(loaded.features(x), classifier.features(x))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "foreign", "newer", "missing"])
def test_broken_classifier_file_gives_checkpoint_error(trained, tmp_path: Path, damage: str):
    path = tmp_path / "classifier.pt"
    save_classifier(trained[0], path)
    if damage == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all" * 10)
    elif damage == "foreign":
        torch.save({"model": {"w": torch.zeros(2)}, "step": 3}, path)
    elif damage == "newer":
        state = torch.load(path, weights_only=True)
        torch.save({**state, "version": 99}, path)
    else:
        path.unlink()
    with pytest.raises(CheckpointError, match="classifier.pt") as error:
        load_classifier(path)
    assert "delete it" in str(error.value)


def test_load_or_train_trains_once_then_loads(labelled, tmp_path: Path):
    images, labels = labelled[0][:200], labelled[1][:200]
    path = tmp_path / "judge.pt"
    kwargs = dict(epochs=1, width=8, seed=1)
    first, accuracy, loaded = load_or_train_classifier(path, images, labels, **kwargs)
    assert not loaded and isinstance(accuracy, float) and path.is_file()
    again, accuracy_again, loaded_again = load_or_train_classifier(path, images, labels, **kwargs)
    assert loaded_again and accuracy_again is None
    with torch.no_grad():
        assert torch.equal(first(images[:8]), again(images[:8]))
    with pytest.raises(CheckpointError, match="Delete the file"):
        load_or_train_classifier(path, images.expand(-1, 3, -1, -1), labels, **kwargs)


# ----------------------------------------------------------------------------- Fréchet distance
def with_exact_moments(mean: np.ndarray, cov: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Samples whose empirical mean and covariance (N - 1) are exactly ``mean`` and ``cov``."""
    raw = np.random.default_rng(seed).normal(size=(count, len(mean)))
    raw -= raw.mean(axis=0)
    whitened = raw @ np.linalg.inv(np.linalg.cholesky(np.cov(raw, rowvar=False))).T
    return whitened @ np.linalg.cholesky(cov).T + mean


def test_frechet_of_a_set_with_itself_is_zero():
    features = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(features, features + 1.0) == pytest.approx(16.0, rel=1e-8)


def test_frechet_matches_closed_form_for_diagonal_gaussians():
    a = with_exact_moments(np.array([0.0, 1.0, 2.0]), np.diag([1.0, 4.0, 0.25]), 500, seed=0)
    b = with_exact_moments(np.array([1.0, 1.0, 0.0]), np.diag([9.0, 1.0, 0.25]), 400, seed=1)
    # |mu_a - mu_b|^2 + sum (sqrt(var_a) - sqrt(var_b))^2
    expected = (1 + 0 + 4) + ((1 - 3) ** 2 + (2 - 1) ** 2 + 0.0)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-9)


def test_frechet_matches_closed_form_for_non_commuting_covariances():
    cov_a = np.array([[2.0, 0.9], [0.9, 1.0]])
    cov_b = np.array([[1.0, -0.3], [-0.3, 3.0]])
    a = with_exact_moments(np.zeros(2), cov_a, 300, seed=2)
    b = with_exact_moments(np.array([0.5, -1.0]), cov_b, 300, seed=3)
    # For 2x2 matrices with positive eigenvalues: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)).
    product = cov_a @ cov_b
    trace_root = math.sqrt(np.trace(product) + 2 * math.sqrt(np.linalg.det(product)))
    expected = 0.25 + 1.0 + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_is_finite_for_singular_covariances():
    generator = torch.Generator().manual_seed(0)
    a = torch.relu(torch.randn(20, 64, generator=generator))  # fewer samples than dimensions
    a[:, :10] = 0.0  # dead features
    b = torch.relu(torch.randn(30, 64, generator=generator))
    distance = frechet_distance(a, b)
    assert math.isfinite(distance) and distance > 0
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance(a[:1], b)
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(a, b[:, :8])


# ------------------------------------------------------------------------------ the report
def test_judge_real_against_real(trained, held_out):
    classifier, _ = trained
    samples, real = held_out[:200], held_out[200:]  # as many samples as real half B
    report = judge_generation(samples, real, classifier)
    assert report.count == 200 and report.real_count == 200
    assert sum(report.class_histogram) == 200
    assert report.classes_present == report.num_classes == SYNTHETIC_CLASSES
    assert report.largest_class_share < 0.6
    assert report.blank_share == 0.0 and report.blank_threshold == 0.03
    assert report.frechet_floor > 0
    assert 0.3 < report.frechet_ratio < 3.0
    assert report.frechet_ratio == pytest.approx(report.frechet / report.frechet_floor)
    # Seeded: the same call gives the same numbers; another seed splits the real set differently.
    assert judge_generation(samples, real, classifier) == report
    assert judge_generation(samples, real, classifier, seed=1).frechet_floor != report.frechet_floor


def test_judge_all_black_images_are_blank(trained, held_out):
    report = judge_generation(torch.zeros(100, 1, 16, 16), held_out[200:], trained[0])
    assert report.blank_share == 1.0
    assert report.largest_class_share == 1.0 and report.classes_present == 1
    assert report.frechet_ratio > 3.0
    # The threshold is what decides: faint images are blank at 0.03, not at 0.001.
    faint = torch.full((10, 1, 16, 16), 0.01)
    assert judge_generation(faint, held_out[200:], trained[0]).blank_share == 1.0
    lenient = judge_generation(faint, held_out[200:], trained[0], blank_threshold=0.001)
    assert lenient.blank_share == 0.0


def test_judge_copies_of_one_image_collapse(trained, held_out):
    copies = held_out[:1].repeat(200, 1, 1, 1)
    report = judge_generation(copies, held_out[200:], trained[0], batch_size=64)
    assert report.largest_class_share == 1.0 and report.classes_present == 1
    assert report.blank_share == 0.0
    assert report.frechet_ratio > 5.0


def test_report_is_json_ready_and_markdown_defines_numbers(trained, held_out):
    report = judge_generation(held_out[:100], held_out[200:], trained[0], blank_threshold=0.05)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["class_histogram"] == report.class_histogram
    assert set(data) == set(GenerationReport.__dataclass_fields__)
    text = report.markdown()
    assert "| metric | value | definition |" in text
    assert "below 0.05" in text and "half A" in text and "half B" in text
    assert f"{report.frechet_ratio:.2f}" in text
    infinite = GenerationReport(**{**report.to_dict(), "frechet_ratio": math.inf})
    assert json.dumps(infinite.to_dict(), allow_nan=False)


def test_judge_rejects_mismatched_images(trained, held_out):
    with pytest.raises(ValueError, match="same shape"):
        judge_generation(torch.rand(10, 1, 20, 20), held_out, trained[0])
