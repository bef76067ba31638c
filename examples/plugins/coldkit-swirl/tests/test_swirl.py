"""coldkit-swirl's tests: coldkit's conformance kit on every component, plus a few of our own.

Run them with the package installed (``pip install -e ".[test]"``, then ``pytest``):
``check_plugin`` finds the components through the entry points, as ``coldkit`` does. Everything
comes from coldkit's public API: ``coldkit``, ``coldkit.testing`` (the checks and
``build_context``, the context a run would give a component).
"""

from __future__ import annotations

import math

import torch

from coldkit import ImageSet
from coldkit.testing import (
    build_context,
    builtin_degradations,
    check_dataset,
    check_degradation,
    check_generation,
    check_plugin,
    check_prior,
    check_restorer,
    check_sampler,
    make_test_images,
)
from coldkit_swirl.dataset import Stripes
from coldkit_swirl.degradation import Swirl
from coldkit_swirl.params import SwirlCNNParams, SwirlParams, SwirlPriorParams, StripesParams
from coldkit_swirl.prior import SwirlPrior
from coldkit_swirl.restorer import SwirlCNN
from coldkit_swirl.sampler import stride_2


def test_everything_we_register_passes_the_kit():
    # The one line a plugin needs. The cost factor is generous because timing on a loaded CI
    # machine is noisy; a loop over t would cost about T (10) times as much.
    report = check_plugin("coldkit-swirl", cost_factor=8.0)
    assert set(report.checked) == {
        "degradation swirl", "restorer swirl-cnn", "sampler stride-2", "prior swirl-pca",
        "dataset stripes",
    }


def test_swirl_with_random_centres_on_grey_images():
    swirl = Swirl(SwirlParams(jitter=0.4, steps=6))
    assert swirl.random_params == ("centre",)
    check_degradation(swirl, make_test_images(channels=1, seed=2), check_speed=False)
    params = swirl.sample_params(make_test_images(count=4), torch.Generator().manual_seed(0))
    assert params["centre"].shape == (4, 2) and params["centre"].abs().max() <= 0.4


def test_swirl_generates_and_restores_with_its_params():
    # An oracle restorer and prior give x0 back through generation and restore.
    check_generation(Swirl(SwirlParams(jitter=0.3, steps=4)))


def test_swirl_keeps_the_middle_and_twists_more_with_t():
    x0 = make_test_images(count=2, size=16)
    swirl = Swirl(SwirlParams(steps=4, padding="zeros"))
    distances = [
        float((swirl.degrade(x0, torch.full((2,), level)) - x0).abs().mean()) for level in range(5)
    ]
    assert distances[0] == 0.0 and distances == sorted(distances)


def test_swirl_cnn_for_grey_images_and_long_schedules():
    check_restorer(
        lambda context: SwirlCNN(SwirlCNNParams(width=8, depth=2), context=context),
        build_context(image_size=16, channels=1, steps=50),
    )


def test_the_prior_draws_the_swirls_centres_from_its_build_context():
    swirl = Swirl(SwirlParams(jitter=0.3, steps=4))
    x0 = make_test_images(count=32)
    x_T = swirl.degrade(x0, torch.full((32,), 4), swirl.sample_params(x0, torch.Generator()))
    context = build_context(steps=4, degradation=swirl)  # a prior is built after the degradation
    params = SwirlPriorParams(components=2, dims=4)
    check_prior(lambda: SwirlPrior(params, context=context), x_T)
    prior = SwirlPrior(params, context=context)
    prior.fit(x_T)
    drawn, centres = prior.sample_with_params(5, torch.Generator().manual_seed(0))
    assert drawn.shape == (5, 3, 16, 16) and centres["centre"].shape == (5, 2)


def test_stripes_are_split_like_the_builtins_and_served_through_load_dataset():
    check_dataset(Stripes(StripesParams(count=60, size=16, val_fraction=0.1)))
    grey = Stripes(StripesParams(count=60, size=16, channels=1))

    def fake_load_dataset(name, params=None, split="train"):
        assert name == "stripes"
        return grey.load(split)

    # A component reading "stripes" through its context gets the run's channels (3 here).
    context = build_context(channels=3, split="test", load_dataset=fake_load_dataset)
    served = context.load_dataset("stripes")
    assert isinstance(served, ImageSet) and served.images.shape == (6, 3, 16, 16)


def test_stride_2_is_exact_with_an_oracle_and_halves_the_calls():
    # An odd T ends with a single-level step.
    check_sampler(stride_2, [Swirl(SwirlParams(steps=5, jitter=0.3)), *builtin_degradations()])
    swirl = Swirl(SwirlParams(steps=7))
    x0 = make_test_images(count=3)
    t = torch.tensor([7, 2, 0])
    calls, steps = [], []

    def oracle(x, level):
        calls.append(level.tolist())
        return x0

    restored = stride_2(oracle, swirl, swirl.degrade(x0, t), t, callback=steps.append)
    assert torch.allclose(restored, x0, atol=1e-5)
    assert len(calls) == math.ceil(7 / 2) == len(steps)
    assert calls[0] == [7, 2, 0] and calls[1] == [5, 0, 0]
    assert [step["i"] for step in steps] == [7, 5, 3, 1]
