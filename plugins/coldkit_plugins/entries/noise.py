"""The ``noise`` plugin's entry point: its parameters and registration, without torch.

The components live in ``coldkit_plugins.noise``, imported the first time a run builds one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from coldkit import hookimpl
from coldkit import Listing

#: Components registered by path (plugin API 3).
COLDKIT_PLUGIN_API = 3


class NoiseParams(BaseModel):
    """Parameters of the ``noise`` degradation."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(200, ge=1, description="T (the paper's noise experiments: 200)")
    schedule: Literal["linear", "cosine"] = "linear"
    beta_start: float = Field(1e-4, gt=0, lt=1, description="linear: beta_1 for T = 1000")
    beta_end: float = Field(0.02, gt=0, lt=1, description="linear: beta_T for T = 1000")
    symmetric: bool = Field(
        False,
        description="add the noise in [-1, 1] like DDPM (x0 -> 2 x0 - 1 and back): half as "
        "strong relative to the image, and x_T centred at 0.5",
    )

    @model_validator(mode="after")
    def _check(self) -> "NoiseParams":
        if self.beta_end < self.beta_start:
            raise ValueError("beta_end must not be below beta_start")
        return self


NOISE = Listing(
    "noise",
    "Gaussian noise, DDPM schedule (the 'hot' diffusion baseline)",
    "coldkit_plugins.noise:Noise",
    NoiseParams,
)


@hookimpl
def register_degradations(register) -> None:
    NOISE.register(register)
