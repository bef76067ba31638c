"""FID and KID between two image sets named on the command line (``coldkit fid A B``) or passed
from Python (:func:`coldkit.api.fid`): the same network, preprocessing and KID subsets as the
run's Table 1, on every image of both sets unless ``max_images`` caps them."""

from __future__ import annotations

from typing import Any, Callable

import torch
from rich.console import Console
from torch import Tensor

from coldkit.evaluation.fid import Extractor, score_features
from coldkit.evaluation.inception import load_network
from coldkit.evaluation.sources import ImageSource, read_source
from coldkit.plugins import Registry
from coldkit.runtime.log import Notify

#: What ``coldkit fid --json`` prints and :func:`coldkit.api.fid` returns, at least.
FIELDS = ("fid", "kid", "kid_std", "count_a", "count_b")


def fid_between(
    a: str | Tensor,
    b: str | Tensor,
    registry: Callable[[], Registry],
    *,
    image_size: int | None = None,
    max_images: int | None = None,
    weights: str | None = None,
    batch_size: int = 50,
    device: torch.device | str = "cpu",
    console: Console | None = None,
    notify: Notify | None = None,
) -> dict[str, Any]:
    """FID, KID (mean and std over subsets) and the image counts of ``a`` against ``b``: each a
    source :func:`~coldkit.evaluation.sources.read_source` reads, or an ``(N, C, H, W)`` tensor
    in [0, 1]. Raises :class:`~coldkit.evaluation.inception.FidNetworkError` when the network is
    missing or damaged, :class:`~coldkit.errors.DataError` when a source cannot be read."""
    network = load_network(weights, device)
    extractor = Extractor(network, console, notify, batch_size)
    sources = [_source(item, registry, image_size) for item in (a, b)]
    features = [
        extractor(source.images[:max_images], label)
        for source, label in zip(sources, ("A", "B"))
    ]
    score = score_features(features[0], features[1])
    return {
        "fid": score.fid,
        "kid": score.kid,
        "kid_std": score.kid_std,
        "count_a": score.count,
        "count_b": score.reference_count,
        "a": sources[0].description,
        "b": sources[1].description,
        "network": str(network.path),
        "network_sha1": network.sha1,
    }


def _source(item: str | Tensor, registry: Callable[[], Registry], size: int | None) -> ImageSource:
    if isinstance(item, Tensor):
        return ImageSource(item, f"a tensor of {len(item)} images")
    return read_source(str(item), registry, size)


__all__ = ["FIELDS", "fid_between"]
