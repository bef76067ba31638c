"""The ``samplers`` plugin's entry point: its registration, without torch.

The samplers live in ``coldkit_plugins.samplers``, imported the first time a run uses one.
"""

from __future__ import annotations

from coldkit import hookimpl
from coldkit import Listing

#: Components registered by path (plugin API 3), called by the API 4 sampler protocol.
COLDKIT_PLUGIN_API = 4

DIRECT = Listing(
    "direct", "one restorer call: x̂0 = R(x_T, T)", "coldkit_plugins.samplers:direct"
)
NAIVE = Listing(
    "naive", "Algorithm 1: x_{s-1} = D(R(x_s, s), s-1)", "coldkit_plugins.samplers:naive"
)
IMPROVED = Listing(
    "improved",
    "Algorithm 2: x_{s-1} = x_s - D(x̂0, s) + D(x̂0, s-1)",
    "coldkit_plugins.samplers:improved",
)
STOCHASTIC = Listing(
    "stochastic",
    "Algorithm 2 with the path's noise drawn anew per step, plus step_noise (diversity)",
    "coldkit_plugins.samplers:stochastic",
)
MOMENTUM = Listing(
    "momentum",
    "Soft Diffusion's Momentum Sampler: a score step on the path noise, then Algorithm 2",
    "coldkit_plugins.samplers:momentum",
)


@hookimpl
def register_samplers(register) -> None:
    for sampler in (DIRECT, NAIVE, IMPROVED, STOCHASTIC, MOMENTUM):
        sampler.register(register)
