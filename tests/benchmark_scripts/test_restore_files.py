"""benchmarks/restore_files.py: its official sequential blur is coldkit's blur, and its PNGs hold
what the official code's save_image writes."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.restore_files import official_blur, read_png, save_png
from coldkit.data.quantize import quantize
from coldkit.plugins import Registry


def test_official_sequential_blur_matches_coldkits_blur():
    blur = Registry.discover().get("degradation", "blur").build(
        {"steps": 20, "kernel_size": 11, "sigma": 7.0, "padding": "circular"}
    )
    x0 = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    for level in (1, 4, 20):
        expected = official_blur(x0, level)
        got = blur.degrade(x0, torch.full((3,), level))
        assert (got - expected).abs().max() < 1e-5, level


def test_png_round_trip_holds_the_rounded_image(tmp_path: Path):
    image = torch.rand(1, 8, 8)
    save_png(image, tmp_path / "a.png")
    assert torch.equal(read_png(tmp_path / "a.png"), quantize(image))
