"""Table-1 evaluation: degraded, direct and sampled reconstructions of held-out images.

Metrics follow the official code (images in [0, 1]): RMSE is the square root of the mean squared
error over all pixels of the set; SSIM uses an 11x11 Gaussian window with sigma 1.5, data range 1
and no padding (valid), averaged over every window of the set; PSNR is ``20 log10(1 / RMSE)``;
FID and KID (Inception-v3 pool features of originals and reconstructions) are added by the
evaluation stage through :mod:`coldkit.evaluation.fid`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import kornia
import torch
from torch import Tensor, nn

from coldkit.data.quantize import quantize
from coldkit.data.served import params_for, rows_of
from coldkit.evaluation.fid import NOT_COMPUTED
from coldkit.runtime.distributed import SINGLE_PROCESS, Cluster
from coldkit.protocols import Degradation, DegradationParams, Sampler

ROWS = ("degraded", "direct", "sampled")


@dataclass
class RowResult:
    """Reconstructions of one Table-1 row and their scores."""

    images: Tensor
    metrics: dict[str, float | int | None]
    seconds: float


@dataclass
class Evaluation:
    rows: dict[str, RowResult]
    originals: Tensor
    #: Why FID was not computed (None when it was).
    fid_note: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def rmse(prediction: Tensor, target: Tensor) -> float:
    return float(torch.sqrt(torch.mean((prediction.double() - target.double()) ** 2)))


def ssim(prediction: Tensor, target: Tensor, batch_size: int = 256) -> float:
    """Mean SSIM over every valid 11x11 window of the set (sigma 1.5, data range 1)."""
    total, count = 0.0, 0
    for start in range(0, len(target), batch_size):
        ssim_map = kornia.metrics.ssim(
            prediction[start : start + batch_size].float(),
            target[start : start + batch_size].float(),
            window_size=11,
            max_val=1.0,
            padding="valid",
        )
        total += float(ssim_map.double().sum())
        count += ssim_map.numel()
    return total / count


def psnr(prediction: Tensor, target: Tensor) -> float:
    error = rmse(prediction, target)
    return math.inf if error == 0 else 20.0 * math.log10(1.0 / error)


def score(reconstructions: Tensor, originals: Tensor) -> dict[str, float | int | None]:
    """SSIM, RMSE, PSNR (reconstructions clamped to [0, 1]); the FID fields are None until the
    evaluation stage fills them (:mod:`coldkit.evaluation.fid`)."""
    clamped = reconstructions.clamp(0.0, 1.0)
    return {
        "ssim": ssim(clamped, originals),
        "rmse": rmse(clamped, originals),
        "psnr": psnr(clamped, originals),
        **NOT_COMPUTED,
    }


def batch_generator(seed: int, batch: int) -> torch.Generator:
    """The CPU generator a sampler draws from for batch number ``batch`` of an evaluation
    seeded with ``seed``: independent of which rank restores the batch."""
    return torch.Generator().manual_seed((seed * 1_000_003 + batch) % 2**63)


@torch.no_grad()
def evaluate(
    restorer: nn.Module,
    degradation: Degradation,
    sampler: Sampler,
    direct: Sampler,
    originals: Tensor,
    device: torch.device,
    batch_size: int = 100,
    seed: int = 0,
    cluster: Cluster = SINGLE_PROCESS,
    on_batch: Callable[[int], None] | None = None,
    quantize_inputs: int | None = None,
    served: DegradationParams | None = None,
) -> Evaluation | None:
    """Degrade ``originals`` to level T and restore them directly and with ``sampler``.

    ``quantize_inputs``: the degraded images rounded to that many bits first (8: image files).

    Under torchrun the batches are dealt out to the ranks in turn and gathered on rank 0, which
    scores them and gets the :class:`Evaluation`; the other ranks get None. The degradation's
    random parameters are drawn in the same order whatever the number of ranks. ``on_batch``
    receives the number of images this rank has done after each of its batches. ``served`` are
    per-image parameters the data serves for ``originals`` (a paired dataset's twins), used by a
    degradation with ``data_params`` (:mod:`coldkit.data.served`). A sampler that draws noise
    draws it from :func:`batch_generator`: the same rows on every run, for any number of ranks.
    """
    restorer.eval()
    generator = torch.Generator().manual_seed(seed)
    mine: dict[int, dict[str, Tensor]] = {}
    seconds = dict.fromkeys(ROWS, 0.0)
    for number, start in enumerate(range(0, len(originals), batch_size)):
        x0 = originals[start : start + batch_size].to(device)
        rows = rows_of(served, slice(start, start + batch_size))
        params = params_for(degradation, x0, generator, rows)
        if number % cluster.world_size != cluster.rank:
            continue
        t = torch.full((len(x0),), degradation.steps, dtype=torch.long, device=device)
        began = time.perf_counter()
        x_t = degradation.degrade(x0, t, params)
        if quantize_inputs is not None:
            x_t = quantize(x_t, quantize_inputs)
        seconds["degraded"] += time.perf_counter() - began
        mine[number] = {"degraded": x_t.cpu()}
        for row, algorithm in (("direct", direct), ("sampled", sampler)):
            began = time.perf_counter()
            noise = batch_generator(seed, number)  # a stochastic sampler's draws, per batch
            mine[number][row] = algorithm(restorer, degradation, x_t, t, params,
                                          generator=noise).cpu()
            seconds[row] += time.perf_counter() - began
        if on_batch is not None:
            on_batch(sum(len(outputs["degraded"]) for outputs in mine.values()))
    gathered = cluster.gather(mine)
    if gathered is None:
        return None
    batches = {number: outputs for share in gathered for number, outputs in share.items()}
    rows = {}
    for row in ROWS:
        images = torch.cat([batches[number][row] for number in sorted(batches)])
        rows[row] = RowResult(images, score(images, originals), seconds[row])
    return Evaluation(rows=rows, originals=originals)
