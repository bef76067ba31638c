"""coldkit.blocks and the split helper: the public building blocks the built-ins are made of."""

from __future__ import annotations

import torch

from coldkit.blocks import PcaMixturePrior, PriorWithDrawnParams
from coldkit.data import split_indices, take_split
from coldkit.generation.draws import draw_from_prior
from coldkit.params import PcaMixtureParams, SplitParams
from coldkit.plugins import Registry
from coldkit.testing import check_prior, make_test_images
from coldkit_plugins.priors import PcaGmm

PARAMS = PcaMixtureParams(components=2, dims=4)


def test_the_pca_mixture_prior_passes_the_kit_and_is_what_pca_gmm_draws():
    assert "state_dict round trip" in " ".join(check_prior(lambda: PcaMixturePrior(PARAMS)))
    x_T = make_test_images(count=32)
    ours, builtin = PcaMixturePrior(PARAMS), PcaGmm(PcaGmm.Params(components=2, dims=4))
    ours.fit(x_T, seed=1), builtin.fit(x_T, seed=1)
    draws = [p.sample(5, torch.Generator().manual_seed(0)) for p in (ours, builtin)]
    assert torch.equal(*draws)


def test_the_params_adapter_lets_a_random_parameter_degradation_generate():
    mask = Registry.discover().get("degradation", "mask").build({"steps": 4})
    x0 = make_test_images(count=16)
    x_T = mask.degrade(x0, torch.full((16,), 4), mask.sample_params(x0, torch.Generator()))
    prior = PriorWithDrawnParams(PcaMixturePrior(PARAMS), mask)
    prior.fit(x_T)
    check_prior(lambda: PriorWithDrawnParams(PcaMixturePrior(PARAMS), mask), x_T)
    drawn, params = draw_from_prior(prior, mask, 3, torch.Generator().manual_seed(0))
    assert drawn.shape == (3, 3, 16, 16) and set(params) == set(mask.sample_params(x0))
    assert all(len(value) == 3 for value in params.values())


def test_take_split_keeps_labels_with_images_and_the_splits_disjoint():
    images = torch.arange(100.0).view(100, 1, 1, 1)
    labels = torch.arange(100)
    params = SplitParams(val_fraction=0.2, test_fraction=0.1, split_seed=3, limit=50)
    parts = {split: take_split(images, split, params, labels) for split in ("train", "val", "test")}
    assert [len(parts[s][0]) for s in ("train", "val", "test")] == [50, 20, 10]
    for part_images, part_labels in parts.values():
        assert torch.equal(part_images.view(-1).long(), part_labels)
    seen = torch.cat([part[1] for part in parts.values()])
    assert len(set(seen.tolist())) == len(seen)
    test_indices = split_indices(100, "test", 0.2, 0.1, 3)
    assert torch.equal(parts["test"][1], labels[test_indices])


def test_the_refusal_without_params_points_a_third_party_author_at_the_adapter():
    import pytest

    from coldkit.errors import ParamsError

    mask = Registry.discover().get("degradation", "mask").build({"steps": 4})
    prior = PcaMixturePrior(PARAMS)
    prior.fit(make_test_images(count=16))
    with pytest.raises(ParamsError) as refused:
        draw_from_prior(prior, mask, 2, torch.Generator())
    message = str(refused.value)
    assert "coldkit.blocks.PriorWithDrawnParams" in message
    assert "its documentation names the setting" in message


def test_temperature_narrows_each_component_around_its_mean_with_the_same_components():
    import pytest
    from pydantic import ValidationError

    from coldkit.blocks import sample_mixture

    state = {
        "weights": torch.tensor([0.3, 0.7], dtype=torch.float64),
        "means": torch.tensor([[0.0, 0.0], [10.0, -5.0]], dtype=torch.float64),
        "cholesky": torch.tensor([[[1.0, 0.0], [0.5, 2.0]], [[3.0, 0.0], [0.0, 0.1]]],
                                 dtype=torch.float64),
    }
    full = sample_mixture(state, 400, torch.Generator().manual_seed(4))
    narrow = sample_mixture(state, 400, torch.Generator().manual_seed(4), temperature=0.5)
    # the components drawn first from the same generator state: the same at any temperature
    drawn = torch.multinomial(state["weights"], 400, True, generator=torch.Generator().manual_seed(4))
    centres = state["means"][drawn]
    assert torch.allclose(narrow - centres, 0.5 * (full - centres))
    assert torch.equal(full, sample_mixture(state, 400, torch.Generator().manual_seed(4), 1.0))
    for bad in (0.0, 1.5):
        with pytest.raises(ValidationError):
            PcaMixtureParams(temperature=bad)


def test_a_prior_draws_at_its_temperature():
    x_T = make_test_images(count=32)
    spreads = []
    for temperature in (1.0, 0.25):
        prior = PcaGmm(PcaGmm.Params(components=2, dims=4, temperature=temperature))
        prior.fit(x_T, seed=1)
        drawn = prior.sample(200, torch.Generator().manual_seed(0))
        spreads.append(float(drawn.std(dim=0).mean()))
    assert spreads[1] < 0.5 * spreads[0]
