"""Table-1 evaluation: degraded, direct and sampled reconstructions of held-out images.

Metrics follow the official code (images in [0, 1]): RMSE is the square root of the mean squared
error over all pixels of the set; SSIM uses an 11x11 Gaussian window with sigma 1.5, data range 1
and no padding (valid), averaged over every window of the set; PSNR is ``20 log10(1 / RMSE)``;
FID compares Inception-v3 pool features of originals and reconstructions (grey repeated to RGB).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import kornia
import torch
from torch import Tensor, nn

from coldkit.data.quantize import quantize
from coldkit.runtime.distributed import SINGLE_PROCESS, Cluster
from coldkit.protocols import Degradation, Sampler

ROWS = ("degraded", "direct", "sampled")


@dataclass
class RowResult:
    """Reconstructions of one Table-1 row and their scores."""

    images: Tensor
    metrics: dict[str, float | None]
    seconds: float


@dataclass
class Evaluation:
    rows: dict[str, RowResult]
    originals: Tensor
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


def fid(
    originals: Tensor,
    reconstructions: Tensor,
    feature: int | nn.Module = 2048,
    weights_path: str | Path | None = None,
    batch_size: int = 100,
) -> float:
    """Frechet distance between features of two image sets, through torchmetrics.

    ``feature`` is 2048 for Inception-v3 (needs ``torch-fidelity`` and ``weights_path``), or any
    module mapping images in [0, 1] to ``(N, d)`` features.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    options = {} if weights_path is None else {"feature_extractor_weights_path": str(weights_path)}
    metric = FrechetInceptionDistance(feature=feature, normalize=True, **options)
    for images, real in ((originals, True), (reconstructions, False)):
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].clamp(0, 1).float()
            if batch.shape[1] == 1:
                batch = batch.expand(-1, 3, -1, -1)
            metric.update(batch, real=real)
    return float(metric.compute())


def fid_unavailable_reason(weights_path: str | None) -> str | None:
    """Why FID cannot be computed here, or None if it can."""
    if weights_path is None:
        return (
            "not computed: no Inception weights configured (set evaluate.inception_weights to a "
            "local pt_inception-2015-12-05 file; they cannot be downloaded at run time here)"
        )
    if not Path(weights_path).expanduser().is_file():
        return f"not computed: Inception weights file {weights_path} does not exist"
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        return "not computed: FID needs torch-fidelity (pip install 'coldkit[fid]')"
    return None


def score(
    reconstructions: Tensor,
    originals: Tensor,
    fid_weights: str | None = None,
    fid_feature: int | nn.Module | None = None,
) -> dict[str, float | None]:
    """SSIM, RMSE, PSNR (reconstructions clamped to [0, 1]) and FID when it can be computed."""
    clamped = reconstructions.clamp(0.0, 1.0)
    metrics: dict[str, float | None] = {
        "ssim": ssim(clamped, originals),
        "rmse": rmse(clamped, originals),
        "psnr": psnr(clamped, originals),
        "fid": None,
    }
    if fid_feature is not None:
        metrics["fid"] = fid(originals, clamped, feature=fid_feature)
    elif fid_unavailable_reason(fid_weights) is None:
        metrics["fid"] = fid(originals, clamped, weights_path=Path(fid_weights).expanduser())
    return metrics


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
    fid_weights: str | None = None,
    fid_feature: int | nn.Module | None = None,
    cluster: Cluster = SINGLE_PROCESS,
    on_batch: Callable[[int], None] | None = None,
    quantize_inputs: int | None = None,
) -> Evaluation | None:
    """Degrade ``originals`` to level T and restore them directly and with ``sampler``.

    With ``quantize_inputs`` the degraded images are rounded to that many bits first (8: what an
    image file holds), so every row is scored as restoring files would be.

    Under torchrun the batches are dealt out to the ranks in turn and gathered on rank 0, which
    scores them and gets the :class:`Evaluation`; the other ranks get None. The degradation's
    random parameters are drawn in the same order whatever the number of ranks. ``on_batch``
    receives the number of images this rank has done after each of its batches.
    """
    restorer.eval()
    generator = torch.Generator().manual_seed(seed)
    mine: dict[int, dict[str, Tensor]] = {}
    seconds = dict.fromkeys(ROWS, 0.0)
    for number, start in enumerate(range(0, len(originals), batch_size)):
        x0 = originals[start : start + batch_size].to(device)
        params = degradation.sample_params(x0, generator)
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
            mine[number][row] = algorithm(restorer, degradation, x_t, t, params).cpu()
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
        rows[row] = RowResult(
            images, score(images, originals, fid_weights, fid_feature), seconds[row]
        )
    note = None if fid_feature is not None else fid_unavailable_reason(fid_weights)
    return Evaluation(rows=rows, originals=originals, fid_note=note)
