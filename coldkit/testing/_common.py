"""Helpers shared by the checks of every kind: test images, seeded generators, levels, labels."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from coldkit.data.served import data_params
from coldkit.data.splits import DatasetReader
from coldkit.plugins import Registry
from coldkit.protocols import BuildContext, DatasetAccess, Degradation, Split


def make_test_images(
    count: int = 8,
    size: int = 16,
    channels: int = 3,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Seeded colour test images ``(count, channels, size, size)`` in [0, 1].

    Smooth random colour fields plus a bright square and a dark stripe, so they have colour,
    edges and flat parts for every kind of degradation to act on.
    """
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, channels, 4, 4, generator=generator)
    images = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    grid = torch.arange(size)
    top = torch.randint(0, max(1, size // 2), (count, 1, 1, 1), generator=generator)
    left = torch.randint(0, max(1, size // 2), (count, 1, 1, 1), generator=generator)
    ys, xs = grid.view(1, 1, -1, 1), grid.view(1, 1, 1, -1)
    square = (ys >= top) & (ys < top + size // 3) & (xs >= left) & (xs < left + size // 3)
    stripe = (xs - left).abs() <= max(1, size // 16)
    images = torch.where(square, 0.9 * torch.ones_like(images), images)
    images = torch.where(stripe & ~square, 0.1 * torch.ones_like(images), images)
    return images.clamp(0, 1).to(device=device, dtype=dtype)


# ----------------------------------------------------------------------------------- helpers
def _generator(seed: int) -> torch.Generator:
    # The engine draws params with one CPU generator whatever the device: do the same.
    return torch.Generator().manual_seed(seed)


def _label(degradation: Degradation) -> str:
    return f"degradation {getattr(degradation, 'name', type(degradation).__name__)!r}"


def _levels(steps: int, count: int) -> list[int]:
    """At most ``count`` levels evenly spread over ``0 .. steps``, always with 0 and ``steps``."""
    if steps + 1 <= count:
        return list(range(steps + 1))
    return sorted({round(i * steps / (count - 1)) for i in range(count)})


def _mixed_levels(steps: int, batch: int, seed: int) -> Tensor:
    """Levels spread over ``0 .. steps`` (both ends included when ``batch >= 2``), shuffled."""
    if batch == 1:
        return torch.tensor([steps])
    spread = torch.tensor([round(i * steps / (batch - 1)) for i in range(batch)])
    return spread[torch.randperm(batch, generator=_generator(seed))]


def _full(level: int, images: Tensor) -> Tensor:
    return torch.full((images.shape[0],), level, dtype=torch.long, device=images.device)


def _max_difference(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def _resolve_images(images: Tensor | None) -> Tensor:
    return make_test_images() if images is None else images


class WithParams:
    """``degradation`` whose ``sample_params`` returns given ``params`` instead of a draw: how the
    checks exercise a degradation whose parameters come from the data (``data_params``, e.g.
    ``paired``'s ``y``) or that the data serves beside its own draws.

    For a batch like ``x0`` it returns the params' rows ``0 .. len(x0) - 1`` (repeated when the
    batch is larger), resized to ``x0``'s size and channel count, on ``x0``'s device and dtype.
    """

    def __init__(self, degradation: Degradation, params: dict[str, Tensor]) -> None:
        self.degradation, self.params = degradation, params
        self.name = degradation.name
        self.description = degradation.description
        self.steps = degradation.steps
        self.random_params = tuple(params)

    def sample_params(self, x0: Tensor, generator: torch.Generator | None = None):
        index = torch.arange(len(x0)) % len(next(iter(self.params.values())))
        return {key: _like(value[index], x0) for key, value in self.params.items()}

    def degrade(self, x0: Tensor, t: Tensor, params=None) -> Tensor:  # type: ignore[no-untyped-def]
        return self.degradation.degrade(x0, t, params)


def serve_test_params(degradation: Degradation) -> Degradation:
    """``degradation`` itself, or, for one whose parameters come from the data (``data_params``,
    e.g. ``paired``'s twin y), the same with seeded test images served as those parameters (a
    :class:`WithParams`), so every check can run it on test images alone."""
    names = data_params(degradation)
    if not names:
        return degradation
    served = {name: make_test_images(8, seed=101 + number) for number, name in enumerate(names)}
    drawn = degradation.sample_params(served[names[0]], _generator(0))
    return WithParams(degradation, {**drawn, **served})  # type: ignore[return-value]


def _like(value: Tensor, x0: Tensor) -> Tensor:
    """``value`` (a batch of images) at ``x0``'s size, channels, device and dtype."""
    if value.shape[-2:] != x0.shape[-2:]:
        value = F.interpolate(value.double(), size=tuple(x0.shape[-2:]), mode="bilinear")
    if value.shape[1] != x0.shape[1]:
        value = value.mean(1, keepdim=True).expand(-1, x0.shape[1], -1, -1)
    return value.to(device=x0.device, dtype=x0.dtype).contiguous()


def _named(component: object, kind: str) -> str:
    name = getattr(component, "name", None)
    if not isinstance(name, str):
        name = getattr(component, "__name__", None) or type(component).__name__
    return f"{kind} {name!r}"


@functools.lru_cache(maxsize=None)
def _registered_datasets(image_size: int) -> DatasetReader:
    """Registered datasets read through a fresh discovery, once per process and size."""
    return DatasetReader(Registry.discover(), image_size)


def build_context(
    *,
    image_size: int = 16,
    channels: int | None = 3,
    steps: int | None = None,
    split: Split = "train",
    device: torch.device | str = "cpu",
    seed: int = 0,
    degradation: Degradation | None = None,
    load_dataset: DatasetAccess | None = None,
) -> BuildContext:
    """A :class:`~coldkit.protocols.BuildContext` for a plugin's tests, as a run would pass one.

    Every field a run fills can be set: the image size and channels, T (``steps``), the
    ``split`` served, the ``device``, the ``seed``, the run's ``degradation`` (a prior's context
    carries it) and ``load_dataset``, what :meth:`BuildContext.load_dataset` reads through: any
    callable ``(name, params, split) -> ImageSet`` (a fake serving your own test images), or,
    left out, the registered datasets of this environment (read once per process, resized to
    ``image_size`` and matched to ``channels``)::

        from coldkit.testing import build_context
        context = build_context(image_size=16, channels=1, split="test",
                                degradation=MyDegradation(MyParams()))
        prior = MyPrior(MyPrior.Params(), context=context)
    """
    data = load_dataset if load_dataset is not None else _registered_datasets(image_size)
    return BuildContext(
        image_size, channels, steps, device=torch.device(device), seed=seed, split=split,
        data=data, degradation=degradation,
    )
