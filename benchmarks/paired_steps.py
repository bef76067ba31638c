"""Steps against quality for a trained ``paired`` run (docs/paired.md): PSNR, SSIM and, where the
FID network is installed, FID/KID of Algorithm 2 over ``k`` evenly spaced levels of T, on the
run's validation or test pairs.

    python benchmarks/paired_steps.py RUN_DIR --split val --steps 1 2 5 10 20 --fid-steps 1 20

With k levels T = s_0 > s_1 > ... > s_k = 0, each step is ``x <- x - D(x̂0, s_i) + D(x̂0, s_{i+1})``
(Algorithm 2 with a stride; k = 1 is the direct one-step restoration, k = T is ``improved``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from coldkit.data.splits import load_split
from coldkit.evaluation.fid import score_features
from coldkit.evaluation.inception import load_network
from coldkit.evaluation.metrics import score
from coldkit.runs.opened import open_run


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
    parser.add_argument("--count", type=int, default=600, help="pairs scored by PSNR/SSIM")
    parser.add_argument("--fid-steps", type=int, nargs="*", default=[],
                        help="step counts also scored by FID/KID (the standard network)")
    parser.add_argument("--fid-images", type=int, default=200)
    parser.add_argument("--json", type=Path, help="write the table here too")
    args = parser.parse_args()
    loaded = open_run(args.run)
    config = loaded.experiment.config
    pairs = load_split(loaded.experiment.dataset, args.split, config.dataset.image_size)
    x0, y = pairs.images[: args.count], pairs.params["y"][: args.count]
    generator = torch.Generator().manual_seed(config.seed)
    params = {"y": y, **loaded.degradation.sample_params(x0, generator)}
    network = load_network() if args.fid_steps else None
    real = network.features(x0[: args.fid_images]) if network is not None else None
    table = {}
    for k in [0, *args.steps]:
        images = y if k == 0 else strided(loaded.restorer.eval(), loaded.degradation, y, params, k)
        images = images.clamp(0, 1)
        metrics = score(images, x0)
        entry = {"psnr": round(metrics["psnr"], 3), "ssim": round(metrics["ssim"], 4)}
        if network is not None and (k in args.fid_steps or (k == 0 and 0 in args.fid_steps)):
            fid = score_features(network.features(images[: args.fid_images]), real)
            entry.update({"fid": round(fid.fid, 2), "kid": round(fid.kid, 4)})
        name = "degraded" if k == 0 else f"{k} step(s)"
        table[name] = entry
        print(args.run.name, args.split, name, json.dumps(entry), flush=True)
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
