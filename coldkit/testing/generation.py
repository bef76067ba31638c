"""The generation contract of a degradation: :func:`check_generation`.

With a perfect restorer (it returns the true x0) and a perfect prior (it returns the true
``D(x0, T; params)`` together with its ``params``), generation must give back x0: Algorithm 2's
steps then telescope to ``D(x0, 0) = x0``. That holds only if generation hands the prior's params
to every sampler step, so the check catches a generation that draws fresh params; it also checks
that restoring ``D(x0, T; params)`` with those params gives x0, and that where params cannot be
known (a prior without them, an image that arrives degraded) a degradation with random
parameters is refused with :class:`coldkit.errors.ParamsError` instead of silently re-drawn.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from coldkit.errors import ParamsError
from coldkit.generation.draws import draw_from_prior
from coldkit.runs.opened import params_of_degraded_images
from coldkit.generation.sampling import generate_samples
from coldkit.plugins import Registry
from coldkit.protocols import Degradation, DegradationParams, Sampler
from coldkit.testing._common import WithParams, _full, _generator, _label, _resolve_images
from coldkit.testing.sampler import _OracleRestorer


class OraclePrior:
    """A prior that returns the true ``D(x0, T; params)`` of given images, with their params."""

    name: ClassVar[str] = "oracle"
    description: ClassVar[str] = "the true D(x0, T; params) of known images (for checks)"

    def __init__(self, x_T: Tensor, params: DegradationParams) -> None:
        self.x_T, self.params = x_T, params

    def fit(self, x_T: Tensor, seed: int = 0) -> None:
        """Nothing to fit."""

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        return self.x_T[:count].clone()

    def sample_with_params(
        self, count: int, generator: torch.Generator
    ) -> tuple[Tensor, DegradationParams]:
        return self.sample(count, generator), {k: v[:count] for k, v in self.params.items()}

    def state_dict(self) -> dict[str, Tensor]:
        return {"x_T": self.x_T}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.x_T = state["x_T"]


class _ParamlessPrior(OraclePrior):
    """The same draws without their params: what a mixture fitted on x_T alone gives."""

    sample_with_params = None  # type: ignore[assignment]

    def __init__(self, x_T: Tensor) -> None:
        super().__init__(x_T, {})


def check_generation(
    degradation: Degradation,
    images: Tensor | None = None,
    *,
    sampler: Sampler | None = None,
    seed: int = 0,
    atol: float = 1e-4,
    params: DegradationParams | None = None,
) -> list[str]:
    """Generation and restore with an oracle restorer and an oracle prior give back x0.

    ``images`` (default: :func:`make_test_images`) are the x0; ``sampler`` defaults to the
    built-in ``improved`` (Algorithm 2). Returns the names of the checks passed; raises
    :class:`AssertionError` naming the first failure. ``params`` are parameters for ``images``
    that come from the data (``paired``: ``{"y": twins}``), used in place of ``sample_params``.
    """
    x0 = _resolve_images(images).float()
    if params is not None:
        degradation = WithParams(degradation, params)  # type: ignore[assignment]
    sample = sampler or Registry.discover().get("sampler", "improved").build()
    label = _label(degradation)
    params = degradation.sample_params(x0, _generator(seed))
    x_T = degradation.degrade(x0, _full(degradation.steps, x0), params)
    restorer = _OracleRestorer(x0, degradation.steps, label)
    generated = generate_samples(
        restorer, degradation, OraclePrior(x_T, params), sample, len(x0), seed=seed,
        batch_size=len(x0),
    )
    error = float((generated - x0.clamp(0, 1)).abs().max())
    assert error <= atol, (
        f"{label}: generation from the oracle prior's D(x0, T; params) with an oracle restorer "
        f"is {error:.3g} away from x0 (allowed {atol}): the sampler steps did not get the "
        "prior's params"
    )
    passed = ["generation with the prior's params"]
    restored = sample(restorer, degradation, x_T, _full(degradation.steps, x0), params)
    error = float((restored - x0).abs().max())
    assert error <= atol, f"{label}: restoring with the draw's params is {error:.3g} from x0"
    passed.append("restore with params")
    passed.append(_check_unknown_params(degradation, x_T, params, label))
    return passed


def _check_unknown_params(
    degradation: Degradation, x_T: Tensor, params: DegradationParams, label: str
) -> str:
    """Without params: fine for a deterministic degradation, a ParamsError for a random one."""
    generator = _generator(0)
    try:
        draws = draw_from_prior(_ParamlessPrior(x_T), degradation, len(x_T), generator)[1]
        known = params_of_degraded_images(degradation, x_T)
    except ParamsError:
        assert params, f"{label}: refused a deterministic degradation's generation or restore"
        return "unknown params refused"
    assert not params and not draws and not known, (
        f"{label}: draws random params, yet generation from a prior without them was not refused"
    )
    return "deterministic: no params needed"


__all__ = ["OraclePrior", "check_generation"]
