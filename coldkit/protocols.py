"""The three protocols of cold diffusion, plus the dataset protocol.

Shapes: images are float tensors ``(B, C, H, W)``; ``t`` is a ``(B,)`` integer tensor with one
degradation level per sample, ``0 <= t <= T``. ``D(x0, 0) == x0``.

Value range: clean images ``x0`` are in [0, 1]. ``D(x0, t)`` may leave [0, 1] (a blend such as
``sqrt(a) x0 + sqrt(1 - a) z`` reaches 1.41) as long as it is finite and bounded; coldkit never
clamps a degraded image (the restorer sees it as it is) and clamps only what it saves or scores.
``coldkit.testing.check_degradation`` checks that D stays within ``DEGRADED_RANGE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ClassVar,
    Literal,
    Mapping,
    Protocol,
    runtime_checkable,
)

from pydantic import BaseModel

from coldkit.params import DatasetRef

if TYPE_CHECKING:  # torch only for the type checker: importing the contract stays cheap
    import torch
    from torch import Tensor

#: Random parameters of one degradation draw (mask centres, snow layers, ...): a dict of tensors
#: whose first dimension is the batch. Deterministic degradations use an empty dict.
DegradationParams = dict[str, "Tensor"]

#: The bounds every ``D(x0, t)`` of images in [0, 1] must stay within (checked by
#: ``check_degradation``): wide enough for blends and for Gaussian noise of std 1 and more,
#: narrow enough to catch a degradation that works in [0, 255] or overflows.
DEGRADED_RANGE = (-20.0, 21.0)

#: The splits a dataset serves.
Split = Literal["train", "val", "test"]


@runtime_checkable
class Degradation(Protocol):
    """A degradation ``D(x0, t)`` that grows worse with ``t`` and is the identity at ``t = 0``.

    Contract (checked by :mod:`coldkit.testing`):

    * ``degrade`` is batched and takes one integer ``t`` per sample (a batch may mix levels);
      its cost does not grow with ``t`` (``D(x0, T)`` at most a few times ``D(x0, 1)``: the kit's
      cost check enforces this). Advice, not contract: avoid a Python loop over the batch (a
      per-image codec or external tool may need one; it costs speed, not correctness).
    * Everything random is drawn by ``sample_params`` and passed to ``degrade``, so a sampler can
      reuse the same draw at every step of one run.
    * Shape, dtype and device of ``x0`` are preserved.

    Optional, for a degradation whose parameters come from the data rather than from a draw
    (``paired``: the degraded twin ``y`` of each image): ``data_params``, a tuple of the names it
    reads from :attr:`ImageSet.params` (coldkit hands it the rows of the same images while training
    and evaluating, and never calls ``sample_params``, which may raise);
    and ``params_of_degraded(x_T)``, the parameters of images that arrive fully degraded (level
    ``T``; ``paired``: ``{"y": x_T}``), which lets ``coldkit restore`` work without ``--t``.
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


#: What a sampler reports after each step, k-diffusion style: ``{"x": x_s, "i": s,
#: "denoised": x̂0}``, the image the restorer was given at level ``s`` and its estimate.
StepInfo = dict[str, Any]
#: A per-step callback a sampler calls with a :data:`StepInfo` (``coldkit generate``'s path figure).
StepCallback = Callable[[StepInfo], None]


class Sampler(Protocol):
    """Restores ``x_t`` (degraded to levels ``t``) to an estimate of ``x0``.

    ``params`` is the degradation's random draw for this batch and must be reused at every step.
    Keywords (plugin API 4): ``generator`` seeds anything the sampler draws; ``callback``, when
    given, is called once per restorer call with ``{"x": x_s, "i": s, "denoised": x̂0}`` (``s``
    the batch's highest level at that step). A sampler that adds noise per step also takes
    ``noise`` (its std, ``generate.step_noise``) and says so with a ``takes_noise = True``
    attribute; coldkit passes ``noise`` only to such a sampler.

    Samplers of plugin API 1–3 (only the five positional arguments, ``noise`` and ``generator``
    where their signature has them) are adapted by :mod:`coldkit.plugins.compat` for one release.
    """

    def __call__(
        self,
        restorer: Restorer,
        degradation: Degradation,
        x_t: Tensor,
        t: Tensor,
        params: DegradationParams | None = None,
        *,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
    ) -> Tensor: ...


@dataclass(frozen=True)
class ImageSet:
    """Images of one split, float ``(N, C, H, W)`` in [0, 1], and where they came from.

    ``labels`` is an optional ``(N,)`` integer tensor of class labels (MNIST digits, ...): a
    dataset that has them should pass them, so generated samples can be judged by a classifier.

    ``params`` are degradation parameters the data itself serves, one row per image (a paired
    dataset's degraded twins: ``{"y": (N, C, H, W)}``). A degradation that declares
    ``data_params`` (see :class:`Degradation`) takes them from here instead of drawing them;
    every other degradation ignores them.
    """

    images: Tensor
    source: str
    labels: Tensor | None = None
    params: DegradationParams | None = None


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

    Built as ``component(params)`` (plus ``context=`` if it asks, see :class:`BuildContext`);
    fitted on ``D(x0, T)`` of the training split; saved as plain
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


