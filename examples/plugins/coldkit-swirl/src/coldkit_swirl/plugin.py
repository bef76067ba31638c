"""The plugin module named in ``[project.entry-points.coldkit]``: one hook per kind it adds."""

from __future__ import annotations

from coldkit import hookimpl
from coldkit_swirl.degradation import Swirl
from coldkit_swirl.restorer import SwirlCNN
from coldkit_swirl.sampler import stride_2


@hookimpl
def register_degradations(register) -> None:
    register(Swirl)  # name, description and Params are read from the class


@hookimpl
def register_restorers(register) -> None:
    register(SwirlCNN)


@hookimpl
def register_samplers(register) -> None:
    # A sampler is a plain function: name and description are given here.
    register(
        stride_2,
        name="stride-2",
        description="Algorithm 2 two levels at a time: x_{s-2} = x_s - D(x̂0, s) + D(x̂0, s-2)",
    )
