"""Training data that does not fit in memory: image streams read through a DataLoader.

A dataset plugin may offer ``stream(split)`` next to ``load(split)``, returning an
:class:`ImageStream` (a map-style ``torch.utils.data.Dataset`` of uint8 ``(C, S, S)`` images, S
the image size of the dataset's build context; an older ``stream(split, image_size)`` is still
told the size: :func:`coldkit.plugins.compat.open_stream`).
:func:`choose_training_data` keeps the fast path, one float tensor in memory, whenever the split
fits in ``dataset.max_memory_gb``; a larger split streams through
:class:`torch.utils.data.DataLoader` worker processes, with pinned memory on CUDA and a
:class:`~torch.utils.data.DistributedSampler` per rank under torchrun, and stays uint8 until it
reaches the device.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from coldkit.data.batches import InMemoryBatches, SharedBatch, TrainingBatches
from coldkit.runtime.distributed import Cluster
from coldkit.data.files import _has_colour, resize_and_centre_crop, unreadable_note
from coldkit.errors import DataError
from coldkit.plugins.compat import open_stream
from coldkit.protocols import ImageSet

GIB = 2**30


# ------------------------------------------------------------------------ what plugins return
class ImageStream(torch.utils.data.Dataset):
    """One split of a dataset read one image at a time: uint8 ``(C, S, S)`` tensors.

    ``channels`` and ``source`` describe the images; ``labels`` is an optional ``(N,)`` tensor;
    ``notes`` says what was done to the files (skipped, resized, ...).
    """

    channels: int
    source: str
    labels: Tensor | None = None
    notes: list[str]

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Tensor:
        raise NotImplementedError


class FolderStream(ImageStream):
    """Image files read, converted, resized on the short side and centre-cropped on demand.

    Files that are not images are found by reading their headers up front and skipped (named in
    ``notes``); a file that passes the header check but fails to decode later is replaced by the
    next readable one, with one warning naming it.
    """

    def __init__(
        self,
        files: list[Path],
        image_size: int,
        channels: int | None,
        source: str,
        labels: Tensor | None = None,
    ) -> None:
        from PIL import Image, UnidentifiedImageError

        kept, modes, unreadable = [], [], []
        for file in files:
            try:
                with Image.open(file) as image:
                    modes.append(image.mode)
                kept.append(file)
            except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
                unreadable.append(file)  # a decompression bomb (over Pillow's pixel limit) too
        if not kept:
            raise DataError(
                f"None of the {len(files)} image files of {source} could be read (e.g. "
                f"{files[0].name if files else 'none'}). Check that they are valid images."
            )
        self.notes = [unreadable_note(unreadable)] if unreadable else []
        if labels is not None:
            readable = set(kept)
            labels = labels[torch.tensor([file in readable for file in files])]
        if channels is None:
            channels = 3 if _any_colour(kept, modes) else 1
            self.notes.append(f"{'colour' if channels == 3 else 'grey'} images, read from the files")
        self.notes.append(f"read one by one, resized on the short side and centre-cropped to "
                          f"{image_size}x{image_size}")
        self.files, self.image_size, self.channels = kept, image_size, channels
        self.source, self.labels = source, labels
        self._reported: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        for offset in range(len(self.files)):
            file = self.files[(index + offset) % len(self.files)]
            try:
                return self._read(file)
            except (OSError, ValueError) as exc:
                if file not in self._reported:
                    self._reported.add(file)
                    warnings.warn(f"skipping unreadable image {file} ({exc})", stacklevel=2)
        raise DataError(f"No image of {self.source} could be decoded.")

    def _read(self, file: Path) -> Tensor:
        from PIL import Image

        with Image.open(file) as image:
            image = image.convert("L" if self.channels == 1 else "RGB")
            array = np.asarray(resize_and_centre_crop(image, self.image_size), dtype=np.uint8)
        tensor = torch.from_numpy(array.copy())
        return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


class ArrayStream(ImageStream):
    """Rows of a uint8 array ``(N, C, H, W)`` or ``(N, H, W)`` (e.g. a memory-mapped IDX file,
    or any object with ``shape``, ``len`` and row indexing), resized on demand."""

    def __init__(
        self, array: np.ndarray, image_size: int, source: str, labels: Tensor | None = None
    ) -> None:
        if len(array.shape) == 3:
            array = array[:, None]
        self.array, self.image_size, self.source, self.labels = array, image_size, source, labels
        self.channels = int(array.shape[1])
        self.notes = []

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, index: int) -> Tensor:
        image = torch.from_numpy(np.array(self.array[index], dtype=np.uint8))
        if image.shape[-2:] == (self.image_size, self.image_size):
            return image
        resized = F.interpolate(
            image[None].float(), size=(self.image_size,) * 2, mode="bilinear", antialias=True
        )
        return resized[0].round_().clamp_(0, 255).to(torch.uint8)


def _any_colour(files: list[Path], modes: list[str], sample: int = 64) -> bool:
    """Whether the images hold colour, from their modes and the pixels of up to ``sample``
    colour-mode files (an RGB file of grey pixels counts as grey)."""
    from PIL import Image

    coloured = [file for file, mode in zip(files, modes) if mode not in ("1", "L", "LA", "I", "F")]
    for file in coloured[:sample]:
        try:
            with Image.open(file) as image:
                if _has_colour(image):
                    return True
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return False


# --------------------------------------------------------------------------- the training side
class EpochBatches(Sampler[list[int]]):
    """Endless per-rank batches: each epoch is a DistributedSampler shuffle (seed + epoch).

    Global batch k is the k-th run of ``batch_size * world_size`` items of the epoch's
    permutation whatever the number of ranks, so a run can resume at any batch, with the same or
    another world size, without reading the skipped images.
    """

    def __init__(self, count: int, per_rank_batch: int, cluster: Cluster, seed: int, start: int):
        self.count, self.per_rank_batch, self.cluster = count, per_rank_batch, cluster
        self.seed, self.start = seed, start
        self.per_epoch = (count // cluster.world_size) // per_rank_batch
        if self.per_epoch == 0:
            raise DataError(
                f"The training split has {count} images, fewer than one global batch of "
                f"{per_rank_batch * cluster.world_size}. Lower train.batch_size or add images."
            )

    def __iter__(self) -> Iterator[list[int]]:
        drawn = self.start
        while True:
            epoch, offset = divmod(drawn, self.per_epoch)
            order = DistributedSampler(
                range(self.count), num_replicas=self.cluster.world_size, rank=self.cluster.rank,
                shuffle=True, seed=self.seed, drop_last=True,
            )
            order.set_epoch(epoch)
            indices = list(order)
            for batch in range(offset, self.per_epoch):
                yield indices[batch * self.per_rank_batch : (batch + 1) * self.per_rank_batch]
                drawn += 1

    def __len__(self) -> int:  # endless; DataLoader only needs a number
        return 2**62


class StreamingBatches:
    """Training batches read through a DataLoader: uint8 until they reach the device."""

    def __init__(
        self, stream: ImageStream, cluster: Cluster, seed: int, workers: int, pin_memory: bool
    ) -> None:
        self.stream, self.cluster, self.seed = stream, cluster, seed
        self.workers, self.pin_memory = workers, pin_memory
        self.position = 0
        self._batches: Iterator[Tensor] | None = None

    def __len__(self) -> int:
        return len(self.stream)

    def resume_at(self, batches_drawn: int) -> None:
        """Continue after ``batches_drawn`` global batches (what a checkpoint's step implies)."""
        self.close()
        self.position = batches_drawn

    def draw(self, batch_size: int, generator: torch.Generator, cluster: Cluster) -> SharedBatch:
        if self._batches is None:
            sampler = EpochBatches(
                len(self.stream), batch_size // cluster.world_size, cluster, self.seed,
                self.position,
            )
            loader = DataLoader(
                self.stream, batch_sampler=sampler, num_workers=self.workers,
                pin_memory=self.pin_memory, persistent_workers=False,
            )
            self._batches = iter(loader)
        x0 = next(self._batches)
        self.position += 1
        like = x0 if not cluster.enabled else x0.float().div(255).repeat(cluster.world_size, 1, 1, 1)
        return SharedBatch(x0, like)

    def close(self) -> None:
        """Stop the worker processes (they restart on the next draw)."""
        self._batches = None


# ------------------------------------------------------------------------------- the decision
@dataclass
class TrainingData:
    """The training split as the trainer sees it, and how it is held."""

    batches: TrainingBatches
    channels: int
    source: str
    #: How the split is held, for the log: in memory or streamed, and why.
    path_note: str
    #: The split as an ImageSet, for fitting a prior and training the judge (a streamed split
    #: gives at most ``sample_limit`` images of it).
    image_set: Callable[[], ImageSet]


def default_workers() -> int:
    """DataLoader workers when ``dataset.workers`` is unset: one per spare core, at most 4."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def choose_training_data(
    dataset: object,
    image_size: int,
    max_memory_gb: float,
    load: Callable[[], ImageSet],
    cluster: Cluster,
    seed: int,
    device: torch.device,
    workers: int | None = None,
    sample_limit: int = 10_000,
) -> TrainingData:
    """Hold the training split in memory if it fits in ``max_memory_gb`` as float32, else stream
    it (when the dataset can: it has ``stream(split)``). ``dataset`` was built with its build
    context (the run's ``image_size``, which the memory estimate uses too)."""
    stream, needed = _oversized_stream(dataset, image_size, max_memory_gb)
    if stream is not None:
        workers = default_workers() if workers is None else workers
        note = (
            f"streamed from disk ({needed:.2f} GB as float32 > dataset.max_memory_gb = "
            f"{max_memory_gb:g}) through {workers} DataLoader worker(s)"
            f"{', pinned memory' if device.type == 'cuda' else ''}, uint8 until the device"
        )
        source = "; ".join([stream.source, *stream.notes])
        return TrainingData(
            StreamingBatches(stream, cluster, seed, workers, device.type == "cuda"),
            stream.channels, source, note, lambda: sample_stream(stream, sample_limit, seed),
        )
    if needed is None:
        note = "in memory (this dataset cannot stream)"
    else:
        note = f"in memory ({needed:.2f} GB as float32 <= dataset.max_memory_gb = {max_memory_gb:g})"
    image_set = load()
    return TrainingData(  # the fast path: one tensor on the device, indexed per batch
        InMemoryBatches(image_set.images.to(device), _on(image_set.params, device)),
        image_set.images.shape[1],
        image_set.source, note, lambda: image_set,
    )


def _on(params: dict[str, Tensor] | None, device: torch.device) -> dict[str, Tensor] | None:
    """Served per-image parameters moved to ``device`` (None stays None)."""
    return None if params is None else {key: value.to(device) for key, value in params.items()}


def training_image_set(
    dataset: object,
    image_size: int,
    max_memory_gb: float,
    load: Callable[[], ImageSet],
    seed: int,
    sample_limit: int = 10_000,
) -> ImageSet:
    """The training split in memory, or at most ``sample_limit`` images of it where it would
    stream (for fitting a prior and training the judge outside ``coldkit run``)."""
    stream, _ = _oversized_stream(dataset, image_size, max_memory_gb)
    return load() if stream is None else sample_stream(stream, sample_limit, seed)


def _oversized_stream(
    dataset: object, image_size: int, max_memory_gb: float
) -> tuple[ImageStream | None, float | None]:
    """The training split's stream if it is larger than ``max_memory_gb`` as float32, and its
    size in GB (None where the dataset cannot stream)."""
    stream_split = getattr(dataset, "stream", None)
    if not callable(stream_split):
        return None, None
    stream = open_stream(dataset, "train", image_size)
    needed = len(stream) * stream.channels * image_size * image_size * 4 / GIB
    return (stream if needed > max_memory_gb else None), needed


def sample_stream(stream: ImageStream, limit: int, seed: int) -> ImageSet:
    """At most ``limit`` images of a stream (a seeded choice), as an in-memory ImageSet."""
    count = min(limit, len(stream))
    chosen = torch.randperm(len(stream), generator=torch.Generator().manual_seed(seed))[:count]
    chosen = chosen.sort().values
    images = torch.stack([stream[int(index)] for index in chosen]).float().div_(255)
    labels = stream.labels[chosen] if stream.labels is not None else None
    source = f"{stream.source} ({count} of {len(stream)} images, for the prior and the judge)"
    return replace(ImageSet(images, source), labels=labels)


__all__ = [
    "ArrayStream",
    "EpochBatches",
    "FolderStream",
    "ImageStream",
    "StreamingBatches",
    "TrainingData",
    "choose_training_data",
    "default_workers",
    "training_image_set",
]
