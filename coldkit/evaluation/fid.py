"""FID and KID of image sets with the standard network, and the cache of reference features.

:class:`FidReference` holds the features of a reference set (a dataset split's first N images,
or any images) and scores other sets against them; :func:`reference` computes those features
once per key and caches them in the user's cache folder (:func:`cache_dir`), keyed by dataset,
its parameters, split, image size, image count and the network's SHA-1, so a second run,
``coldkit generate`` or ``coldkit compare`` does not recompute them. Every number comes with the
number of images it was computed on: FID is biased upwards at small counts (KID is not).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from rich.console import Console
from torch import Tensor

from coldkit.errors import WriteError
from coldkit.evaluation.distances import frechet_distance, kernel_inception_distance
from coldkit.evaluation.inception import FeatureNetwork
from coldkit.runtime.files import write_atomic
from coldkit.runtime.log import Notify
from coldkit.runtime.progress import batch_progress

#: Overrides where cached reference features go (default: $XDG_CACHE_HOME/coldkit, or
#: ~/.cache/coldkit).
CACHE_VARIABLE = "COLDKIT_CACHE_DIR"
#: Bumped when the cached file's layout or the preprocessing changes.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class FidScore:
    """FID and KID of ``count`` images against ``reference_count`` reference images."""

    fid: float
    kid: float
    kid_std: float
    count: int
    reference_count: int

    def to_dict(self) -> dict[str, Any]:
        """The fields a metrics row, ``generation.json`` and ``coldkit fid --json`` carry."""
        return {
            "fid": self.fid,
            "kid": self.kid,
            "kid_std": self.kid_std,
            "fid_images": self.count,
            "fid_reference_images": self.reference_count,
        }


#: A metrics row's FID fields when FID was not computed.
NOT_COMPUTED: dict[str, Any] = dict.fromkeys(
    ("fid", "kid", "kid_std", "fid_images", "fid_reference_images")
)


@dataclass
class Extractor:
    """Extracts features with ``network``, showing a progress bar on ``console`` and logging the
    seconds each set took with ``notify`` (both optional)."""

    network: FeatureNetwork
    console: Console | None = None
    notify: Notify | None = None
    batch_size: int = 50

    def __call__(self, images: Tensor, label: str) -> Tensor:
        began = time.perf_counter()
        if self.console is None:
            features = self.network.features(images, self.batch_size)
        else:
            with batch_progress(self.console, f"FID features: {label}") as progress:
                task = progress.add_task("fid", total=len(images))
                features = self.network.features(
                    images, self.batch_size, lambda done: progress.update(task, completed=done)
                )
        if self.notify is not None:
            self.notify(
                f"FID features of {len(images)} images ({label}): "
                f"{time.perf_counter() - began:.1f} s"
            )
        return features


@dataclass
class FidReference:
    """Features of a reference image set, against which other sets are scored."""

    extractor: Extractor
    features: Tensor

    @property
    def count(self) -> int:
        return len(self.features)

    def score(self, images: Tensor, label: str) -> FidScore:
        """FID and KID of ``images`` (in [0, 1]) against the reference."""
        return score_features(self.extractor(images, label), self.features)


def score_features(features: Tensor, reference_features: Tensor) -> FidScore:
    """FID and KID between two feature sets (see :mod:`coldkit.evaluation.distances`)."""
    kid, kid_std = kernel_inception_distance(features, reference_features)
    return FidScore(
        frechet_distance(features, reference_features), kid, kid_std, len(features),
        len(reference_features),
    )


def cache_dir() -> Path:
    """Where reference features are cached: ``$COLDKIT_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/coldkit``, else ``~/.cache/coldkit``."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "coldkit"


def reference_key(
    dataset: str, params: dict[str, Any], split: str, images: Tensor, network_sha1: str
) -> dict[str, Any]:
    """What identifies the reference features of ``images``, a dataset split's first images
    (every part of the cache key): dataset, parameters, split, image size, count, the network's
    SHA-1, and a digest of the images themselves (a dataset whose files changed, or a plugin that
    splits by the run's seed, gets new features)."""
    return {
        "format": CACHE_FORMAT, "dataset": dataset, "params": params, "split": split,
        "image_size": list(images.shape[-2:]), "count": len(images),
        "network_sha1": network_sha1, "images_sha1": images_digest(images),
    }


def images_digest(images: Tensor) -> str:
    """SHA-1 of the images' float32 values."""
    return hashlib.sha1(images.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()


def reference(
    extractor: Extractor,
    images: Callable[[], Tensor],
    key: dict[str, Any] | None,
    label: str = "reference",
) -> FidReference:
    """The reference features of ``images()``: read from the cache when ``key`` is there,
    otherwise extracted (with a progress bar) and cached under ``key`` (None: not cached).

    An unreadable cached file is recomputed; a cache folder that cannot be written is noted in the
    log and the features are used anyway."""
    path = None if key is None else cache_path(key)
    if path is not None and (cached := _read_cached(path, key)) is not None:
        if extractor.notify is not None:
            extractor.notify(f"FID reference features ({label}) read from the cache {path}")
        return FidReference(extractor, cached)
    features = extractor(images(), label)
    if path is not None:
        _write_cached(path, key, features, extractor.notify)
    return FidReference(extractor, features)


def cache_path(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    return cache_dir() / "fid" / f"{key['dataset']}-{key['split']}-{digest[:20]}.pt"


def _read_cached(path: Path, key: dict[str, Any] | None) -> Tensor | None:
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError):
        return None  # unreadable: computed again and rewritten
    if not isinstance(data, dict) or data.get("key") != json.dumps(key, sort_keys=True, default=str):
        return None
    features = data.get("features")
    return features if isinstance(features, Tensor) and features.ndim == 2 else None


def _write_cached(
    path: Path, key: dict[str, Any] | None, features: Tensor, notify: Notify | None
) -> None:
    buffer = io.BytesIO()
    torch.save({"key": json.dumps(key, sort_keys=True, default=str), "features": features}, buffer)
    try:
        write_atomic(path, lambda handle: handle.write(buffer.getvalue()))
    except WriteError as exc:
        if notify is not None:
            notify(f"FID reference features not cached: {exc}")


__all__ = [
    "CACHE_VARIABLE",
    "Extractor",
    "FidReference",
    "FidScore",
    "NOT_COMPUTED",
    "cache_dir",
    "cache_path",
    "reference",
    "reference_key",
    "score_features",
]
