"""The ``morph`` plugin's entry point: its parameters and registration, without torch.

The components live in ``coldkit_plugins.morph``, imported the first time a run builds one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from coldkit import DatasetRef, hookimpl
from coldkit import Listing

#: These components take the build context (API 2) and are registered by path (API 3).
COLDKIT_PLUGIN_API = 3


def _fold_target_params(data: Any) -> Any:
    """``target_params`` (the spelling before ``DatasetRef``) folded into ``target``."""
    if isinstance(data, dict) and "target_params" in data:
        data = dict(data)
        extra = data.pop("target_params") or {}
        target = data.get("target", "fashion-mnist")
        if isinstance(target, str):
            target = {"name": target, "params": {}}
        if isinstance(target, dict) and isinstance(extra, dict):
            target = {**target, "params": {**target.get("params", {}), **extra}}
        data["target"] = target
    return data


class TargetParams(BaseModel):
    """The dataset the images morph into."""

    model_config = ConfigDict(extra="forbid")

    target: DatasetRef = Field(
        DatasetRef(name="fashion-mnist"),
        description="registered dataset of the images z: a name, or {name, params}",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_target_params(cls, data: Any) -> Any:
        return _fold_target_params(data)


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
    alpha_end: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="a_T, the share of x0 left at t = T (0: the paper's, D(x0, T) = z; above 0 "
        "x_T keeps a faint x0, which morph-target then draws from a mixture fitted on x0)",
    )
    blur_end: float = Field(
        0.0,
        ge=0.0,
        le=64.0,
        description="sigma (pixels) of a Gaussian blur on x0 at t = T, growing linearly in t "
        "(0: none, the paper's). x0 blurs as it fades, so with alpha_end > 0 x_T keeps a faint "
        "blurred x0, which morph-target's mixture draws far better than a sharp one",
    )


class MorphTargetParams(BaseModel):
    """Parameters of the ``morph-target`` prior."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _old_target_params(cls, data: Any) -> Any:
        return _fold_target_params(data)

    target: DatasetRef | None = Field(
        None, description="dataset of x_T (a name, or {name, params}); unset: the morph "
        "degradation's target"
    )
    noise: float = Field(
        0.0, ge=0.0, description="std of Gaussian noise added to x_T (the paper's generation)"
    )
    x0_components: int = Field(
        20, ge=1, description="with alpha_end > 0: Gaussian components of the mixture over x0"
    )
    x0_dims: int = Field(
        32, ge=1, description="with alpha_end > 0: principal components of x0 it is fitted on"
    )
    x0_temperature: float = Field(
        1.0, gt=0.0, le=1.0,
        description="with alpha_end > 0: the x0 mixture's temperature (below 1: draws nearer "
        "its component means; pca-gmm's temperature)",
    )


MORPH = Listing(
    "morph",
    "fade into images of another dataset, drawn per sample (paper: animorphosis)",
    "coldkit_plugins.morph:Morph",
    MorphParams,
)
MORPH_TARGET = Listing(
    "morph-target",
    "morph's prior: x_T straight from the target dataset's images (params: those images)",
    "coldkit_plugins.morph:MorphTarget",
    MorphTargetParams,
)


@hookimpl
def register_degradations(register) -> None:
    MORPH.register(register)


@hookimpl
def register_priors(register) -> None:
    MORPH_TARGET.register(register)
