"""The ``decolor`` plugin's entry point: its parameters and registration, without torch.

The components live in ``coldkit_plugins.decolor``, imported the first time a run builds one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coldkit import hookimpl
from coldkit import Listing

#: Components registered by path (plugin API 3).
COLDKIT_PLUGIN_API = 3


class DecolorParams(BaseModel):
    """Parameters of the ``decolor`` degradation."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(50, ge=1, description="T: colour is gone at t = T")
    grey: Literal["luma", "mean"] = Field(
        "luma", description="luma: BT.601 weights (needs 3 channels); mean: channel average"
    )


DECOLOR = Listing(
    "decolor",
    "colour faded to grey linearly in t (paper: colourisation)",
    "coldkit_plugins.decolor:Decolor",
    DecolorParams,
)


@hookimpl
def register_degradations(register) -> None:
    DECOLOR.register(register)
