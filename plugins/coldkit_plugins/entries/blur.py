"""The ``blur`` plugin's entry point: its parameters and registration, without torch.

The components live in ``coldkit_plugins.blur``, imported the first time a run builds one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from coldkit import hookimpl
from coldkit import Listing

#: Components registered by path (plugin API 3).
COLDKIT_PLUGIN_API = 3


class BlurParams(BaseModel):
    """Parameters of the ``blur`` degradation."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(20, ge=1, description="T, the number of blur steps")
    kernel_size: int = Field(11, ge=1, description="odd size of the per-step Gaussian kernel")
    sigma: float = Field(7.0, gt=0, description="per-step sigma (at step 1 for a schedule)")
    sigma_end: float | None = Field(
        None, gt=0, description="per-step sigma at step T for linear/exponential schedules"
    )
    schedule: Literal["constant", "linear", "exponential"] = "constant"
    padding: Literal["circular", "reflect"] = "circular"

    @model_validator(mode="after")
    def _check(self) -> "BlurParams":
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if self.schedule != "constant" and self.sigma_end is None:
            raise ValueError(f"schedule {self.schedule!r} needs sigma_end")
        return self


BLUR = Listing(
    "blur",
    "Gaussian blur composed over t steps (paper: deblurring)",
    "coldkit_plugins.blur:Blur",
    BlurParams,
)


@hookimpl
def register_degradations(register) -> None:
    BLUR.register(register)
