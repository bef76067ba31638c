"""The paper's *animorphosis*: images of one dataset fade into images of another.

``D(x0, t) = sqrt(a_t) * x0 + sqrt(1 - a_t) * z`` (``blend = "variance"``, the paper's), or
``a_t * x0 + (1 - a_t) * z`` (``blend = "convex"``, which stays in [0, 1]), where ``z`` is an image
of the ``target`` dataset drawn per sample (the degradation's random parameter) and ``a_t`` falls
from 1 at ``t = 0`` to 0 at ``t = T``. So ``D(x0, T) = z``: generation starts from a real image of
the target dataset (the ``morph-target`` prior) and the restorer turns it into the training domain.
With ``alpha_end > 0``, ``a_T`` stays above 0: x_T keeps a faint x0, which the prior draws from a
mixture fitted on the training x0 (docs/generation.md says why and what it changes). With
``blur_end > 0`` x0 also blurs as it fades (a Gaussian whose sigma grows linearly to ``blur_end``
at T): ``D(x0, t) = sqrt(a_t) B_t(x0) + sqrt(1 - a_t) z``, and the faint x0 at T is a blurred one.

Both components read the target through their build context (plugin API 2): the split they serve
(training images while training, the evaluation split while evaluating and generating), at the
run's image size, looked up in the run's registry.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import BaseModel
from torch import Tensor

from coldkit import BuildContext, DegradationParams
from coldkit.data import resize_images
from coldkit.errors import ConfigError
from coldkit.validation import check_images, check_levels
from coldkit_plugins.entries.morph import (
    MORPH,
    MORPH_TARGET,
    MorphParams,
    MorphTargetParams,
    TargetParams,
)
from coldkit_plugins.entries.priors import PcaGmmParams
from coldkit_plugins.priors import PcaGmm


def alphas(schedule: str, steps: int, end: float = 0.0) -> Tensor:
    """``a_0 .. a_T`` (float64): 1 at t = 0, ``end`` at t = T."""
    fraction = torch.arange(steps + 1, dtype=torch.float64) / steps
    if schedule == "cosine":
        falling = torch.cos(fraction * math.pi / 2) ** 2
    else:
        falling = 1.0 - fraction
    return end + (1.0 - end) * falling


def weights(params: MorphParams) -> tuple[Tensor, Tensor]:
    """The weights of x0 and of z at each level, ``(T+1,)`` each."""
    a = alphas(params.schedule, params.steps, params.alpha_end)
    if params.blend == "convex":
        return a, 1.0 - a
    return a.sqrt(), (1.0 - a).sqrt()


def blur_transfer(sigmas: Tensor, height: int, width: int) -> Tensor:
    """Fourier transfer functions of a circular Gaussian blur of each sigma, ``(len, H, W//2+1)``.

    ``exp(-2 pi^2 sigma^2 |f|^2)`` at the image's discrete frequencies: a periodic Gaussian, so
    one FFT pair blurs a batch whatever sigma each image has (1 exactly where sigma is 0).
    """
    fy = torch.fft.fftfreq(height, dtype=torch.float64).view(-1, 1)
    fx = torch.fft.rfftfreq(width, dtype=torch.float64).view(1, -1)
    squared = (fy**2 + fx**2).unsqueeze(0)
    return torch.exp(-2 * math.pi**2 * sigmas.view(-1, 1, 1) ** 2 * squared)


class _TargetImages:
    """The target dataset's images of the served split, read once, matched to a shape."""

    def __init__(self, params: TargetParams, context: BuildContext) -> None:
        self.params, self.context = params, context
        self._loaded: Tensor | None = None
        self._matched: dict[tuple[int, int, int], Tensor] = {}

    def like(self, channels: int, height: int, width: int) -> Tensor:
        """All target images with ``channels`` channels at ``height x width`` (CPU)."""
        key = (channels, height, width)
        if key not in self._matched:
            if self._loaded is None:
                image_set = self.context.load_dataset(self.params.target)
                self._loaded = image_set.images.float()
            images = self._loaded
            if images.shape[-2:] != (height, width):
                assert height == width, "morph's targets are square: use square images"
                images = resize_images(images, height)
            if images.shape[1] != channels:  # grey <-> colour, as the datasets convert
                images = images.mean(1, keepdim=True).expand(-1, channels, -1, -1).contiguous()
            self._matched[key] = images
        return self._matched[key]

    def draw(self, count: int, shape: tuple[int, int, int], generator: torch.Generator | None):
        """``count`` target images: distinct ones while the split has enough, seeded."""
        images = self.like(*shape)
        if count <= len(images):
            index = torch.randperm(len(images), generator=generator)[:count]
        else:
            index = torch.randint(0, len(images), (count,), generator=generator)
        return images[index]


class Morph:
    """D(x0, t) = sqrt(a_t) x0 + sqrt(1 - a_t) z, z an image of the target dataset."""

    name: ClassVar[str] = MORPH.name
    description: ClassVar[str] = MORPH.description
    Params: ClassVar[type[BaseModel]] = MorphParams

    def __init__(self, params: MorphParams | None = None, *, context: BuildContext) -> None:
        self.params = params or MorphParams()
        self.steps = self.params.steps
        #: What sample_params draws (plugin API 4): z.
        self.random_params: tuple[str, ...] = ("z",)
        self.keep, self.mix = weights(self.params)
        self.targets = _TargetImages(self.params, context)
        #: sigma of the blur on x0 at t = 0 .. T (zeros without ``blur_end``).
        self.blur_sigmas = self.params.blur_end * torch.arange(
            self.steps + 1, dtype=torch.float64
        ) / self.steps
        self._transfer: dict[tuple[int, int, torch.device], Tensor] = {}

    def sample_params(
        self, x0: Tensor, generator: torch.Generator | None = None
    ) -> DegradationParams:
        """One target image ``z`` per sample, from the served split of the target dataset."""
        check_images(x0)
        z = self.targets.draw(len(x0), tuple(x0.shape[1:]), generator)
        return {"z": z.to(device=x0.device, dtype=x0.dtype)}

    def degrade(self, x0: Tensor, t: Tensor, params: DegradationParams | None = None) -> Tensor:
        check_images(x0)
        t = check_levels(t, x0, self.steps)
        if not params or "z" not in params:
            raise ValueError(
                "morph needs the target images drawn by sample_params(x0, generator); pass them "
                "as params"
            )
        z = params["z"].to(device=x0.device, dtype=x0.dtype)
        if z.shape != x0.shape:
            raise ValueError(f"params['z'] has shape {tuple(z.shape)}, x0 {tuple(x0.shape)}")
        keep = self.keep.to(device=x0.device, dtype=x0.dtype)[t].view(-1, 1, 1, 1)
        mix = self.mix.to(device=x0.device, dtype=x0.dtype)[t].view(-1, 1, 1, 1)
        faded = keep * self.blurred(x0, t) + mix * z
        return torch.where((t == 0).view(-1, 1, 1, 1), x0, faded)

    def blurred(self, x0: Tensor, t: Tensor) -> Tensor:
        """x0 blurred as far as level ``t`` (``blur_end``); x0 itself without a blur."""
        if self.params.blur_end == 0:
            return x0
        height, width = x0.shape[-2:]
        key = (height, width, x0.device)
        if key not in self._transfer:
            transfer = blur_transfer(self.blur_sigmas, height, width)
            self._transfer[key] = transfer.to(device=x0.device, dtype=torch.float32)
        spectrum = torch.fft.rfft2(x0.float()) * self._transfer[key][t][:, None]
        return torch.fft.irfft2(spectrum, s=(height, width)).to(x0.dtype)


class MorphTarget:
    """x_T = z, a real image of the target dataset (evaluation split), with params {'z': z}.

    When the morph degradation keeps part of x0 at T (``alpha_end > 0``), x_T = keep_T g +
    mix_T z with z as above and g drawn from a mixture over x0's principal components, fitted on
    the training x0 that ``fit`` recovers from x_T and its params (x0 = (x_T - mix_T z) / keep_T).
    With ``blur_end`` the x0 left at T is blurred, and so are the g the mixture learns and draws.
    """

    name: ClassVar[str] = MORPH_TARGET.name
    description: ClassVar[str] = MORPH_TARGET.description
    Params: ClassVar[type[BaseModel]] = MorphTargetParams

    def __init__(
        self, params: MorphTargetParams | None = None, *, context: BuildContext
    ) -> None:
        self.params = params or MorphTargetParams()
        self.targets = _targets_of(self.params, context)
        self.keep_T, self.mix_T = _end_weights(context.degradation)
        self.shape: tuple[int, int, int] | None = None
        self.x0_prior: PcaGmm | None = None
        if self.keep_T > 0:
            self.x0_prior = PcaGmm(
                PcaGmmParams(
                    components=self.params.x0_components,
                    dims=self.params.x0_dims,
                    temperature=self.params.x0_temperature,
                )
            )

    def fit(self, x_T: Tensor, seed: int = 0, params: DegradationParams | None = None) -> None:
        """Keeps the image shape; with a faint x0 at T, fits the mixture over x0 too."""
        self.shape = tuple(int(size) for size in x_T.shape[1:])  # type: ignore[assignment]
        if self.x0_prior is None:
            return  # the target images are the whole distribution
        if not params or "z" not in params:
            raise ValueError("morph-target fits its x0 mixture from x_T and params {'z': z}")
        x0 = (x_T.double() - self.mix_T * params["z"].double()) / self.keep_T
        self.x0_prior.fit(x0.float(), seed=seed)

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        return self.sample_with_params(count, generator)[0]

    def sample_with_params(
        self, count: int, generator: torch.Generator
    ) -> tuple[Tensor, DegradationParams]:
        if self.shape is None:
            raise RuntimeError("morph-target is fitted (or loaded) before it is sampled")
        z = self.targets.draw(count, self.shape, generator)
        x_T = z
        if self.x0_prior is not None:
            x0 = self.x0_prior.sample(count, generator).clamp(0.0, 1.0)
            x_T = self.keep_T * x0 + self.mix_T * z
        if self.params.noise > 0:
            x_T = x_T + self.params.noise * torch.randn(z.shape, generator=generator)
        return x_T.float(), {"z": z.float()}

    def state_dict(self) -> dict[str, Tensor]:
        if self.shape is None:
            return {}
        state = {"shape": torch.tensor(self.shape)}
        if self.x0_prior is not None:
            state.update({f"x0.{key}": value for key, value in self.x0_prior.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.shape = tuple(int(size) for size in state["shape"].tolist())  # type: ignore[assignment]
        if self.x0_prior is not None:
            self.x0_prior.load_state_dict(
                {key[3:]: value for key, value in state.items() if key.startswith("x0.")}
            )


def _end_weights(degradation: object) -> tuple[float, float]:
    """The weights of x0 and z at t = T of a morph degradation (0 and 1 for anything else)."""
    if not isinstance(degradation, Morph) or degradation.params.alpha_end == 0:
        return 0.0, 1.0  # (the cosine schedule's a_T is 4e-33 in floating point, not 0)
    return float(degradation.keep[-1]), float(degradation.mix[-1])


def _targets_of(params: MorphTargetParams, context: BuildContext) -> _TargetImages:
    """The prior's own target, or the morph degradation's (the same images, read once)."""
    if params.target is not None:
        return _TargetImages(TargetParams(target=params.target), context)
    targets = getattr(context.degradation, "targets", None)
    if not isinstance(targets, _TargetImages):
        raise ConfigError(
            "prior morph-target without a target reads the morph degradation's target, but the "
            f"run's degradation is {getattr(context.degradation, 'name', None)!r}: use "
            "degradation morph, or set generate.prior.target to a dataset name"
        )
    return targets
