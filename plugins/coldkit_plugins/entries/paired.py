"""The ``paired`` plugin's entry point: its parameters and registration, without torch.

Learning a degradation nobody can write down from pairs (InDI, Delbracio & Milanfar 2023): the
``paired`` degradation walks the straight path from each clean image x0 to its degraded twin y,
and the ``paired-folder`` dataset serves the twins. The components live in
``coldkit_plugins.paired`` and ``coldkit_plugins.paired_folder``, imported when a run builds one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coldkit import hookimpl
from coldkit import Listing
from coldkit_plugins.entries.datasets import SplitParams

#: Components registered by path (plugin API 3).
COLDKIT_PLUGIN_API = 3


class PairedParams(BaseModel):
    """Parameters of the ``paired`` degradation."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(20, ge=1, description="T: x_T is the degraded twin y itself")
    schedule: Literal["linear", "cosine"] = Field(
        "linear",
        description="weight of y at level t: t/T (linear, InDI's) or sin^2(pi t / 2T) (cosine: "
        "finer steps near both ends)",
    )
    bridge_noise: float = Field(
        0.0,
        ge=0.0,
        description="std of Gaussian noise on the path at its middle, 2 sqrt(w (1 - w)) times this "
        "at weight w: none at x0 nor at y (InDI's noise to widen the path; 0: none)",
    )


class PairedFolderParams(SplitParams):
    """Parameters of the ``paired-folder`` dataset."""

    clean: str = Field(..., description="folder of the clean images (searched recursively)")
    degraded: str = Field(
        ..., description="folder of their degraded twins: same relative names, any image suffix"
    )
    channels: Literal[1, 3] | None = Field(
        None, description="1 (grey) or 3 (colour); unset: colour if any clean or degraded file is"
    )
    mismatched: Literal["error", "skip"] = Field(
        "error",
        description="a missing, unreadable or differently sized twin: stop naming the file "
        "(error), or leave the pair out and count it (skip)",
    )


PAIRED = Listing(
    "paired",
    "learned from pairs: the straight path from x0 to its degraded twin y (InDI)",
    "coldkit_plugins.paired:Paired",
    PairedParams,
)
PAIRED_FOLDER = Listing(
    "paired-folder",
    "your own pairs: a clean and a degraded folder matched by file name",
    "coldkit_plugins.paired_folder:PairedFolder",
    PairedFolderParams,
)


@hookimpl
def register_degradations(register) -> None:
    PAIRED.register(register)


@hookimpl
def register_datasets(register) -> None:
    PAIRED_FOLDER.register(register)
