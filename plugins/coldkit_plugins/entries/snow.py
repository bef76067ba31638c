"""The ``snow`` plugin's entry point: its parameters and registration, without torch.

The components live in ``coldkit_plugins.snow``, imported the first time a run builds one.
"""

from __future__ import annotations


from pydantic import BaseModel, ConfigDict, Field, model_validator

from coldkit import hookimpl
from coldkit import Listing

#: Components registered by path (plugin API 3).
COLDKIT_PLUGIN_API = 3


class SnowParams(BaseModel):
    """Parameters of the ``snow`` degradation (defaults: the official snow level 1)."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(50, ge=1, description="T, the number of snow steps")
    noise_mean: float = Field(0.1, description="mean of the Gaussian noise of the snow layer")
    noise_std: float = Field(0.3, gt=0, description="standard deviation of that noise")
    zoom: float = Field(3.0, ge=1.0, description="the noise is drawn at 1/zoom resolution")
    threshold_start: float = Field(0.7, description="layer values below this are dropped at t=1")
    threshold_end: float = Field(0.3, description="... and below this at t=T (more snow)")
    blur_size: int = Field(5, ge=1, description="odd side of the motion-blur kernel")
    blur_sigma_start: float = Field(0.5, gt=0, description="motion-blur width at t=1 (pixels)")
    blur_sigma_end: float = Field(5.0, gt=0, description="motion-blur width at t=T (pixels)")
    brightness_start: float = Field(
        0.95, ge=0, le=1, description="share of the original image at t=1 (rest: brightened)"
    )
    brightness_end: float = Field(0.7, ge=0, le=1, description="share of the original at t=T")
    angle_min: float = Field(
        45.0, description="streak direction in degrees from horizontal (90: vertical), lowest"
    )
    angle_max: float = Field(135.0, description="highest streak direction in degrees")

    @model_validator(mode="after")
    def _check(self) -> "SnowParams":
        if self.blur_size % 2 == 0:
            raise ValueError(f"blur_size must be odd, got {self.blur_size}")
        if self.angle_max < self.angle_min:
            raise ValueError("angle_max must not be below angle_min")
        return self


SNOW = Listing(
    "snow",
    "snow layers, denser and more blurred with t (paper: snow)",
    "coldkit_plugins.snow:Snow",
    SnowParams,
)


@hookimpl
def register_degradations(register) -> None:
    SNOW.register(register)
