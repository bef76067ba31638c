"""The ``unet`` plugin's entry point: its parameters and registration, without torch.

The components live in ``coldkit_plugins.unet``, imported the first time a run builds one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from coldkit import hookimpl
from coldkit import Listing

#: Components registered by path (plugin API 3).
COLDKIT_PLUGIN_API = 3

PRESETS: dict[str, dict[str, Any]] = {
    "small": {
        "width": 32,
        "multipliers": [1, 2, 2],
        "attention_levels": [1],
        "blocks_per_level": 1,
        "pixel_unshuffle": 2,
        "linear_attention": False,
        "residual": True,
    },
    "paper": {
        "width": 64,
        "multipliers": [1, 2, 4, 8],
        "attention_levels": [0, 1, 2, 3],
        "blocks_per_level": 2,
        "pixel_unshuffle": 1,
        "linear_attention": True,
        "residual": False,
    },
}


class UNetParams(BaseModel):
    """Parameters of the ``unet`` restorer; unset fields come from ``preset``."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["small", "paper"] = "small"
    width: int = Field(..., ge=8, description="channels at the first level")
    multipliers: list[int] = Field(..., min_length=1, description="width multiplier per level")
    attention_levels: list[int] = Field(..., description="levels (0 = finest) with attention")
    blocks_per_level: int = Field(..., ge=1)
    pixel_unshuffle: int = Field(..., ge=1, description="pack f x f pixels into channels")
    linear_attention: bool = Field(..., description="linear (cheap) instead of full attention")
    residual: bool = Field(..., description="predict a correction added to the input")
    groups: int = Field(8, ge=1, description="GroupNorm groups")
    standardize_input: bool = Field(
        False,
        description="feed each x_t to the network as (x_t - its mean) / its standard deviation "
        "(in float32), with the mean and log standard deviation conditioning it beside t",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            preset = data.get("preset", "small")
            if preset in PRESETS:
                data = {**PRESETS[preset], **data}
        return data

    @model_validator(mode="after")
    def _check(self) -> "UNetParams":
        bad = [level for level in self.attention_levels if not 0 <= level < len(self.multipliers)]
        if bad:
            raise ValueError(
                f"attention_levels {bad} out of range for {len(self.multipliers)} levels"
            )
        if self.width % self.groups:
            raise ValueError(f"width {self.width} must be divisible by groups {self.groups}")
        return self


UNET = Listing(
    "unet",
    "U-Net with time embedding and attention (presets: small, paper)",
    "coldkit_plugins.unet:UNet",
    UNetParams,
)


@hookimpl
def register_restorers(register) -> None:
    UNET.register(register)
