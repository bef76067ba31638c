"""The paper's samplers, each a short function to read against its algorithm.

All start from ``x_t`` (degraded to per-sample levels ``t``) and reuse the degradation's random
``params`` at every step, which Algorithm 2 needs to be exact.
"""

from __future__ import annotations

import torch
from torch import Tensor

from coldkit import Degradation, DegradationParams, Restorer, hookimpl


@torch.no_grad()
def direct(
    restorer: Restorer,
    degradation: Degradation,
    x_t: Tensor,
    t: Tensor,
    params: DegradationParams | None = None,
) -> Tensor:
    """One call: ``x̂0 = R(x_t, t)``."""
    return torch.where((t == 0).view(-1, 1, 1, 1), x_t, restorer(x_t, t))


@torch.no_grad()
def naive(
    restorer: Restorer,
    degradation: Degradation,
    x_t: Tensor,
    t: Tensor,
    params: DegradationParams | None = None,
) -> Tensor:
    """Algorithm 1: for s = t … 1, ``x̂0 = R(x_s, s)``; ``x_{s-1} = D(x̂0, s-1)``."""
    x = x_t
    for s in range(int(t.max()), 0, -1):
        active = (t >= s).view(-1, 1, 1, 1)  # samples that start lower wait for their turn
        level = torch.full_like(t, s)
        x0_hat = restorer(x, level)
        x = torch.where(active, degradation.degrade(x0_hat, level - 1, params), x)
    return x


@torch.no_grad()
def improved(
    restorer: Restorer,
    degradation: Degradation,
    x_t: Tensor,
    t: Tensor,
    params: DegradationParams | None = None,
) -> Tensor:
    """Algorithm 2: for s = t … 1, ``x̂0 = R(x_s, s)``; ``x_{s-1} = x_s − D(x̂0, s) + D(x̂0, s−1)``."""
    x = x_t
    for s in range(int(t.max()), 0, -1):
        active = (t >= s).view(-1, 1, 1, 1)
        level = torch.full_like(t, s)
        x0_hat = restorer(x, level)
        step = x - degradation.degrade(x0_hat, level, params) + degradation.degrade(
            x0_hat, level - 1, params
        )
        x = torch.where(active, step, x)
    return x


@hookimpl
def register_samplers(register) -> None:
    register(direct, name="direct", description="one restorer call: x̂0 = R(x_T, T)")
    register(naive, name="naive", description="Algorithm 1: x_{s-1} = D(R(x_s, s), s-1)")
    register(
        improved,
        name="improved",
        description="Algorithm 2: x_{s-1} = x_s - D(x̂0, s) + D(x̂0, s-1)",
    )
