"""The degradation contract: :func:`check_degradation` and the checks it runs, one function each."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor

from coldkit.protocols import DEGRADED_RANGE, Degradation, DegradationParams
from coldkit.testing._common import (
    WithParams,
    _full,
    _generator,
    _label,
    _levels,
    _max_difference,
    _mixed_levels,
    _resolve_images,
    make_test_images,
)


@dataclass
class ContractReport:
    """What :func:`check_degradation` checked, and the measured cost ratio (if measured)."""

    name: str
    passed: list[str] = field(default_factory=list)
    cost_ratio: float | None = None


def _slice_params(params: DegradationParams, index: int) -> DegradationParams:
    return {key: value[index : index + 1] for key, value in params.items()}


# ------------------------------------------------------------------------------------ checks
def check_interface(degradation: Degradation) -> None:
    """The object has the protocol's attributes: ``name``, ``description``, an integer
    ``steps >= 1``, ``sample_params`` and ``degrade``."""
    missing = [
        attribute
        for attribute in ("name", "description", "steps", "sample_params", "degrade")
        if not hasattr(degradation, attribute)
    ]
    assert not missing, f"{_label(degradation)} lacks {', '.join(missing)} (see Degradation)"
    assert isinstance(degradation, Degradation)
    assert isinstance(degradation.name, str) and degradation.name, "name must be a non-empty str"
    assert isinstance(degradation.description, str), "description must be a str"
    steps = degradation.steps
    assert isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1, (
        f"{_label(degradation)}: steps (T) must be an int >= 1, got {steps!r}"
    )


def check_identity_at_zero(
    degradation: Degradation, images: Tensor | None = None, seed: int = 0
) -> None:
    """``D(x0, 0)`` returns ``x0`` exactly (bit for bit)."""
    x0 = _resolve_images(images)
    params = degradation.sample_params(x0, _generator(seed))
    out = degradation.degrade(x0, _full(0, x0), params)
    assert out.shape == x0.shape, (
        f"{_label(degradation)}: D(x0, 0) has shape {tuple(out.shape)}, x0 {tuple(x0.shape)}"
    )
    assert torch.equal(out, x0), (
        f"{_label(degradation)}: D(x0, 0) must return x0 unchanged; it differs by up to "
        f"{_max_difference(out, x0):.3g}. Return x0 where t == 0, e.g. "
        "torch.where((t == 0).view(-1, 1, 1, 1), x0, degraded)."
    )


def check_params(degradation: Degradation, images: Tensor | None = None, seed: int = 0) -> None:
    """``sample_params`` returns a dict of tensors whose first dimension is the batch, the same
    generator seed gives the same params, and ``random_params`` (where declared) names its keys."""
    x0 = _resolve_images(images)
    first = degradation.sample_params(x0, _generator(seed))
    second = degradation.sample_params(x0, _generator(seed))
    assert isinstance(first, dict), (
        f"{_label(degradation)}: sample_params must return a dict of tensors (empty for a "
        f"deterministic degradation), got {type(first).__name__}"
    )
    for key, value in first.items():
        assert isinstance(value, Tensor), (
            f"{_label(degradation)}: params[{key!r}] must be a tensor, got {type(value).__name__}"
        )
        assert value.ndim >= 1 and value.shape[0] == x0.shape[0], (
            f"{_label(degradation)}: params[{key!r}] must have the batch ({x0.shape[0]}) as its "
            f"first dimension, got shape {tuple(value.shape)}"
        )
    assert first.keys() == second.keys() and all(
        torch.equal(first[key], second[key]) for key in first
    ), (
        f"{_label(degradation)}: two sample_params calls with generators of the same seed gave "
        "different params. Draw everything random from the `generator` argument."
    )
    declared = getattr(degradation, "random_params", None)  # plugin API 4; optional before
    assert declared is None or sorted(declared) == sorted(first), (
        f"{_label(degradation)}: random_params declares {sorted(declared or ())} but "
        f"sample_params draws {sorted(first)}. Declare exactly the keys sample_params returns "
        "(() for a deterministic degradation): coldkit reads the declaration instead of drawing."
    )


def check_deterministic(
    degradation: Degradation, images: Tensor | None = None, seed: int = 0, atol: float = 1e-6
) -> None:
    """The same params and levels give the same output (no hidden randomness in ``degrade``)."""
    x0 = _resolve_images(images)
    params = degradation.sample_params(x0, _generator(seed))
    t = _mixed_levels(degradation.steps, x0.shape[0], seed).to(x0.device)
    first = degradation.degrade(x0, t, params)
    second = degradation.degrade(x0, t, params)
    difference = _max_difference(first, second)
    assert difference <= atol, (
        f"{_label(degradation)}: two degrade calls with the same params gave outputs differing "
        f"by up to {difference:.3g}. Draw everything random in sample_params, not in degrade."
    )


def check_mixed_levels(
    degradation: Degradation, images: Tensor | None = None, seed: int = 0, atol: float = 1e-5
) -> None:
    """A batch with mixed ``t`` equals the same samples degraded one at a time (with the params
    of each sample sliced from the batch's params)."""
    x0 = _resolve_images(images)
    params = degradation.sample_params(x0, _generator(seed))
    t = _mixed_levels(degradation.steps, x0.shape[0], seed).to(x0.device)
    batched = degradation.degrade(x0, t, params)
    for index in range(x0.shape[0]):
        alone = degradation.degrade(
            x0[index : index + 1], t[index : index + 1], _slice_params(params, index)
        )
        difference = _max_difference(batched[index : index + 1], alone)
        assert difference <= atol, (
            f"{_label(degradation)}: sample {index} at t = {int(t[index])} in a batch with "
            f"levels {t.tolist()} differs by {difference:.3g} from the same sample degraded "
            "alone. Each sample must use its own t (and its own params), not e.g. t.max()."
        )


def check_preserves_tensor(
    degradation: Degradation,
    images: Tensor | None = None,
    seed: int = 0,
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
) -> None:
    """The output has the shape, dtype and device of ``x0`` (for each of ``dtypes``)."""
    base = _resolve_images(images)
    for dtype in dtypes:
        x0 = base.to(dtype)
        params = degradation.sample_params(x0, _generator(seed))
        t = _mixed_levels(degradation.steps, x0.shape[0], seed).to(x0.device)
        out = degradation.degrade(x0, t, params)
        assert isinstance(out, Tensor), f"{_label(degradation)}: degrade must return a tensor"
        assert out.shape == x0.shape, (
            f"{_label(degradation)}: output shape {tuple(out.shape)} != input shape "
            f"{tuple(x0.shape)}"
        )
        assert out.dtype == dtype, (
            f"{_label(degradation)}: {dtype} images came back as {out.dtype}; return x0's dtype"
        )
        assert out.device == x0.device, (
            f"{_label(degradation)}: images on {x0.device} came back on {out.device}"
        )


def check_finite(
    degradation: Degradation, images: Tensor | None = None, seed: int = 0, max_levels: int = 101
) -> None:
    """No NaN or inf at any level, and every value within :data:`DEGRADED_RANGE` (D may leave
    [0, 1], e.g. a blend reaching 1.41, but not by orders of magnitude); at most ``max_levels``
    levels, evenly spread, are tried."""
    x0 = _resolve_images(images)
    params = degradation.sample_params(x0, _generator(seed))
    low, high = DEGRADED_RANGE
    for level in _levels(degradation.steps, max_levels):
        out = degradation.degrade(x0, _full(level, x0), params)
        bad = int((~torch.isfinite(out)).sum())
        assert bad == 0, f"{_label(degradation)}: D(x0, {level}) has {bad} NaN or inf values"
        smallest, largest = float(out.min()), float(out.max())
        assert low <= smallest and largest <= high, (
            f"{_label(degradation)}: D(x0, {level}) of images in [0, 1] spans "
            f"[{smallest:.3g}, {largest:.3g}], outside the allowed [{low}, {high}] "
            "(coldkit.protocols.DEGRADED_RANGE): work in [0, 1], not [0, 255]"
        )


def check_grows_with_t(
    degradation: Degradation,
    images: Tensor | None = None,
    seed: int = 0,
    rtol: float = 0.01,
    expect_change: bool = True,
    max_levels: int = 101,
) -> list[float]:
    """On average ``D(x0, t)`` moves away from ``x0`` as ``t`` grows.

    The mean absolute distance ``d(t) = mean |D(x0, t) - x0|`` must be non-decreasing over the
    levels tried, up to ``rtol * d(T)``. With ``expect_change`` (the default) ``d(T)`` must also be
    positive, so a degradation that does nothing on the given images fails: pass images it acts on
    (e.g. colour images for a colour degradation), or ``expect_change=False`` if doing nothing on
    them is right. Returns the distances.
    """
    x0 = _resolve_images(images)
    params = degradation.sample_params(x0, _generator(seed))
    levels = _levels(degradation.steps, max_levels)
    distances = []
    for level in levels:
        out = degradation.degrade(x0, _full(level, x0), params)
        distances.append(float((out.double() - x0.double()).abs().mean()))
    if expect_change:
        assert distances[-1] > 1e-6, (
            f"{_label(degradation)}: D(x0, T) equals x0 on these images (mean distance "
            f"{distances[-1]:.3g}). If it should act on them, it does not; if doing nothing is "
            "right for these images (e.g. decolor on grey images), pass images it acts on or "
            "expect_change=False."
        )
    slack = rtol * distances[-1]
    for (low, d_low), (high, d_high) in zip(
        zip(levels, distances), zip(levels[1:], distances[1:])
    ):
        assert d_high >= d_low - slack, (
            f"{_label(degradation)}: mean |D(x0, t) - x0| falls from {d_low:.4g} at t = {low} to "
            f"{d_high:.4g} at t = {high}; it should not decrease as t grows "
            f"(tolerance {slack:.3g}). Distances: "
            + ", ".join(f"t={level}: {d:.3g}" for level, d in zip(levels, distances))
        )
    return distances


def measure_cost_ratio(
    degradation: Degradation,
    batch: int = 64,
    size: int = 32,
    channels: int = 3,
    repeats: int = 7,
    seed: int = 0,
    device: torch.device | str = "cpu",
    min_seconds: float = 2e-3,
) -> float:
    """Median over ``repeats`` interleaved measurements of ``time(D(x0, T)) / time(D(x0, 1))``.

    Both levels are timed in turn (alternating which goes first), each measurement repeating the
    call enough times to last ``min_seconds``; the params are drawn once, outside the timing.
    """
    x0 = make_test_images(batch, size, channels, seed, device=device)
    params = degradation.sample_params(x0, _generator(seed))
    t_one, t_last = _full(1, x0), _full(degradation.steps, x0)
    synchronize: Callable[[], None] = (
        torch.cuda.synchronize if x0.device.type == "cuda" else (lambda: None)
    )

    def timed(t: Tensor, calls: int) -> float:
        synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            degradation.degrade(x0, t, params)
        synchronize()
        return time.perf_counter() - start

    with torch.no_grad():
        for t in (t_one, t_last, t_one, t_last):  # warm-up: caches, allocator, kernels
            timed(t, 1)
        single = max(min(timed(t_one, 1), timed(t_last, 1)), 1e-7)
        calls = max(1, min(1000, int(min_seconds / single) + 1))
        ratios = []
        for repeat in range(repeats):
            if repeat % 2:
                last, one = timed(t_last, calls), timed(t_one, calls)
            else:
                one, last = timed(t_one, calls), timed(t_last, calls)
            ratios.append(last / max(one, 1e-9))
    return statistics.median(ratios)


def check_cost(
    degradation: Degradation,
    factor: float = 3.0,
    batch: int = 64,
    size: int = 32,
    channels: int = 3,
    repeats: int = 7,
    device: torch.device | str = "cpu",
) -> float:
    """``D(x0, T)`` costs at most ``factor`` times ``D(x0, 1)`` (batch 64, 32x32 by default).

    It enforces the contract's cost rule, "the cost does not grow with t" (a Python loop over
    ``t`` costs T-fold), and nothing else: a loop over the batch (a per-image codec) passes it,
    as the contract allows; that is advice about speed. Not a benchmark. Returns the measured
    median ratio.
    """
    ratio = measure_cost_ratio(degradation, batch, size, channels, repeats, device=device)
    assert ratio <= factor, (
        f"{_label(degradation)}: D(x0, T={degradation.steps}) takes {ratio:.2f}x the time of "
        f"D(x0, 1) (median of {repeats} interleaved repeats, batch {batch}, {size}x{size}); "
        f"at most {factor}x is allowed. Compose the t steps in closed form or precompute a "
        "table instead of looping over t."
    )
    return ratio


def check_degradation(
    degradation: Degradation,
    images: Tensor | None = None,
    *,
    seed: int = 0,
    expect_change: bool = True,
    check_speed: bool = True,
    cost_factor: float = 3.0,
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    atol: float = 1e-5,
    params: DegradationParams | None = None,
) -> ContractReport:
    """Run every contract check on ``degradation``; raise :class:`AssertionError` on the first
    failure.

    ``images`` (default: :func:`make_test_images`, 8 colour images of 16x16) are the ``x0`` of the
    checks; the cost check uses its own batch of 64 images of 32x32 with as many channels.
    ``expect_change=False`` accepts a degradation that leaves ``images`` unchanged at ``t = T``;
    ``check_speed=False`` skips the timing (e.g. on a busy machine). ``params`` are parameters
    for ``images`` that come from the data (``paired``: ``{"y": twins}``), used in place of
    ``sample_params`` by every check (see :class:`~coldkit.testing._common.WithParams`).
    """
    x0 = _resolve_images(images)
    if params is not None:
        degradation = WithParams(degradation, params)  # type: ignore[assignment]
    report = ContractReport(name=str(getattr(degradation, "name", type(degradation).__name__)))
    checks: list[tuple[str, Callable[[], object]]] = [
        ("interface", lambda: check_interface(degradation)),
        ("params", lambda: check_params(degradation, x0, seed)),
        ("identity at t = 0", lambda: check_identity_at_zero(degradation, x0, seed)),
        ("deterministic", lambda: check_deterministic(degradation, x0, seed)),
        ("mixed levels", lambda: check_mixed_levels(degradation, x0, seed, atol)),
        ("shape, dtype, device", lambda: check_preserves_tensor(degradation, x0, seed, dtypes)),
        ("finite, in range", lambda: check_finite(degradation, x0, seed)),
        (
            "grows with t",
            lambda: check_grows_with_t(degradation, x0, seed, expect_change=expect_change),
        ),
    ]
    for name, check in checks:
        check()
        report.passed.append(name)
    if check_speed:
        report.cost_ratio = check_cost(
            degradation, cost_factor, channels=x0.shape[1], device=x0.device
        )
        report.passed.append("cost")
    return report

