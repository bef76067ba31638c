"""The ``stride-2`` sampler: Algorithm 2 taking two levels per restorer call.

From level ``s`` it goes to ``s' = max(s - 2, 0)`` with the paper's update
``x_{s'} = x_s - D(x̂0, s) + D(x̂0, s')``: half the restorer calls of ``improved``, and, like it,
exact when the restorer is. Each sample starts at its own ``t``; a sample that reached 0 is left
alone. The degradation's ``params`` are reused at every step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from coldkit import Degradation, DegradationParams, Restorer, StepCallback


@torch.no_grad()
def stride_2(
    restorer: Restorer,
    degradation: Degradation,
    x_t: Tensor,
    t: Tensor,
    params: DegradationParams | None = None,
    *,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Algorithm 2 with steps of two levels: ``x_{s-2} = x_s - D(x̂0, s) + D(x̂0, s-2)``.

    The ``coldkit.Sampler`` signature of plugin API 4: ``generator`` is unused (nothing is
    drawn), ``callback`` is told each step as ``{"x": x_s, "i": s, "denoised": x̂0}``.
    """
    x, level = x_t, t.long()
    while bool((level > 0).any()):
        following = (level - 2).clamp(min=0)
        x0_hat = restorer(x, level)
        if callback is not None:
            callback({"x": x, "i": int(level.max()), "denoised": x0_hat})
        step = x - degradation.degrade(x0_hat, level, params) + degradation.degrade(
            x0_hat, following, params
        )
        x = torch.where((level > 0).view(-1, 1, 1, 1), step, x)
        level = following
    return x
