"""Make clean/degraded pairs from Fashion-MNIST through a black-box camera-like pipeline.

The pipeline is what a user with real pairs never has as a formula: each image (28x28, resized to
32x32) gets its own random motion-blur kernel (a line of 3-9 pixels at a random angle), Pillow
JPEG at a random low quality (8-25) and sensor-like noise (signal-dependent shot noise plus read
noise of random strength), and is saved as an 8-bit PNG. The clean image is saved beside it under
the same name, so ``paired-folder`` pairs them by name:

    python examples/make_paired_fashion.py paired_data            # 6,000 pairs, seeded
    coldkit run examples/paired_restore.toml                       # learns to undo it

    paired_data/clean/00000.png     paired_data/degraded/00000.png     ...

Pairs are drawn from the official training images, seeded; ``--count`` sets how many. The
coldkit model never sees the pipeline, only the pairs.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_IDX = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
SIZE = 32


def motion_kernel(rng: np.random.Generator, size: int = 9) -> np.ndarray:
    """A normalised line of random length (3-9 px) and angle, anti-aliased by supersampling."""
    length, angle = rng.uniform(3.0, 9.0), rng.uniform(0.0, np.pi)
    kernel = np.zeros((size, size))
    centre = (size - 1) / 2
    for s in np.linspace(-length / 2, length / 2, 64):
        y, x = centre + s * np.sin(angle), centre + s * np.cos(angle)
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
            weight = (1 - abs(y - y0 - dy)) * (1 - abs(x - x0 - dx))
            if 0 <= y0 + dy < size and 0 <= x0 + dx < size and weight > 0:
                kernel[y0 + dy, x0 + dx] += weight
    return kernel / kernel.sum()


def blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``image`` (float, 0-255) convolved with ``kernel``, edges replicated."""
    pad = kernel.shape[0] // 2
    padded = np.pad(image, pad, mode="edge")
    out = np.zeros_like(image)
    for dy in range(kernel.shape[0]):
        for dx in range(kernel.shape[1]):
            if kernel[dy, dx]:
                out += kernel[dy, dx] * padded[dy : dy + image.shape[0], dx : dx + image.shape[1]]
    return out


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """A round trip through Pillow's JPEG encoder at ``quality``."""
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).round().astype(np.uint8)).save(
        buffer, "JPEG", quality=quality
    )
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float64)


def sensor_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shot noise (variance proportional to the signal) plus Gaussian read noise."""
    gain, read = rng.uniform(0.5, 2.0), rng.uniform(2.0, 8.0)
    shot = rng.poisson(np.clip(image, 0, None) / gain) * gain
    return shot + rng.normal(0.0, read, image.shape)


def degrade(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The black box: motion blur, then JPEG, then sensor noise, then 8 bits."""
    out = blur(clean.astype(np.float64), motion_kernel(rng))
    out = jpeg(out, int(rng.integers(8, 26)))
    return np.clip(sensor_noise(out, rng), 0, 255).round().astype(np.uint8)


def read_images(path: Path) -> np.ndarray:
    """The images of a (gzipped) IDX file, uint8 ``(N, H, W)``."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    count, height, width = (int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(3))
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, height, width)


def make_pairs(out: Path, count: int, seed: int = 0, source: Path = DEFAULT_IDX) -> int:
    """Write ``count`` pairs into ``out/clean`` and ``out/degraded``; returns the count written."""
    images = read_images(source)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(images), size=min(count, len(images)), replace=False)
    for folder in ("clean", "degraded"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for number, index in enumerate(chosen):
        clean = Image.fromarray(images[index]).resize((SIZE, SIZE), Image.BILINEAR)
        clean.save(out / "clean" / f"{number:05d}.png")
        degraded = degrade(np.asarray(clean), rng)
        Image.fromarray(degraded).save(out / "degraded" / f"{number:05d}.png")
    return len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write clean/ and degraded/ into")
    parser.add_argument("--count", type=int, default=6000, help="number of pairs (6,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", type=Path, default=DEFAULT_IDX, help="an IDX image file")
    args = parser.parse_args()
    written = make_pairs(args.out, args.count, args.seed, args.source)
    print(f"wrote {written} pairs to {args.out}/clean and {args.out}/degraded")


if __name__ == "__main__":
    main()
