"""Training-time augmentation of x0: exact shifts and flips, rotation/zoom, and the trainer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from coldkit.data.augment import apply_augmentation, augmentation_enabled, draw_augmentation
from coldkit.config import AugmentSection, TrainSection, apply_overrides, build_experiment
from coldkit.errors import ConfigError
from coldkit.plugins import Registry
from tests.conftest import tiny_experiment
from tests.training.test_metrics_and_trainer import make_trainer


def test_off_by_default_and_then_draws_nothing(tmp_path: Path, monkeypatch):
    assert not augmentation_enabled(TrainSection().augment)
    assert augmentation_enabled(AugmentSection(flip=True))

    def must_not_draw(*args, **kwargs):
        raise AssertionError("augmentation drew parameters while off")

    # Runs without augmentation draw exactly the levels and images they drew before it existed.
    monkeypatch.setattr("coldkit.training.trainer.draw_augmentation", must_not_draw)
    zero = AugmentSection(shift=0, rotate=0.0, scale=0.0, flip=False)
    assert len(make_trainer(tmp_path, augment=zero).fit().losses) == 5


def test_shifts_are_exact_circular_rolls_and_flips_are_mirrors():
    images = torch.rand(16, 3, 8, 10, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    params = draw_augmentation(AugmentSection(shift=3, flip=True), 16, generator)
    out = apply_augmentation(images, params)
    assert params["dy"].abs().max() <= 3 and params["dx"].abs().max() <= 3
    assert 0 < int(params["flip"].sum()) < 16 and (params["dy"] != 0).any()
    for image, result, dy, dx, flip in zip(
        images, out, params["dy"], params["dx"], params["flip"]
    ):
        expected = image.flip(-1) if flip else image
        expected = torch.roll(expected, (int(dy), int(dx)), dims=(-2, -1))
        assert torch.equal(result, expected)


def test_rotation_turns_a_bar_and_zoom_magnifies_it():
    bar = torch.zeros(1, 1, 16, 16)
    bar[..., 7:9, 2:14] = 1.0  # horizontal
    quarter = draw_augmentation(AugmentSection(), 1, torch.Generator())
    quarter["angle"] = torch.tensor([math.pi / 2])
    turned = apply_augmentation(bar, quarter)
    torch.testing.assert_close(turned, bar.transpose(-1, -2), atol=1e-5, rtol=0)

    zoomed_params = draw_augmentation(AugmentSection(), 1, torch.Generator())
    zoomed_params["zoom"] = torch.tensor([1.5])
    zoomed = apply_augmentation(bar, zoomed_params)
    assert (zoomed[0, 0, 8] > 0.5).sum() > (bar[0, 0, 8] > 0.5).sum()


def test_drawn_rotations_and_zooms_stay_within_their_limits_and_keep_the_rest():
    generator = torch.Generator().manual_seed(0)
    params = draw_augmentation(AugmentSection(rotate=10, scale=0.1), 256, generator)
    assert params["angle"].abs().max() <= math.radians(10) + 1e-6
    assert ((params["zoom"] - 1).abs() <= 0.1 + 1e-6).all()
    assert not params["flip"].any() and not params["dy"].any() and not params["dx"].any()
    images = torch.rand(256, 1, 12, 12, generator=generator)
    out = apply_augmentation(images, params)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1


def test_augmented_training_is_reproducible_and_differs_from_plain(tmp_path: Path):
    augment = AugmentSection(shift=2, rotate=15, scale=0.1, flip=True)
    first = make_trainer(tmp_path / "a", augment=augment).fit().losses
    second = make_trainer(tmp_path / "b", augment=augment).fit().losses
    plain = make_trainer(tmp_path / "c").fit().losses
    assert first == second and first != plain


def test_augmented_training_resumes_where_it_stopped(tmp_path: Path):
    augment = AugmentSection(shift=1, rotate=10)
    whole = make_trainer(tmp_path / "whole", steps=4, augment=augment).fit().losses
    make_trainer(tmp_path / "split", steps=2, augment=augment).fit()
    resumed = make_trainer(tmp_path / "split", steps=4, augment=augment)
    assert resumed.resume()
    assert resumed.fit().losses == pytest.approx(whole, rel=1e-6)


def test_config_section_and_its_errors():
    data = apply_overrides(
        tiny_experiment(train={"augment": {"shift": 2, "rotate": 8.5}}),
        ["train.augment.flip=true"],
    )
    config = build_experiment(data, Registry.discover()).config
    assert config.train.augment == AugmentSection(shift=2, rotate=8.5, flip=True)
    for bad in ({"shear": 2}, {"shift": -1}, {"scale": 1.5}):
        with pytest.raises(ConfigError) as error:
            build_experiment(tiny_experiment(train={"augment": bad}), Registry.discover())
        assert f"train.augment.{next(iter(bad))}" in str(error.value)
