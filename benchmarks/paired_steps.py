"""Steps against quality for a trained ``paired`` run (docs/paired.md): PSNR, SSIM and, where the
FID network is installed, FID/KID of Algorithm 2 over ``k`` evenly spaced levels of T, on the
run's validation or test pairs.

    python benchmarks/paired_steps.py RUN_DIR --split val --steps 1 2 5 10 20

With k levels T = s_0 > s_1 > ... > s_k = 0, each step is ``x <- x - D(x̂0, s_i) + D(x̂0, s_{i+1})``
(Algorithm 2 with a stride; k = 1 is the direct one-step restoration, k = T is ``improved``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from coldkit.data.splits import load_split
from coldkit.evaluation.metrics import score
from coldkit.runs.folder import open_run


@torch.no_grad()
def strided(restorer, degradation, x_T: torch.Tensor, params: dict, k: int) -> torch.Tensor:
    """Algorithm 2 over ``k`` evenly spaced levels from T down to 0."""
    T = degradation.steps
    levels = sorted({round(T * i / k) for i in range(k + 1)}, reverse=True)
    x = x_T
    for high, low in zip(levels, levels[1:]):
        t_high = torch.full((len(x),), high, dtype=torch.long)
        x0_hat = restorer(x, t_high)
        x = x - degradation.degrade(x0_hat, t_high, params) + degradation.degrade(
            x0_hat, torch.full_like(t_high, low), params)
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 5, 10, 20])
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--fid", action="store_true", help="FID/KID too (the standard network)")
    args = parser.parse_args()
    loaded = open_run(args.run)
    config = loaded.experiment.config
    pairs = load_split(loaded.experiment.dataset, args.split, config.dataset.image_size)
    x0, y = pairs.images[: args.count], pairs.params["y"][: args.count]
    generator = torch.Generator().manual_seed(config.seed)
    params = {"y": y, **loaded.degradation.sample_params(x0, generator)}
    fid = _fid(x0) if args.fid else None
    rows = {"degraded": y}
    for k in args.steps:
        rows[f"{k} step(s)"] = strided(loaded.restorer.eval(), loaded.degradation, y, params, k)
    table = {}
    for name, images in rows.items():
        metrics = score(images.clamp(0, 1), x0)
        entry = {"psnr": metrics["psnr"], "ssim": metrics["ssim"]}
        if fid is not None:
            entry.update({key: value for key, value in fid(images.clamp(0, 1)).items()
                          if key in ("fid", "kid")})
        table[name] = entry
        print(name, json.dumps(entry))


def _fid(real: torch.Tensor):
    """A scorer of images against ``real`` with coldkit's FID/KID (``coldkit.fid``)."""
    import coldkit

    return lambda images: coldkit.fid(images, real)


if __name__ == "__main__":
    main()
