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
from coldkit.path_noise import mean_params, mean_path, path_sigmas, redraw_path_noise


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
    """Algorithm 2: for s = t … 1, ``x̂0 = R(x_s, s)``; ``x_{s-1} = x_s − D(x̂0, s) + D(x̂0, s−1)``.

    On a noisy path the drawn noise ``ε`` of ``params`` is kept at every level (deterministic)."""
    return _algorithm2(restorer, degradation, x_t, t, params, None, 0.0, callback, redraw=False)


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
    """Algorithm 2 with fresh noise at every step but the last.

    On a noisy path (``[degradation.path_noise]``) the path's own noise is drawn anew for every
    level: ``x_{s-1} = x_s − D(x̂0, s; ε_s) + D(x̂0, s−1; ε_{s−1})``, so ``x_{s-1}`` carries noise
    of the path's ``σ_{s-1}``, as in inverse heat dissipation. ``noise`` adds Gaussian noise of
    that std on top (any degradation); ``noise = 0`` on a path without noise is exactly
    Algorithm 2. Noise is drawn on the CPU from ``generator``, so a seeded run gives the same
    samples on every device.
    """
    return _algorithm2(
        restorer, degradation, x_t, t, params, generator, noise, callback, redraw=True
    )


def _algorithm2(
    restorer: Restorer,
    degradation: Degradation,
    x_t: Tensor,
    t: Tensor,
    params: DegradationParams | None,
    generator: torch.Generator | None,
    noise: float,
    callback: StepCallback | None,
    *,
    redraw: bool,
) -> Tensor:
    """Algorithm 2 plus ``noise`` per step; with ``redraw``, the path noise drawn anew per level."""
    x = x_t
    for s in range(int(t.max()), 0, -1):
        active = (t >= s).view(-1, 1, 1, 1)
        level = torch.full_like(t, s)
        x0_hat = _restore(restorer, x, level, callback)
        fresh = redraw and s > 1
        later = redraw_path_noise(degradation, params, x, generator, t >= s) if fresh else params
        step = x - degradation.degrade(x0_hat, level, params) + degradation.degrade(
            x0_hat, level - 1, later
        )
        if noise > 0 and s > 1:
            step = step + noise * torch.randn(step.shape, generator=generator).to(step)
        x = torch.where(active, step, x)
        params = later
    return x


#: ``stochastic`` adds noise per step: it takes ``noise`` (``generate.step_noise``).
stochastic.takes_noise = True  # type: ignore[attr-defined]


@torch.no_grad()
def momentum(
    restorer: Restorer,
    degradation: Degradation,
    x_t: Tensor,
    t: Tensor,
    params: DegradationParams | None = None,
    *,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Soft Diffusion's Momentum Sampler (Daras et al. 2022) on the path ``D(x0, s) + σ_s ε``.

    For s = t … 1, with ``D`` the mean path and ``ŷ_s = D(x̂0, s)``, ``x̂0 = R(x_s, s)``:

    * a score step from noise ``σ_s`` to ``σ_{s-1}``: ``x ← x_s + (σ_s² − σ_{s−1}²)/σ_s² ·
      (ŷ_s − x_s) + sqrt(σ_s² − σ_{s−1}²) η`` (``η`` standard normal, none at the last step);
    * the deblurring step of Algorithm 2: ``x_{s−1} = x + ŷ_{s−1} − ŷ_s``.

    Where ``σ_s = σ_{s−1}`` (a path without noise, or a constant schedule before its last step)
    the score step does nothing and this is exactly Algorithm 2 on the mean path; at the last
    step (``σ_0 = 0``) it returns ``x̂0``. ``η`` is drawn on the CPU from ``generator``.
    """
    mean, drawn, sigmas = mean_path(degradation), mean_params(params), path_sigmas(degradation)
    x = x_t
    for s in range(int(t.max()), 0, -1):
        active = (t >= s).view(-1, 1, 1, 1)
        level = torch.full_like(t, s)
        x0_hat = _restore(restorer, x, level, callback)
        y_now, y_next = mean.degrade(x0_hat, level, drawn), mean.degrade(x0_hat, level - 1, drawn)
        step = x - y_now + y_next
        variance = float(sigmas[s] ** 2 - sigmas[s - 1] ** 2)
        if variance > 0:
            step = step + variance / float(sigmas[s] ** 2) * (y_now - x)
            if s > 1:
                fresh = torch.randn(step.shape, generator=generator).to(step)
                step = step + variance**0.5 * fresh
        x = torch.where(active, step, x)
    return x
