"""How big and how often each benchmark runs: the full run, ``--quick``, and tiny (for tests)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Settings:
    channels: int = 3
    min_seconds: float = 0.05  # each timing of a short call repeats it to last this long
    # D(x0, T) : D(x0, 1) for every registered degradation
    cost_batches: tuple[int, ...] = (64, 256)
    cost_sizes: tuple[int, ...] = (32, 64)
    cost_repeats: int = 7
    # coldkit's blur against the sequential reference (the goal is at batch 64, 32x32)
    blur_levels: tuple[int, ...] = (20, 50, 200)
    reference_batch: int = 64
    reference_size: int = 32
    reference_repeats: int = 5
    # Algorithm 2 with the small U-Net
    sampling_levels: tuple[int, ...] = (20, 50, 200)
    sampling_batch: int = 64
    sampling_size: int = 32
    sampling_repeats: int = 3
    # one training step of the small U-Net
    train_batch: int = 64
    train_size: int = 32
    train_images: int = 256
    train_repeats: int = 25
    matmul_size: int = 2048
    matmul_repeats: int = 5
    # speed switches, each on against all off (training step and Algorithm 2 at the lowest T)
    switch_repeats: int = 7
    switch_compile: bool = True  # compiling the small U-Net takes minutes on a CPU


FULL = Settings()

QUICK = replace(
    FULL,
    cost_batches=(64,),
    cost_sizes=(32,),
    cost_repeats=3,
    reference_repeats=3,
    min_seconds=0.02,
    sampling_batch=16,
    sampling_repeats=2,
    train_repeats=5,
    matmul_size=1024,
    matmul_repeats=3,
    switch_repeats=3,
    switch_compile=False,
)

# For the test suite: every section and goal runs (same levels T), on tiny tensors.
TINY = replace(
    QUICK,
    cost_batches=(4,),
    cost_sizes=(16,),
    cost_repeats=1,
    min_seconds=0.0,
    reference_batch=4,
    reference_size=16,
    reference_repeats=1,
    sampling_batch=2,
    sampling_size=16,
    train_batch=4,
    train_size=16,
    train_images=8,
    train_repeats=2,
    matmul_size=64,
    matmul_repeats=1,
    switch_repeats=1,
)
