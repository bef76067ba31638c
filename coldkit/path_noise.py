"""Noisy cold paths: ``D_σ(x0, t) = D(x0, t) + σ_t ε`` for any degradation ``D``.

Soft Diffusion (Daras et al. 2022) and Inverse Heat Dissipation (Rissanen et al. 2023) add a
little Gaussian noise to a deterministic corruption at every level, so that the reverse steps are
well posed and sampling can branch. Every degradation gets it from the config::

    [degradation]
    name = "blur"               # or mask, morph, a third-party degradation ...
    [degradation.path_noise]
    sigma = 0.01                # σ_T
    schedule = "constant"       # σ_t = σ for t >= 1 (IHDM); "linear": σ_t = σ t / T

``ε`` (standard normal, one per pixel) is a random parameter of the path, ``"path_noise"``,
drawn by ``sample_params`` beside the wrapped degradation's own, so ``D_σ`` is deterministic
once drawn, as Algorithm 2 needs. ``σ_0 = 0``: ``D_σ(x0, 0) = x0``. With ``σ = 0`` the path is
exactly the wrapped degradation (no parameter is added).

What samplers, priors and the soft objective read (plugin authors too):

* :func:`mean_path` — the wrapped (noise-free) degradation ``D`` of a noisy path, or the
  degradation itself;
* :func:`mean_params` — a draw's parameters without the path noise, for :func:`mean_path`;
* :func:`path_sigmas` — ``σ_0 .. σ_T`` (all zero for a degradation without path noise);
* :func:`redraw_path_noise` — the parameters with a fresh ``ε`` (the stochastic sampler).

This module imports torch only when a path is used, so the config (which names
:class:`PathNoiseParams`) stays cheap to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from coldkit.protocols import Degradation, DegradationParams

if TYPE_CHECKING:
    import torch
    from torch import Tensor

#: The random parameter a noisy path adds: ``ε``, shaped like the images.
PATH_NOISE = "path_noise"


class PathNoiseParams(BaseModel):
    """``[degradation.path_noise]``: the noise schedule of a noisy cold path."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    sigma: float = Field(
        0.0, ge=0.0, le=10.0, description="σ_T, the noise std at the last level (0: no noise)"
    )
    schedule: Literal["constant", "linear"] = Field(
        "constant",
        description="constant: σ_t = sigma for every t >= 1 (inverse heat dissipation); "
        "linear: σ_t = sigma * t / T",
    )


class NoisyPath:
    """``D(x0, t) + σ_t ε``: a degradation with Gaussian noise along its path.

    It answers to the wrapped degradation's ``name``, ``description`` and ``steps``, so run
    folders, checkpoints and messages name the degradation the user chose.
    """

    def __init__(self, base: Degradation, params: PathNoiseParams) -> None:
        self.base = base
        self.params = params
        self.name = base.name
        self.description = f"{base.description}, plus noise σ = {params.sigma} ({params.schedule})"
        self.steps = base.steps
        own = tuple(getattr(base, "random_params", ()) or ())
        #: What sample_params draws (plugin API 4): the wrapped degradation's, then ε.
        self.random_params: tuple[str, ...] = own + ((PATH_NOISE,) if params.sigma > 0 else ())

    def sigmas(self) -> "Tensor":
        """``σ_0 .. σ_T`` as a float64 tensor of ``T + 1`` values, ``σ_0 = 0``."""
        torch = _torch()
        levels = torch.arange(self.steps + 1, dtype=torch.float64)
        if self.params.schedule == "linear":
            return self.params.sigma * levels / self.steps
        return torch.full_like(levels, self.params.sigma).index_fill_(0, torch.tensor([0]), 0.0)

    def sample_params(
        self, x0: "Tensor", generator: "torch.Generator | None" = None
    ) -> DegradationParams:
        """The wrapped degradation's draw, plus ``ε`` (drawn after it) when ``sigma > 0``."""
        params = dict(self.base.sample_params(x0, generator) or {})
        if self.params.sigma > 0:
            params[PATH_NOISE] = _standard_normal(x0, generator)
        return params

    def degrade(
        self, x0: "Tensor", t: "Tensor", params: DegradationParams | None = None
    ) -> "Tensor":
        """``D(x0, t) + σ_t ε``; exactly ``D(x0, t)`` when ``sigma = 0``."""
        clean = self.base.degrade(x0, t, mean_params(params))
        if self.params.sigma == 0:
            return clean
        if not params or PATH_NOISE not in params:
            raise ValueError(
                f"a noisy path needs its noise drawn by sample_params(x0, generator); pass it as "
                f"params[{PATH_NOISE!r}]"
            )
        noise = params[PATH_NOISE].to(device=clean.device, dtype=clean.dtype)
        sigma = self.sigmas().to(device=clean.device, dtype=clean.dtype)[t.to(clean.device)]
        return clean + sigma.view(-1, 1, 1, 1) * noise


