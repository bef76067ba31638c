"""The ``swirl-pca`` prior: where generation from a swirl model starts.

coldkit's building blocks do the work: :class:`coldkit.blocks.PcaMixturePrior` (a Gaussian
mixture over the leading principal components of ``D(x0, T)``) draws x_T, and
:class:`coldkit.blocks.PriorWithDrawnParams` adds the swirl's own parameter draw (the centres,
with ``jitter > 0``), so every sampler step undoes the same swirl. The swirl comes from the build
context (``context.degradation``: a prior is built after the run's degradation).

Drawing the centres afresh is right here because a centre shifted by ``jitter`` changes x_T
little next to the twist itself; a degradation whose draw shows plainly in x_T (a mask's position)
needs a prior that returns the parameters x_T was degraded with (docs/plugins.md).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from coldkit import BuildContext
from coldkit.blocks import PcaMixturePrior, PriorWithDrawnParams
from coldkit_swirl.params import SWIRL_PCA, SwirlPriorParams


class SwirlPrior(PriorWithDrawnParams):
    """A PCA mixture over swirled images, with the run's swirl drawing the centres."""

    name: ClassVar[str] = SWIRL_PCA.name
    description: ClassVar[str] = SWIRL_PCA.description
    Params: ClassVar[type[BaseModel]] = SwirlPriorParams

    def __init__(self, params: SwirlPriorParams, *, context: BuildContext) -> None:
        super().__init__(PcaMixturePrior(params), context.degradation)
