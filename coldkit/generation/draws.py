"""Where generation starts: x_T drawn from a fitted prior with the degradation parameters they were
degraded with, and the parameters of images that arrive degraded (``coldkit restore``)."""

from __future__ import annotations

import torch
from torch import Tensor

from coldkit.errors import ParamsError
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
    """
    if isinstance(prior, PriorWithParams):
        x_T, params = prior.sample_with_params(count, generator)
        _check_prior_params(prior, degradation, x_T, params)
        return x_T, params
    x_T = prior.sample(count, generator)
    probe = random_params(degradation, x_T)
    if probe:
        raise ParamsError(
            f"degradation {degradation.name!r} draws random parameters "
            f"({', '.join(sorted(probe))}) for every image, and prior "
            f"{getattr(prior, 'name', type(prior).__name__)!r} draws x_T without them: generation "
            "cannot know which draw degraded x_T, and fresh draws would make every sampler step "
            "undo a degradation x_T never had. Use a prior that returns its parameters "
            "(sample_with_params; e.g. morph's 'morph-target'), or a deterministic setting of "
            "the degradation (mask: centre = \"fixed\"); see docs/generation.md."
        )
    return x_T, {}


def params_of_degraded_images(degradation: Degradation, x_t: Tensor) -> DegradationParams:
    """The degradation parameters of images that arrive degraded (``coldkit restore``,
    :meth:`coldkit.api.Run.restore` without ``params``): none for a deterministic degradation.

    For a degradation with random parameters the draw that degraded a file cannot be read back
    from it, and a fresh draw would restore against the wrong mask, snow or target image: that is
    refused with :class:`ParamsError`. A degradation that can read them from images at level T
    (``params_of_degraded``; ``paired``: y is the image itself) gives them.
    """
    if callable(getattr(degradation, "params_of_degraded", None)):
        return degradation.params_of_degraded(x_t)
    probe = random_params(degradation, x_t)
    if probe:
        raise ParamsError(
            f"degradation {degradation.name!r} draws random parameters "
            f"({', '.join(sorted(probe))}) for every image, and they cannot be known from a "
            "degraded image: restoring with a fresh draw would undo a degradation the image never "
            "had. Restore the tensors with the params Run.degrade returned "
            "(Run.restore(x_t, t, params=params)), or train with a deterministic setting "
            "(mask: centre = \"fixed\")."
        )
    return {}


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


