"""The ``standard-normal`` prior: x_T of a noise degradation as DDPM draws it (the hot baseline).

A degradation whose only random parameter is Gaussian noise ``ε`` (the ``noise`` degradation, a
third-party one alike) ends, at ``t = T``, in ``D(x0, T; ε)``: for DDPM's schedule almost pure
noise, with a faint trace of ``x0``. This prior draws ``ε`` standard normal and returns

    x_T = D(0, T; ε) + m,   m = mean over the training images of D(x0, T) − D(0, T; 0),

with ``ε`` as the degradation parameter, so Algorithm 2 subtracts the right ``D(x̂0, s; ε)`` at
every step. For an affine ``D`` (the DDPM formula is) ``m`` is the end state of the mean image:
DDPM's ``x_T ~ N(0, I)`` where ``abar_T`` is tiny, exact in mean otherwise. ``m`` is exact when
``fit`` is given the training draws' noise (generation does), else estimated from the mean of
``x_T`` alone (``ε`` has mean zero).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel
from torch import Tensor

from coldkit import BuildContext, Degradation, DegradationParams, NoParams
from coldkit.errors import ConfigError
from coldkit_plugins.entries.priors import STANDARD_NORMAL


class StandardNormal:
    """``x_T = D(0, T; ε) + m``, ``ε`` standard normal and returned as the degradation's params."""

    name: ClassVar[str] = STANDARD_NORMAL.name
    description: ClassVar[str] = STANDARD_NORMAL.description
    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, params: NoParams | None = None, *, context: BuildContext) -> None:
        self.degradation = _noise_degradation(context.degradation)
        (self.noise_name,) = self.degradation.random_params  # type: ignore[attr-defined]
        self.state: dict[str, Tensor] = {}

    def fit(self, x_T: Tensor, seed: int = 0, params: DegradationParams | None = None) -> None:
        """``m`` from the training ``x_T`` and, where given, the noise they were drawn with
        (exact); without it from their mean alone, ``ε`` averaging out (``seed`` is unused)."""
        if params and self.noise_name in params:
            noise = params[self.noise_name].float()
        else:
            noise = torch.zeros_like(x_T[:1], dtype=torch.float32)
        base = self._end(torch.zeros_like(noise), noise)
        self.state = {
            "offset": (x_T.double() - base.double()).mean(dim=0),
            "shape": torch.tensor(x_T.shape[1:]),
        }

    def sample_with_params(
        self, count: int, generator: torch.Generator
    ) -> tuple[Tensor, DegradationParams]:
        if not self.state:
            raise RuntimeError("prior standard-normal is not fitted: call fit() first")
        shape = (count, *(int(size) for size in self.state["shape"]))
        noise = torch.randn(shape, generator=generator)
        x_T = self._end(torch.zeros(shape), noise) + self.state["offset"].float()
        return x_T.float(), {self.noise_name: noise}

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        return self.sample_with_params(count, generator)[0]

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self.state)

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        missing = {"offset", "shape"} - set(state)
        if missing:
            raise ValueError(f"prior state lacks {', '.join(sorted(missing))}")
        self.state = dict(state)

    def _end(self, x0: Tensor, noise: Tensor) -> Tensor:
        """``D(x0, T; noise)`` on the CPU, float32."""
        t = torch.full((len(x0),), self.degradation.steps, dtype=torch.long)
        noise = noise.expand_as(x0) if len(noise) == 1 else noise
        return self.degradation.degrade(x0, t, {self.noise_name: noise}).float()


def _noise_degradation(degradation: Degradation | None) -> Degradation:
    """The run's degradation, if its only random parameter is its noise; else a config error."""
    drawn = tuple(getattr(degradation, "random_params", ()) or ())
    if degradation is None or len(drawn) != 1:
        label = getattr(degradation, "name", "none")
        raise ConfigError(
            f"prior 'standard-normal' draws the Gaussian noise of a noise degradation (one random "
            f"parameter, e.g. degradation 'noise'), but degradation {label!r} draws "
            f"{list(drawn) or 'nothing'}. Use it with the noise degradation (the hot baseline, "
            "examples/mnist_noise.toml); for a cold path with noise ([degradation.path_noise]) "
            "use gmm or pca-gmm: generation adds the path's noise to their draws."
        )
    return degradation
