"""The paper's samplers, each a short function to read against its algorithm.

All start from ``x_t`` (degraded to per-sample levels ``t``) and reuse the degradation's random
``params`` at every step, which Algorithm 2 needs to be exact. Each follows the plugin API 4
sampler protocol: ``generator`` seeds what it draws, ``callback`` (if given) hears every step as
``{"x": x_s, "i": s, "denoised": x̂0}``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from coldkit import Degradation, DegradationParams, Restorer, StepCallback


def _restore(
    restorer: Restorer, x: Tensor, level: Tensor, callback: StepCallback | None
) -> Tensor:
    """``x̂0 = R(x_s, s)``, reported to ``callback``."""
    x0_hat = restorer(x, level)
    if callback is not None:
        callback({"x": x, "i": int(level.max()), "denoised": x0_hat})
    return x0_hat


@torch.no_grad()
def direct(
    restorer: Restorer,
    degradation: Degradation,
    x_t: Tensor,
    t: Tensor,
    params: DegradationParams | None = None,
    *,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """One call: ``x̂0 = R(x_t, t)``."""
    return torch.where((t == 0).view(-1, 1, 1, 1), x_t, _restore(restorer, x_t, t, callback))


@torch.no_grad()
def naive(
    restorer: Restorer,
    degradation: Degradation,
    x_t: Tensor,
    t: Tensor,
    params: DegradationParams | None = None,
    *,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Algorithm 1: for s = t … 1, ``x̂0 = R(x_s, s)``; ``x_{s-1} = D(x̂0, s-1)``."""
    x = x_t
    for s in range(int(t.max()), 0, -1):
        active = (t >= s).view(-1, 1, 1, 1)  # samples that start lower wait for their turn
        level = torch.full_like(t, s)
        x0_hat = _restore(restorer, x, level, callback)
        x = torch.where(active, degradation.degrade(x0_hat, level - 1, params), x)
    return x


@torch.no_grad()
def improved(
    restorer: Restorer,
    degradation: Degradation,
    x_t: Tensor,
    t: Tensor,
    params: DegradationParams | None = None,
    *,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Algorithm 2: for s = t … 1, ``x̂0 = R(x_s, s)``; ``x_{s-1} = x_s − D(x̂0, s) + D(x̂0, s−1)``."""
    return stochastic(restorer, degradation, x_t, t, params, noise=0.0, callback=callback)


@torch.no_grad()
def stochastic(
    restorer: Restorer,
    degradation: Degradation,
    x_t: Tensor,
    t: Tensor,
    params: DegradationParams | None = None,
    *,
    noise: float = 0.01,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Algorithm 2 plus Gaussian noise of std ``noise`` on ``x_{s-1}`` at every step but the last.

    The small per-step noise (as in inverse heat dissipation models) lets generation branch away
    from the restorer's mean prediction; ``noise = 0`` is exactly Algorithm 2. Noise is drawn on
    the CPU from ``generator``, so a seeded run gives the same samples on every device.
    """
    x = x_t
    for s in range(int(t.max()), 0, -1):
        active = (t >= s).view(-1, 1, 1, 1)
        level = torch.full_like(t, s)
        x0_hat = _restore(restorer, x, level, callback)
        step = x - degradation.degrade(x0_hat, level, params) + degradation.degrade(
            x0_hat, level - 1, params
        )
        if noise > 0 and s > 1:
            step = step + noise * torch.randn(step.shape, generator=generator).to(step)
        x = torch.where(active, step, x)
    return x


#: ``stochastic`` adds noise per step: it takes ``noise`` (``generate.step_noise``).
stochastic.takes_noise = True  # type: ignore[attr-defined]
