"""coldkit-swirl's tests: coldkit's conformance kit on every component, plus a few of our own.

Run them with the package installed (``pip install -e ".[test]"``, then ``pytest``):
``check_plugin`` finds the components through the entry points, as ``coldkit`` does.
"""

from __future__ import annotations

import math

import torch

from coldkit import RestorerContext
from coldkit.testing import (
    builtin_degradations,
    check_degradation,
    check_plugin,
    check_restorer,
    check_sampler,
    make_test_images,
)
from coldkit_swirl.degradation import Swirl, SwirlParams
from coldkit_swirl.restorer import SwirlCNN, SwirlCNNParams
from coldkit_swirl.sampler import stride_2


def test_everything_we_register_passes_the_kit():
    # The one line a plugin needs. The cost factor is generous because timing on a loaded CI
    # machine is noisy; a loop over t would cost about T (10) times as much.
    report = check_plugin("coldkit-swirl", cost_factor=8.0)
    assert set(report.checked) == {"degradation swirl", "restorer swirl-cnn", "sampler stride-2"}


def test_swirl_with_random_centres_on_grey_images():
    swirl = Swirl(SwirlParams(jitter=0.4, steps=6))
    check_degradation(swirl, make_test_images(channels=1, seed=2), check_speed=False)
    params = swirl.sample_params(make_test_images(count=4), torch.Generator().manual_seed(0))
    assert params["centre"].shape == (4, 2) and params["centre"].abs().max() <= 0.4


def test_swirl_keeps_the_middle_and_twists_more_with_t():
    x0 = make_test_images(count=2, size=16)
    swirl = Swirl(SwirlParams(steps=4, padding="zeros"))
    distances = [
        float((swirl.degrade(x0, torch.full((2,), level)) - x0).abs().mean()) for level in range(5)
    ]
    assert distances[0] == 0.0 and distances == sorted(distances)


def test_swirl_cnn_for_grey_images_and_long_schedules():
    check_restorer(
        lambda context: SwirlCNN(SwirlCNNParams(width=8, depth=2), context),
        RestorerContext(channels=1, image_size=16, steps=50),
    )


def test_stride_2_is_exact_with_an_oracle_and_halves_the_calls():
    # An odd T ends with a single-level step.
    check_sampler(stride_2, [Swirl(SwirlParams(steps=5, jitter=0.3)), *builtin_degradations()])
    swirl = Swirl(SwirlParams(steps=7))
    x0 = make_test_images(count=3)
    t = torch.tensor([7, 2, 0])
    calls = []

    def oracle(x, level):
        calls.append(level.tolist())
        return x0

    restored = stride_2(oracle, swirl, swirl.degrade(x0, t), t)
    assert torch.allclose(restored, x0, atol=1e-5)
    assert len(calls) == math.ceil(7 / 2)
    assert calls[0] == [7, 2, 0] and calls[1] == [5, 0, 0]
