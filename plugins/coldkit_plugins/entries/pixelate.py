"""The ``pixelate`` plugin's entry point: its parameters and registration, without torch.

The components live in ``coldkit_plugins.pixelate``, imported the first time a run builds one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from coldkit import hookimpl
from coldkit import Listing

#: Components registered by path (plugin API 3).
COLDKIT_PLUGIN_API = 3


class PixelateParams(BaseModel):
    """Parameters of the ``pixelate`` degradation."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(
        3, ge=1, description="T (paper: 3 for 32 px); with sizes, defaults to len(sizes)"
    )
    factor: float = Field(2.0, gt=1.0, description="resolution divided by this at every step")
    sizes: list[int] | None = Field(
        None,
        min_length=1,
        description="explicit heights of levels 1..T (strictly decreasing); widths scale alike",
    )
    mode: Literal["area", "bilinear", "bicubic"] = Field(
        "area", description="downsampling filter (the official code offers all three)"
    )
    antialias: bool = Field(
        False, description="antialias bilinear/bicubic downsampling (the official code does not)"
    )

    @model_validator(mode="after")
    def _check(self) -> "PixelateParams":
        if self.sizes is not None:
            if any(size < 1 for size in self.sizes):
                raise ValueError(f"sizes must be positive, got {self.sizes}")
            if any(b >= a for a, b in zip(self.sizes, self.sizes[1:])):
                raise ValueError(f"sizes must be strictly decreasing, got {self.sizes}")
            if "steps" in self.model_fields_set and self.steps != len(self.sizes):
                raise ValueError(
                    f"steps = {self.steps} but {len(self.sizes)} sizes are given; drop steps "
                    "or give one size per step"
                )
            self.steps = len(self.sizes)
        return self


PIXELATE = Listing(
    "pixelate",
    "resolution reduced step by step (paper: super-resolution)",
    "coldkit_plugins.pixelate:Pixelate",
    PixelateParams,
)


@hookimpl
def register_degradations(register) -> None:
    PIXELATE.register(register)
