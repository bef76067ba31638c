"""The prior contract: :func:`check_prior`."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from coldkit.testing._common import _generator, make_test_images


def check_prior(prior_factory: Callable[[], object], x_T: Tensor | None = None, seed: int = 0) -> list[str]:
    """Run the prior contract on fresh priors from ``prior_factory`` (e.g. ``lambda: Gmm()``).

    ``x_T`` (default: blurred :func:`make_test_images`, 64 images) is what the prior is fitted on.
    Checks: the protocol's attributes; ``sample`` returns ``(count, C, H, W)`` float32 finite
    images shaped like ``x_T``; the same seed gives the same draws and another seed other draws;
    ``state_dict`` holds tensors only, survives ``torch.save`` / ``torch.load(weights_only=True)``
    and a fresh prior loaded from it draws exactly what the fitted one draws. Returns the names of
    the checks passed; raises :class:`AssertionError` naming the first failure.
    """
    import io

    from coldkit.protocols import Prior, PriorWithParams

    if x_T is None:
        x_T = F.avg_pool2d(make_test_images(64, 16, 3, seed), 5, stride=1, padding=2)
    prior = prior_factory()
    label = str(getattr(prior, "name", type(prior).__name__))
    passed = []
    missing = [a for a in ("name", "description", "fit", "sample", "state_dict", "load_state_dict")
               if not hasattr(prior, a)]
    assert not missing and isinstance(prior, Prior), f"prior {label}: lacks {', '.join(missing)}"
    passed.append("interface")

    prior.fit(x_T, seed=seed)
    draws = prior.sample(5, _generator(seed))
    assert isinstance(draws, Tensor) and draws.shape == (5, *x_T.shape[1:]), (
        f"prior {label}: sample(5) gave shape {tuple(getattr(draws, 'shape', ()))}, "
        f"expected {(5, *x_T.shape[1:])}"
    )
    assert draws.dtype == torch.float32, f"prior {label}: samples are {draws.dtype}, not float32"
    assert bool(torch.isfinite(draws).all()), f"prior {label}: samples hold NaN or inf"
    passed.append("sample shape, dtype, finite")

    again = prior.sample(5, _generator(seed))
    assert torch.equal(draws, again), f"prior {label}: the same seed gave different draws"
    # A prior may be deterministic (the same x_T whatever the seed); a random one must draw from
    # the generator it is given, which the same-seed check above already requires.
    passed.append("seeded")
    if isinstance(prior, PriorWithParams):
        passed.append(_check_params(prior, draws, seed, label))

    state = prior.state_dict()
    bad = [key for key, value in state.items() if not isinstance(value, Tensor)]
    assert not bad, f"prior {label}: state_dict entries {bad} are not tensors"
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded_state = torch.load(buffer, weights_only=True)
    fresh = prior_factory()
    fresh.load_state_dict(loaded_state)
    reloaded = fresh.sample(5, _generator(seed))
    assert torch.equal(draws, reloaded), (
        f"prior {label}: a prior loaded from state_dict draws differently from the fitted one"
    )
    passed.append("state_dict round trip")
    return passed



def _check_params(prior, draws: Tensor, seed: int, label: str) -> str:  # type: ignore[no-untyped-def]
    """``sample_with_params`` gives ``sample``'s x_T for the same seed, and batch-first tensor
    params, one per image."""
    x_T, params = prior.sample_with_params(5, _generator(seed))
    assert torch.equal(x_T, draws), (
        f"prior {label}: sample_with_params and sample gave different x_T for the same seed"
    )
    assert isinstance(params, dict) and all(
        isinstance(value, Tensor) and len(value) == 5 for value in params.values()
    ), f"prior {label}: sample_with_params(5) must return params as a dict of (5, ...) tensors"
    return "params with x_T"
