"""Where generation starts: x_T drawn from a fitted prior with the degradation parameters they were
degraded with (the parameters of images that arrive degraded, for ``coldkit restore``, are
:func:`coldkit.runs.opened.params_of_degraded_images`)."""

from __future__ import annotations

import torch
from torch import Tensor

from coldkit.errors import ParamsError
from coldkit.path_noise import PATH_NOISE, add_path_noise, mean_path
from coldkit.plugins.compat import random_params
from coldkit.protocols import Degradation, DegradationParams, Prior, PriorWithParams


def draw_from_prior(
    prior: Prior, degradation: Degradation, count: int, generator: torch.Generator
) -> tuple[Tensor, DegradationParams]:
    """``count`` x_T from ``prior`` with the degradation parameters they were degraded with.

    A prior with ``sample_with_params`` returns them; for a deterministic degradation (empty
    ``sample_params``) there are none. A degradation with random parameters and a prior that
    does not return them is refused with :class:`ParamsError`: fresh params unrelated to x_T
    would make every Algorithm 2 step subtract the wrong ``D(x̂0, s; params)``.

    On a noisy path (``[degradation.path_noise]``) a prior that models the end of the mean path
    (its params lack the path noise: every mixture) has the path's own noise ``σ_T ε`` added to
    each draw, ``ε`` returned with the params (:func:`coldkit.path_noise.add_path_noise`).
    """
    if isinstance(prior, PriorWithParams):
        x_T, params = prior.sample_with_params(count, generator)
        if PATH_NOISE not in params:
            x_T, params = add_path_noise(degradation, x_T, params, generator)
        _check_prior_params(prior, degradation, x_T, params)
        return x_T, params
    x_T = prior.sample(count, generator)
    probe = random_params(mean_path(degradation), x_T)
    if probe:
        raise ParamsError(
            f"degradation {degradation.name!r} draws random parameters "
            f"({', '.join(sorted(probe))}) for every image, and prior "
            f"{getattr(prior, 'name', type(prior).__name__)!r} draws x_T without them: generation "
            "cannot know which draw degraded x_T, and fresh draws would make every sampler step "
            "undo a degradation x_T never had. Use a prior that returns its parameters "
            "(sample_with_params: e.g. morph's 'morph-target', or any prior wrapped in "
            "coldkit.blocks.PriorWithDrawnParams), or configure the degradation so that it "
            "draws nothing (its documentation names the setting; for the built-in mask, "
            "centre = \"fixed\"); see docs/generation.md."
        )
    return add_path_noise(degradation, x_T, {}, generator)


def _check_prior_params(
    prior: Prior, degradation: Degradation, x_T: Tensor, params: DegradationParams
) -> None:
    """The prior's params have the degradation's keys and one entry per x_T."""
    expected = set(random_params(degradation, x_T))
    label = getattr(prior, "name", type(prior).__name__)
    if set(params) != expected or any(len(value) != len(x_T) for value in params.values()):
        raise ParamsError(
            f"prior {label!r} returned parameters {sorted(params)} for {len(x_T)} images, but "
            f"degradation {degradation.name!r} takes {sorted(expected)}, one per image: pick the "
            "prior made for this degradation, or make the two agree (same target dataset, ...)."
        )


