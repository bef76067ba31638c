"""The three protocols of cold diffusion, plus the dataset protocol.

Shapes: images are float tensors ``(B, C, H, W)`` in [0, 1]; ``t`` is a ``(B,)`` integer tensor with
one degradation level per sample, ``0 <= t <= T``. ``D(x0, 0) == x0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

if TYPE_CHECKING:  # torch only for the type checker: importing the contract stays cheap
    import torch
    from torch import Tensor

#: Random parameters of one degradation draw (mask centres, snow layers, ...): a dict of tensors
#: whose first dimension is the batch. Deterministic degradations use an empty dict.
DegradationParams = dict[str, "Tensor"]


@runtime_checkable
class Degradation(Protocol):
    """A degradation ``D(x0, t)`` that grows worse with ``t`` and is the identity at ``t = 0``.

    Contract (checked by :mod:`coldkit.testing`):

    * ``degrade`` is batched, takes one integer ``t`` per sample, and has no Python loop over the
      batch or over ``t``; its cost does not grow with ``t``.
    * Everything random is drawn by ``sample_params`` and passed to ``degrade``, so a sampler can
      reuse the same draw at every step of one run.
    * Shape, dtype and device of ``x0`` are preserved.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    #: Number of degradation levels T: ``t`` ranges over ``0 .. steps``.
    steps: int

    def sample_params(
        self, x0: Tensor, generator: torch.Generator | None = None
    ) -> DegradationParams:
        """Draw the random parameters for a batch like ``x0`` (empty for a deterministic one)."""
        ...

    def degrade(self, x0: Tensor, t: Tensor, params: DegradationParams | None = None) -> Tensor:
        """Return ``D(x0, t)`` for a batch ``x0`` and levels ``t`` of shape ``(B,)``."""
        ...


@runtime_checkable
class Restorer(Protocol):
    """A network ``R(x_t, t) ≈ x0``; in practice a ``torch.nn.Module``."""

    def __call__(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Estimate the clean images from degraded ``x_t`` at levels ``t``."""
        ...


class Sampler(Protocol):
    """Restores ``x_t`` (degraded to levels ``t``) to an estimate of ``x0``.

    ``params`` is the degradation's random draw for this batch and must be reused at every step.
    """

    def __call__(
        self,
        restorer: Restorer,
        degradation: Degradation,
        x_t: Tensor,
        t: Tensor,
        params: DegradationParams | None = None,
    ) -> Tensor: ...


@dataclass(frozen=True)
class ImageSet:
    """Images of one split, float ``(N, C, H, W)`` in [0, 1], and where they came from.

    ``labels`` is an optional ``(N,)`` integer tensor of class labels (MNIST digits, ...): a
    dataset that has them should pass them, so generated samples can be judged by a classifier.
    """

    images: Tensor
    source: str
    labels: Tensor | None = None


@runtime_checkable
class Dataset(Protocol):
    """A source of images split into disjoint ``train``, ``val`` and ``test`` parts."""

    name: ClassVar[str]
    description: ClassVar[str]

    def load(self, split: str) -> ImageSet:
        """Load one split. Raise :class:`coldkit.errors.DataError` with a fix if it cannot."""
        ...


@runtime_checkable
class Prior(Protocol):
    """A distribution over fully degraded images ``x_T``: what generation starts from (paper §5).

    Built as ``component(params)``; fitted on ``D(x0, T)`` of the training split; saved as plain
    tensors (``state_dict``), so a fitted prior is stored without pickle and loads with
    ``torch.load(weights_only=True)``.
    """

    name: ClassVar[str]
    description: ClassVar[str]

    def fit(self, x_T: Tensor, seed: int = 0) -> None:
        """Fit to fully degraded training images ``x_T`` ``(N, C, H, W)`` (on the CPU)."""
        ...

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        """Draw ``count`` images ``x_T`` ``(count, C, H, W)`` (CPU, float32), seeded by ``generator``."""
        ...

    def state_dict(self) -> dict[str, Tensor]:
        """Everything the fitted prior needs, as tensors."""
        ...

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore a fitted prior from :meth:`state_dict`."""
        ...


@dataclass(frozen=True)
class RestorerContext:
    """What a restorer factory needs to know about the experiment it serves."""

    channels: int
    image_size: int
    steps: int


class NoParams(BaseModel):
    """Parameter model for components without parameters."""

    model_config = {"extra": "forbid"}


def params_to_dict(params: BaseModel) -> dict[str, Any]:
    """Plain-data view of a validated parameter model (for metadata and config copies)."""
    return params.model_dump(mode="json")
