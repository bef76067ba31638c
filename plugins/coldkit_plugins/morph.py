"""The paper's *animorphosis*: images of one dataset fade into images of another.

``D(x0, t) = sqrt(a_t) * x0 + sqrt(1 - a_t) * z`` (``blend = "variance"``, the paper's), or
``a_t * x0 + (1 - a_t) * z`` (``blend = "convex"``, which stays in [0, 1]), where ``z`` is an image
of the ``target`` dataset drawn per sample (the degradation's random parameter) and ``a_t`` falls
from 1 at ``t = 0`` to 0 at ``t = T``. So ``D(x0, T) = z``: generation starts from a real image of
the target dataset (the ``morph-target`` prior) and the restorer turns it into the training domain.

Both components read the target through their build context (plugin API 2): the split they serve
(training images while training, the evaluation split while evaluating and generating), at the
run's image size, looked up in the run's registry.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from coldkit import DegradationParams, hookimpl
from coldkit.data import resize_images
from coldkit.errors import ConfigError
from coldkit import BuildContext
from coldkit.validation import check_images, check_levels

#: These components take the build context (a keyword-only ``context``).
COLDKIT_PLUGIN_API = 2


class TargetParams(BaseModel):
    """The dataset the images morph into."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field("fashion-mnist", description="registered dataset of the images z")
    target_params: dict[str, Any] = Field(
        default_factory=dict, description="the target dataset's parameters (as its section)"
    )


class MorphParams(TargetParams):
    """Parameters of the ``morph`` degradation."""

    steps: int = Field(20, ge=1, description="T")
    schedule: Literal["linear", "cosine"] = Field(
        "linear", description="a_t = 1 - t/T (linear) or cos^2(pi t / 2T) (cosine)"
    )
    blend: Literal["variance", "convex"] = Field(
        "variance",
        description="variance: sqrt(a) x0 + sqrt(1-a) z (the paper; leaves [0, 1]); "
        "convex: a x0 + (1-a) z",
    )


def alphas(schedule: str, steps: int) -> Tensor:
    """``a_0 .. a_T`` (float64): 1 at t = 0, 0 at t = T."""
    fraction = torch.arange(steps + 1, dtype=torch.float64) / steps
    if schedule == "cosine":
        return torch.cos(fraction * math.pi / 2) ** 2
    return 1.0 - fraction


def weights(params: MorphParams) -> tuple[Tensor, Tensor]:
    """The weights of x0 and of z at each level, ``(T+1,)`` each."""
    a = alphas(params.schedule, params.steps)
    if params.blend == "convex":
        return a, 1.0 - a
    return a.sqrt(), (1.0 - a).sqrt()


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
                image_set = self.context.load_dataset(self.params.target, self.params.target_params)
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

    name: ClassVar[str] = "morph"
    description: ClassVar[str] = (
        "fade into images of another dataset, drawn per sample (paper: animorphosis)"
    )
    Params: ClassVar[type[BaseModel]] = MorphParams

    def __init__(self, params: MorphParams | None = None, *, context: BuildContext) -> None:
        self.params = params or MorphParams()
        self.steps = self.params.steps
        self.keep, self.mix = weights(self.params)
        self.targets = _TargetImages(self.params, context)

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
        return torch.where((t == 0).view(-1, 1, 1, 1), x0, keep * x0 + mix * z)


class MorphTargetParams(BaseModel):
    """Parameters of the ``morph-target`` prior."""

    model_config = ConfigDict(extra="forbid")

    target: str | None = Field(
        None, description="dataset of x_T; unset: the morph degradation's target (and params)"
    )
    target_params: dict[str, Any] = Field(default_factory=dict)
    noise: float = Field(
        0.0, ge=0.0, description="std of Gaussian noise added to x_T (the paper's generation)"
    )


class MorphTarget:
    """x_T = z, a real image of the target dataset (evaluation split), with params {'z': z}."""

    name: ClassVar[str] = "morph-target"
    description: ClassVar[str] = (
        "morph's prior: x_T straight from the target dataset's images (params: those images)"
    )
    Params: ClassVar[type[BaseModel]] = MorphTargetParams

    def __init__(
        self, params: MorphTargetParams | None = None, *, context: BuildContext
    ) -> None:
        self.params = params or MorphTargetParams()
        self.targets = _targets_of(self.params, context)
        self.shape: tuple[int, int, int] | None = None

    def fit(self, x_T: Tensor, seed: int = 0) -> None:
        """Nothing to learn: the target images are the distribution. Keeps the image shape."""
        self.shape = tuple(int(size) for size in x_T.shape[1:])  # type: ignore[assignment]

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        return self.sample_with_params(count, generator)[0]

    def sample_with_params(
        self, count: int, generator: torch.Generator
    ) -> tuple[Tensor, DegradationParams]:
        if self.shape is None:
            raise RuntimeError("morph-target is fitted (or loaded) before it is sampled")
        z = self.targets.draw(count, self.shape, generator)
        x_T = z
        if self.params.noise > 0:
            x_T = z + self.params.noise * torch.randn(z.shape, generator=generator)
        return x_T.float(), {"z": z.float()}

    def state_dict(self) -> dict[str, Tensor]:
        if self.shape is None:
            return {}
        return {"shape": torch.tensor(self.shape)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.shape = tuple(int(size) for size in state["shape"].tolist())  # type: ignore[assignment]


def _targets_of(params: MorphTargetParams, context: BuildContext) -> _TargetImages:
    """The prior's own target, or the morph degradation's (the same images, read once)."""
    if params.target is not None:
        return _TargetImages(TargetParams(target=params.target,
                                          target_params=params.target_params), context)
    targets = getattr(context.degradation, "targets", None)
    if not isinstance(targets, _TargetImages):
        raise ConfigError(
            "prior morph-target without a target reads the morph degradation's target, but the "
            f"run's degradation is {getattr(context.degradation, 'name', None)!r}: use "
            "degradation morph, or set generate.prior.target to a dataset name"
        )
    return targets


@hookimpl
def register_degradations(register) -> None:
    register(Morph)


@hookimpl
def register_priors(register) -> None:
    register(MorphTarget)
