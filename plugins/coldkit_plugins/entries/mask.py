"""The ``mask`` plugin's entry point: its parameters and registration, without torch.

The components live in ``coldkit_plugins.mask``, imported the first time a run builds one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coldkit import hookimpl
from coldkit import Listing

#: Components registered by path (plugin API 3).
COLDKIT_PLUGIN_API = 3


class MaskParams(BaseModel):
    """Parameters of the ``mask`` degradation."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(50, ge=1, description="T, the number of masking steps (paper: 50)")
    sigma_start: float = Field(
        1.1, gt=0, description="width in pixels of the Gaussian bump of step 1"
    )
    sigma_increment: float = Field(
        0.1, ge=0, description="added to the bump's width at every further step"
    )
    centre: Literal["random", "fixed"] = Field(
        "random", description="random: one centre per sample, drawn once; fixed: image centre"
    )
    fill: float = Field(
        0.5, description="value masked pixels go to (0.5: the official code's 0 in [-1, 1])"
    )


MASK = Listing(
    "mask",
    "growing Gaussian masks over t steps (paper: inpainting)",
    "coldkit_plugins.mask:Mask",
    MaskParams,
)


@hookimpl
def register_degradations(register) -> None:
    MASK.register(register)