class DatasetAccess(Protocol):
    """Loads a *registered* dataset for a plugin: what :attr:`BuildContext.data` is.

    ``name`` is a dataset name as a config writes it, ``params`` its parameters (validated by the
    dataset's own model), ``split`` one of train/val/test. The images come resized to the run's
    image size. A run's accessor looks the dataset up in the run's registry, so the plugin
    lookup trace, ``disable_plugins``, ``run.json`` (``plugin_data``) and the log all see it.
    """

    def __call__(
        self, name: str, params: Mapping[str, Any] | None = None, split: Split = "train"
    ) -> ImageSet: ...


def match_channels(images: Tensor, channels: int) -> Tensor:
    """``images`` ``(N, C, H, W)`` with ``channels`` channels: one channel is repeated, several
    are averaged to one (then repeated where ``channels > 1``), as the datasets convert."""
    have = images.shape[1]
    if have == channels:
        return images
    if have != 1 and channels != 1 and have != 3 and channels != 3:
        raise ValueError(f"cannot turn images of {have} channels into {channels} channels")
    grey = images if have == 1 else images.mean(dim=1, keepdim=True)
    return grey.expand(-1, channels, -1, -1).contiguous()


@dataclass(frozen=True)
class BuildContext:
    """What the run knows when it builds a component (every kind), as far as it knows it.

    A component asks for it with a keyword-only parameter named ``context`` (``def
    __init__(self, params, *, context)``); components without one are built as before. Fields
    the builder does not know are None (a preview knows no channels, ``check_plugin`` no T).
    ``split`` is the split the component serves: ``train`` while training, the evaluation split
    (``test`` by default) while evaluating, generating and restoring. ``seed`` is the run's seed
    (:meth:`generator` gives a seeded generator); ``device`` where the run computes.
    """

    image_size: int | None = None
    channels: int | None = None
    steps: int | None = None
    device: torch.device = field(default_factory=lambda: _torch().device("cpu"))
    seed: int = 0
    split: Split = "train"
    data: DatasetAccess | None = None
    #: The run's degradation, built before the prior (a prior may draw the way it draws, e.g.
    #: morph's prior reads the same target images); None for every other kind.
    degradation: Degradation | None = None

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from the run's seed (plus ``offset``, for separate streams)."""
        return _torch().Generator().manual_seed(self.seed + offset)

    def load_dataset(
        self,
        name: "str | DatasetRef",
        params: Mapping[str, Any] | None = None,
        split: Split | None = None,
        *,
        channels: int | None = None,
    ) -> ImageSet:
        """A registered dataset's ``split`` (default: the split served), at the run's image size
        and with the run's channel count (grey images repeated to colour, colour averaged to
        grey). ``name`` is a dataset name or a :class:`DatasetRef` (whose params ``params``
        extends). ``channels`` asks for another channel count than the run's; where the context
        knows none (a preview) the images keep the channels they have."""
        if self.data is None:
            raise RuntimeError(
                "this build context has no data accessor: build the component through a run, "
                "open_run, or coldkit.testing.build_context (which pass one)"
            )
        if isinstance(name, DatasetRef):
            name, params = name.name, {**name.params, **(params or {})}
        image_set = self.data(name, params, split or self.split)
        wanted = channels if channels is not None else self.channels
        if wanted is None or image_set.images.shape[1] == wanted:
            return image_set
        return replace(image_set, images=match_channels(image_set.images, wanted))

    def for_split(self, split: Split) -> "BuildContext":
        """The same context serving another split."""
        return replace(self, split=split)

    def model_shape(self) -> dict[str, int]:
        """The model's input shape a restorer is built for: ``channels``, ``image_size`` and
        ``steps`` (T), as ``run.json`` records it (under ``restorer_context``) and a checkpoint is
        checked against; a RuntimeError if one is unknown."""
        if self.channels is None or self.image_size is None or self.steps is None:
            raise RuntimeError("a restorer is built with channels, image_size and steps known")
        return {"channels": self.channels, "image_size": self.image_size, "steps": self.steps}


@runtime_checkable
class PriorWithParams(Prior, Protocol):
    """A prior that also returns the degradation parameters its x_T were degraded with.

    ``sample_with_params(count, generator)`` returns ``(x_T, params)``, ``params`` a
    :data:`DegradationParams` batch of ``count``; generation hands these params to every sampler
    step (a degradation with random parameters cannot be generated from without them).
    ``sample`` returns the same x_T for the same generator state.

    Such a prior may also learn from the parameters: if its ``fit`` has a ``params`` argument,
    coldkit calls ``fit(x_T, seed=seed, params=params)`` with the parameters each training x_T was
    degraded with (e.g. ``morph``'s target images, so the prior can take them out again).
    """

    def sample_with_params(
        self, count: int, generator: torch.Generator
    ) -> tuple[Tensor, DegradationParams]: ...


class NoParams(BaseModel):
    """Parameter model for components without parameters."""

    model_config = {"extra": "forbid"}


def params_to_dict(params: BaseModel) -> dict[str, Any]:
    """Plain-data view of a validated parameter model (for metadata and config copies)."""
    return params.model_dump(mode="json")


def _torch() -> Any:
    """torch, imported when a context is built or used (not when the contract is imported, so
    ``coldkit --help`` stays fast)."""
    import torch

    return torch