def noisy_path(base: Degradation, params: PathNoiseParams | None) -> Degradation:
    """``base`` with the path noise ``params``, or ``base`` itself where there is none."""
    return base if params is None else NoisyPath(base, params)


def mean_path(degradation: Degradation) -> Degradation:
    """The noise-free degradation of a noisy path (``D`` of ``D + σ_t ε``), else ``degradation``."""
    return degradation.base if isinstance(degradation, NoisyPath) else degradation


def mean_params(params: DegradationParams | None) -> DegradationParams:
    """A draw's parameters without the path noise: what :func:`mean_path` takes."""
    return {key: value for key, value in (params or {}).items() if key != PATH_NOISE}


def path_sigmas(degradation: Degradation) -> "Tensor":
    """``σ_0 .. σ_T`` of the degradation's path noise (float64; zeros where it has none)."""
    if isinstance(degradation, NoisyPath):
        return degradation.sigmas()
    torch = _torch()
    return torch.zeros(degradation.steps + 1, dtype=torch.float64)


def redraw_path_noise(
    degradation: Degradation,
    params: DegradationParams | None,
    like: "Tensor",
    generator: "torch.Generator | None",
    where: "Tensor | None" = None,
) -> DegradationParams:
    """``params`` with a fresh ``ε`` for the path noise (unchanged where the path has none), for
    the samples ``where`` is true (a ``(B,)`` mask; default all).

    Drawn from ``generator`` on its device, so a seeded sampler gives the same result everywhere.
    """
    params = dict(params or {})
    if PATH_NOISE not in getattr(degradation, "random_params", ()):
        return params
    fresh = _standard_normal(like, generator)
    if where is not None and PATH_NOISE in params:
        old = params[PATH_NOISE].to(fresh)
        fresh = _torch().where(where.view(-1, *[1] * (fresh.dim() - 1)), fresh, old)
    params[PATH_NOISE] = fresh
    return params


def add_path_noise(
    degradation: Degradation, x_T: "Tensor", params: DegradationParams, generator: "torch.Generator"
) -> tuple["Tensor", DegradationParams]:
    """``x̄_T + σ_T ε`` and the params with that ``ε``: a draw of the mean path's end (from a
    prior fitted on it) turned into a draw of the noisy path's end (IHDM's prior: the fully
    degraded mean plus noise). Unchanged where the degradation has no path noise."""
    if PATH_NOISE not in getattr(degradation, "random_params", ()):
        return x_T, params
    noise = _standard_normal(x_T, generator)
    sigma_T = float(path_sigmas(degradation)[-1])
    return x_T + sigma_T * noise.to(x_T), {**params, PATH_NOISE: noise}


def _standard_normal(like: "Tensor", generator: "torch.Generator | None") -> "Tensor":
    """Standard normal noise shaped like ``like`` drawn from ``generator`` on its device."""
    torch = _torch()
    device = generator.device if generator is not None else torch.device("cpu")
    noise = torch.randn(like.shape, generator=generator, device=device, dtype=like.dtype)
    return noise.to(like.device)


def _torch() -> Any:
    """torch, imported on first use (importing the config must not import it)."""
    import torch

    return torch


__all__ = [
    "PATH_NOISE",
    "NoisyPath",
    "PathNoiseParams",
    "add_path_noise",
    "mean_params",
    "mean_path",
    "noisy_path",
    "path_sigmas",
    "redraw_path_noise",
]
