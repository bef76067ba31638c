"""Where training batches come from: a tensor in memory (the fast path) or a stream.

Both hand the trainer this rank's share of one global batch of ``batch_size`` images; the
trainer draws levels and degradation parameters for the whole global batch itself (see
:meth:`coldkit.training.trainer.Trainer.draw_batch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from coldkit.data.served import rows_of
from coldkit.protocols import DegradationParams
from coldkit.runtime.distributed import Cluster


@dataclass(frozen=True)
class SharedBatch:
    """This rank's share ``x0`` of a global batch, and ``global_like``: a tensor shaped like the
    whole global batch, on which the degradation's random parameters are drawn. ``params``:
    this rank's share of the parameters the data serves for these images (a paired dataset's
    degraded twins, see :mod:`coldkit.data.served`), or None."""

    x0: Tensor
    global_like: Tensor
    params: DegradationParams | None = None


@runtime_checkable
class TrainingBatches(Protocol):
    """A source of training batches."""

    def __len__(self) -> int:
        """Number of training images."""
        ...

    def draw(self, batch_size: int, generator: torch.Generator, cluster: Cluster) -> SharedBatch:
        """This rank's share of the next global batch of ``batch_size`` images: float in [0, 1],
        or uint8 in 0..255 (converted on the device)."""
        ...

    def resume_at(self, batches_drawn: int) -> None:
        """Continue as if ``batches_drawn`` global batches had been drawn (after a resume)."""
        ...

    def close(self) -> None:
        """Release what drawing holds (worker processes); a later draw starts again."""
        ...


class InMemoryBatches:
    """Batches drawn with replacement from a tensor of images held in memory.

    Every rank draws the same global indices from the shared generator and keeps its share, so
    any number of processes sees exactly the images one process would. ``params`` (optional)
    are per-image degradation parameters the data serves, drawn with the same indices.
    """

    def __init__(self, images: Tensor, params: DegradationParams | None = None) -> None:
        self.images = images
        self.params = params

    def __len__(self) -> int:
        return len(self.images)

    def draw(self, batch_size: int, generator: torch.Generator, cluster: Cluster) -> SharedBatch:
        index = torch.randint(len(self.images), (batch_size,), generator=generator)
        images, share = self.images[index], cluster.share(batch_size)
        return SharedBatch(images[share], images, rows_of(rows_of(self.params, index), share))

    def resume_at(self, batches_drawn: int) -> None:
        """Nothing to do: the draws follow the trainer's generator, which the checkpoint holds."""

    def close(self) -> None:
        """Nothing to release."""


__all__ = ["InMemoryBatches", "SharedBatch", "TrainingBatches"]
