"""Restore real 8-bit files as a user would: held-out digits blurred by the official code's
sequential blur (11x11, sigma 7, circular padding, t convolutions), saved as 8-bit PNGs, then
restored by ``coldkit restore`` with ``--t`` and with ``--estimate-t``; prints SSIM per level.

    python -m benchmarks.restore_files RUN_DIR --split val --levels 3 10 20 --count 100

``--split val`` for choosing settings, ``--split test`` for reporting; ``--json`` writes the
numbers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from coldkit.data.splits import load_split
from coldkit.evaluation.metrics import ssim
from coldkit.runs.opened import open_run

OFFICIAL_KERNEL_SIZE, OFFICIAL_SIGMA = 11, 7.0


def official_kernel(size: int = OFFICIAL_KERNEL_SIZE, sigma: float = OFFICIAL_SIGMA) -> Tensor:
    """The official code's normalised 2-D Gaussian kernel ``(1, 1, size, size)``."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    line = torch.exp(-(offsets**2) / (2 * sigma**2))
    line = line / line.sum()
    return (line[:, None] * line[None, :])[None, None]


def official_blur(x0: Tensor, level: int) -> Tensor:
    """``level`` sequential depthwise convolutions with circular padding, in float64."""
    kernel = official_kernel().to(x0.device)
    x = x0.double()
    pad = OFFICIAL_KERNEL_SIZE // 2
    channels = x.shape[1]
    for _ in range(level):
        x = F.conv2d(
            F.pad(x, (pad, pad, pad, pad), mode="circular"),
            kernel.expand(channels, 1, -1, -1),
            groups=channels,
        )
    return x.float()


def save_png(image: Tensor, path: Path) -> None:
    """Save a ``(1, H, W)`` image in [0, 1] as an 8-bit grey PNG, rounded as torchvision's
    ``save_image`` (the official code's) rounds."""
    pixels = image[0].mul(255).add(0.5).clamp(0, 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(path)


def read_png(path: Path) -> Tensor:
    return torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255.0)[None]


def restore(run_dir: Path, files: list[Path], out: Path, option: list[str]) -> list[Tensor]:
    """Run ``coldkit restore`` on ``files`` and read the restored images back in order."""
    command = [sys.executable, "-m", "coldkit", "restore", str(run_dir), *map(str, files)]
    subprocess.run([*command, "--out", str(out), *option], check=True, capture_output=True)
    return [read_png(out / f"{file.stem}_restored.png") for file in files]


def measure(
    run_dir: Path, split: str, levels: list[int], count: int, sampler: str | None = None
) -> dict[str, dict]:
    run = open_run(run_dir, device="cpu")
    originals = load_split(run.experiment.dataset, split, run.context.image_size).images[:count]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        for level in levels:
            level_dir = Path(folder) / f"t{level}"
            level_dir.mkdir()
            blurred = official_blur(originals, level)
            files = [level_dir / f"digit_{index:04d}.png" for index in range(len(originals))]
            for image, file in zip(blurred, files):
                save_png(image, file)
            chosen = ["--sampler", sampler] if sampler else []
            given = restore(run_dir, files, level_dir / "given", ["--t", str(level), *chosen])
            guessed = restore(run_dir, files, level_dir / "estimated", ["--estimate-t", *chosen])
            inputs = torch.stack([read_png(file) for file in files])
            results[str(level)] = {
                "input": ssim(inputs, originals),
                "given_t": ssim(torch.stack(given), originals),
                "estimate_t": ssim(torch.stack(guessed), originals),
            }
            row = results[str(level)]
            print(
                f"t={level:3d}  input {row['input']:.3f}  --t {row['given_t']:.3f}  "
                f"--estimate-t {row['estimate_t']:.3f}",
                flush=True,
            )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--split", default="val", choices=["train", "val", "test"])
    parser.add_argument("--levels", type=int, nargs="+", default=[3, 10, 20])
    parser.add_argument("--count", type=int, default=100, help="held-out digits per level")
    parser.add_argument("--sampler", help="restore with this sampler (default: the run's)")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args(argv)
    results = measure(args.run_dir, args.split, args.levels, args.count, args.sampler)
    if args.json is not None:
        summary = {"split": args.split, "count": args.count, "sampler": args.sampler}
        args.json.write_text(json.dumps({**summary, "levels": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
