"""Contract checks for every kind of plugin: run them on your own plugin (like scikit-learn's
``check_estimator``).

One line per kind -- :func:`check_degradation`, :func:`check_restorer`, :func:`check_sampler`,
:func:`check_dataset`, :func:`check_prior` -- or one for a whole installed distribution::

    from coldkit.testing import check_plugin

    def test_my_plugins():
        check_plugin("my-dist")

The degradation checks in detail::

    from coldkit.testing import check_degradation

    def test_my_degradation_follows_the_contract():
        check_degradation(MyDegradation(MyDegradation.Params()))

:func:`check_degradation` runs every check below and returns a :class:`ContractReport`; each check
is also a function of its own. A failed check raises :class:`AssertionError` with a message that
says what is wrong and how it was found. The checks:

* :func:`check_interface` -- the protocol's attributes are there (``name``, ``steps`` ...);
* :func:`check_identity_at_zero` -- ``D(x0, 0) == x0`` exactly;
* :func:`check_params` -- ``sample_params`` returns batch-first tensors, the same for the same seed;
* :func:`check_deterministic` -- the same params give the same output;
* :func:`check_mixed_levels` -- a batch with mixed ``t`` equals its samples degraded one at a time;
* :func:`check_preserves_tensor` -- shape, dtype and device of ``x0`` are kept;
* :func:`check_finite` -- no NaN or inf at any level;
* :func:`check_grows_with_t` -- on average ``D(x0, t)`` moves away from ``x0`` as ``t`` grows;
* :func:`check_cost` -- ``D(x0, T)`` costs at most a few times ``D(x0, 1)`` (no loop over ``t``).

By default the checks use small seeded colour images from :func:`make_test_images` (3 channels,
so a degradation that only touches colour is seen to act).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from coldkit.protocols import Degradation, DegradationParams, ImageSet, RestorerContext

__all__ = [
    "DEFAULT_RESTORER_CONTEXT",
    "ContractReport",
    "PluginReport",
    "builtin_degradations",
    "check_cost",
    "check_dataset",
    "check_degradation",
    "check_deterministic",
    "check_finite",
    "check_grows_with_t",
    "check_identity_at_zero",
    "check_interface",
    "check_mixed_levels",
    "check_params",
    "check_plugin",
    "check_prior",
    "check_preserves_tensor",
    "check_restorer",
    "check_sampler",
    "make_test_images",
    "measure_cost_ratio",
]


@dataclass
class ContractReport:
    """What :func:`check_degradation` checked, and the measured cost ratio (if measured)."""

    name: str
    passed: list[str] = field(default_factory=list)
    cost_ratio: float | None = None


def make_test_images(
    count: int = 8,
    size: int = 16,
    channels: int = 3,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Seeded colour test images ``(count, channels, size, size)`` in [0, 1].

    Smooth random colour fields plus a bright square and a dark stripe, so they have colour,
    edges and flat parts for every kind of degradation to act on.
    """
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, channels, 4, 4, generator=generator)
    images = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    grid = torch.arange(size)
    top = torch.randint(0, max(1, size // 2), (count, 1, 1, 1), generator=generator)
    left = torch.randint(0, max(1, size // 2), (count, 1, 1, 1), generator=generator)
    ys, xs = grid.view(1, 1, -1, 1), grid.view(1, 1, 1, -1)
    square = (ys >= top) & (ys < top + size // 3) & (xs >= left) & (xs < left + size // 3)
    stripe = (xs - left).abs() <= max(1, size // 16)
    images = torch.where(square, 0.9 * torch.ones_like(images), images)
    images = torch.where(stripe & ~square, 0.1 * torch.ones_like(images), images)
    return images.clamp(0, 1).to(device=device, dtype=dtype)


# ----------------------------------------------------------------------------------- helpers
def _generator(seed: int) -> torch.Generator:
    # The engine draws params with one CPU generator whatever the device: do the same.
    return torch.Generator().manual_seed(seed)


def _label(degradation: Degradation) -> str:
    return f"degradation {getattr(degradation, 'name', type(degradation).__name__)!r}"


def _levels(steps: int, count: int) -> list[int]:
    """At most ``count`` levels evenly spread over ``0 .. steps``, always with 0 and ``steps``."""
    if steps + 1 <= count:
        return list(range(steps + 1))
    return sorted({round(i * steps / (count - 1)) for i in range(count)})


def _mixed_levels(steps: int, batch: int, seed: int) -> Tensor:
    """Levels spread over ``0 .. steps`` (both ends included when ``batch >= 2``), shuffled."""
    if batch == 1:
        return torch.tensor([steps])
    spread = torch.tensor([round(i * steps / (batch - 1)) for i in range(batch)])
    return spread[torch.randperm(batch, generator=_generator(seed))]


def _full(level: int, images: Tensor) -> Tensor:
    return torch.full((images.shape[0],), level, dtype=torch.long, device=images.device)


def _slice_params(params: DegradationParams, index: int) -> DegradationParams:
    return {key: value[index : index + 1] for key, value in params.items()}


def _max_difference(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def _resolve_images(images: Tensor | None) -> Tensor:
    return make_test_images() if images is None else images


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
    """``sample_params`` returns a dict of tensors whose first dimension is the batch, and the
    same generator seed gives the same params."""
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
    """No NaN or inf at any level (at most ``max_levels`` levels, evenly spread, are tried)."""
    x0 = _resolve_images(images)
    params = degradation.sample_params(x0, _generator(seed))
    for level in _levels(degradation.steps, max_levels):
        out = degradation.degrade(x0, _full(level, x0), params)
        bad = int((~torch.isfinite(out)).sum())
        assert bad == 0, f"{_label(degradation)}: D(x0, {level}) has {bad} NaN or inf values"


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

    A guard against a Python loop over ``t`` (whose cost grows T-fold), not a benchmark. Returns
    the measured median ratio.
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
) -> ContractReport:
    """Run every contract check on ``degradation``; raise :class:`AssertionError` on the first
    failure.

    ``images`` (default: :func:`make_test_images`, 8 colour images of 16x16) are the ``x0`` of the
    checks; the cost check uses its own batch of 64 images of 32x32 with as many channels.
    ``expect_change=False`` accepts a degradation that leaves ``images`` unchanged at ``t = T``;
    ``check_speed=False`` skips the timing (e.g. on a busy machine).
    """
    x0 = _resolve_images(images)
    report = ContractReport(name=str(getattr(degradation, "name", type(degradation).__name__)))
    checks: list[tuple[str, Callable[[], object]]] = [
        ("interface", lambda: check_interface(degradation)),
        ("params", lambda: check_params(degradation, x0, seed)),
        ("identity at t = 0", lambda: check_identity_at_zero(degradation, x0, seed)),
        ("deterministic", lambda: check_deterministic(degradation, x0, seed)),
        ("mixed levels", lambda: check_mixed_levels(degradation, x0, seed, atol)),
        ("shape, dtype, device", lambda: check_preserves_tensor(degradation, x0, seed, dtypes)),
        ("finite", lambda: check_finite(degradation, x0, seed)),
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


# ------------------------------------------------------------------------------------- priors
def check_prior(prior_factory: Callable[[], object], x_T: Tensor | None = None, seed: int = 0) -> list[str]:
    """Run the prior contract on fresh priors from ``prior_factory`` (e.g. ``lambda: Gmm()``).

    ``x_T`` (default: blurred :func:`make_test_images`, 64 images) is what the prior is fitted on.
    Checks: the protocol's attributes; ``sample`` returns ``(count, C, H, W)`` float32 finite
    images shaped like ``x_T``; the same seed gives the same draws and another seed other draws;
    ``state_dict`` holds tensors only, survives ``torch.save`` / ``torch.load(weights_only=True)``
    and a fresh prior loaded from it draws exactly what the fitted one draws. Returns the names of
    the checks passed; raises :class:`AssertionError` naming the first failure.
    """
    import io

    from coldkit.protocols import Prior

    if x_T is None:
        x_T = F.avg_pool2d(make_test_images(64, 16, 3, seed), 5, stride=1, padding=2)
    prior = prior_factory()
    label = str(getattr(prior, "name", type(prior).__name__))
    passed = []
    missing = [a for a in ("name", "description", "fit", "sample", "state_dict", "load_state_dict")
               if not hasattr(prior, a)]
    assert not missing and isinstance(prior, Prior), f"prior {label}: lacks {', '.join(missing)}"
    passed.append("interface")

    prior.fit(x_T, seed=seed)
    draws = prior.sample(5, _generator(seed))
    assert isinstance(draws, Tensor) and draws.shape == (5, *x_T.shape[1:]), (
        f"prior {label}: sample(5) gave shape {tuple(getattr(draws, 'shape', ()))}, "
        f"expected {(5, *x_T.shape[1:])}"
    )
    assert draws.dtype == torch.float32, f"prior {label}: samples are {draws.dtype}, not float32"
    assert bool(torch.isfinite(draws).all()), f"prior {label}: samples hold NaN or inf"
    passed.append("sample shape, dtype, finite")

    again = prior.sample(5, _generator(seed))
    assert torch.equal(draws, again), f"prior {label}: the same seed gave different draws"
    other = prior.sample(5, _generator(seed + 1))
    assert not torch.equal(draws, other), f"prior {label}: another seed gave the same draws"
    passed.append("seeded")

    state = prior.state_dict()
    bad = [key for key, value in state.items() if not isinstance(value, Tensor)]
    assert not bad, f"prior {label}: state_dict entries {bad} are not tensors"
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded_state = torch.load(buffer, weights_only=True)
    fresh = prior_factory()
    fresh.load_state_dict(loaded_state)
    reloaded = fresh.sample(5, _generator(seed))
    assert torch.equal(draws, reloaded), (
        f"prior {label}: a prior loaded from state_dict draws differently from the fitted one"
    )
    passed.append("state_dict round trip")
    return passed


# ======================================================================= the other kinds
# Restorers, samplers and datasets have contract checks of their own, and check_plugin runs the
# right check on everything one installed distribution registers. Each check returns the names of
# the checks passed and raises AssertionError naming the first failure.

#: The context :func:`check_restorer` and :func:`check_plugin` build restorers for by default.
DEFAULT_RESTORER_CONTEXT = RestorerContext(channels=3, image_size=16, steps=10)


def _named(component: object, kind: str) -> str:
    name = getattr(component, "name", None)
    if not isinstance(name, str):
        name = getattr(component, "__name__", None) or type(component).__name__
    return f"{kind} {name!r}"


# --------------------------------------------------------------------------------- restorers
def check_restorer(
    factory_or_module: object,
    context: RestorerContext | None = None,
    *,
    seed: int = 0,
    batch: int = 4,
    atol: float = 1e-5,
) -> list[str]:
    """Run the restorer contract on a restorer ``R(x_t, t) ≈ x0``.

    ``factory_or_module`` is a ``torch.nn.Module`` (it is copied, never changed) or a function
    that builds one from a :class:`coldkit.protocols.RestorerContext`, e.g.
    ``lambda context: MyNet(MyNet.Params(), context)``. ``context`` defaults to
    :data:`DEFAULT_RESTORER_CONTEXT` (3 channels, 16x16 images, T = 10); the inputs are ``batch``
    images of that shape with levels spread over ``0 .. T``.

    Checks, in order:

    * interface -- a ``torch.nn.Module`` with at least one trainable parameter;
    * shape, dtype, finite -- ``R(x_t, t)`` has the shape and dtype of ``x_t``, no NaN or inf;
    * deterministic in eval mode -- two calls give the same output;
    * mixed levels -- in a batch with mixed ``t``, each sample's output equals its output alone
      (each sample uses its own ``t``; samples do not mix);
    * gradients -- after ``loss.backward()`` every parameter with ``requires_grad`` has a finite
      gradient (``None`` means the forward pass never uses it), and at least one is non-zero;
    * time conditioning -- the same ``x`` at ``t = 1`` and ``t = T`` gives different outputs. A
      network that starts as the identity (a zero-initialised output layer, like the built-in
      ``unet`` with ``residual = true``) ignores ``t`` until it is trained, so if the output does
      not depend on ``t``, every all-zero parameter (of the checked copy) is set to small seeded values
      and the check is repeated; only a network that still ignores ``t`` then fails.
    """
    import copy

    from torch import nn

    context = DEFAULT_RESTORER_CONTEXT if context is None else context
    if isinstance(factory_or_module, nn.Module):
        module = copy.deepcopy(factory_or_module)
    else:
        assert callable(factory_or_module), (
            "check_restorer takes a torch.nn.Module or a function context -> module, got "
            f"{type(factory_or_module).__name__}"
        )
        module = factory_or_module(context)
    label = _named(module, "restorer")
    passed: list[str] = []

    assert isinstance(module, nn.Module), (
        f"{label}: a restorer must be a torch.nn.Module (coldkit trains its parameters, keeps an "
        f"EMA copy and saves its state_dict), got {type(module).__name__}"
    )
    trainable = [name for name, p in module.named_parameters() if p.requires_grad]
    assert trainable, f"{label}: has no trainable parameters, so there is nothing to train"
    passed.append("interface")

    x = make_test_images(batch, context.image_size, context.channels, seed)
    t = _mixed_levels(context.steps, batch, seed)
    module.eval()
    with torch.no_grad():
        out = module(x, t)
        assert isinstance(out, Tensor), (
            f"{label}: R(x_t, t) must return a tensor, got {type(out).__name__}"
        )
        assert out.shape == x.shape, (
            f"{label}: output shape {tuple(out.shape)} != input shape {tuple(x.shape)} "
            f"(context: {context}); R(x_t, t) estimates x0, an image like x_t"
        )
        assert out.dtype == x.dtype, (
            f"{label}: {x.dtype} input came back as {out.dtype}; return the input's dtype"
        )
        bad = int((~torch.isfinite(out)).sum())
        assert bad == 0, f"{label}: R(x_t, t) has {bad} NaN or inf values"
        passed.append("shape, dtype, finite")

        again = module(x, t)
        difference = _max_difference(out, again)
        assert difference <= atol, (
            f"{label}: in eval mode two calls on the same input differ by up to {difference:.3g}; "
            "a restorer must be deterministic in eval mode (no sampling, dropout only in training)"
        )
        passed.append("deterministic in eval mode")

        for index in range(batch):
            alone = module(x[index : index + 1], t[index : index + 1])
            difference = _max_difference(out[index : index + 1], alone)
            assert difference <= atol * 10, (
                f"{label}: sample {index} at t = {int(t[index])} in a batch with levels "
                f"{t.tolist()} differs by {difference:.3g} from the same sample restored alone. "
                "Each sample must use its own t (not e.g. t[0] or t.max()), and samples must not "
                "mix in eval mode."
            )
        passed.append("mixed levels")

    module.train()
    module.zero_grad(set_to_none=True)
    target = make_test_images(batch, context.image_size, context.channels, seed + 1)
    loss = (module(x, t) - target).square().mean()
    assert bool(torch.isfinite(loss)), f"{label}: the training loss is {float(loss)}"
    loss.backward()
    parameters = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    missing = [name for name, p in parameters if p.grad is None]
    assert not missing, (
        f"{label}: no gradient reaches {len(missing)} parameter(s): "
        f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}. The forward pass never "
        "uses them: remove them, or set requires_grad=False if they are fixed."
    )
    bad_grads = [name for name, p in parameters if not bool(torch.isfinite(p.grad).all())]
    assert not bad_grads, (
        f"{label}: the gradients of {', '.join(bad_grads[:5])} hold NaN or inf (e.g. sqrt or log "
        "at 0, division by zero)"
    )
    assert any(bool(p.grad.abs().sum() > 0) for _, p in parameters), (
        f"{label}: every gradient is zero, so training cannot change the network"
    )
    module.zero_grad(set_to_none=True)
    passed.append("gradients reach every parameter")

    low = 1 if context.steps > 1 else 0
    t_low = torch.full((batch,), low, dtype=torch.long)
    t_high = torch.full((batch,), context.steps, dtype=torch.long)

    def time_effect(network) -> float:
        network.eval()
        with torch.no_grad():
            return _max_difference(network(x, t_low), network(x, t_high))

    effect = time_effect(module)
    perturbed: list[str] = []
    if effect == 0.0:
        generator = _generator(seed)
        with torch.no_grad():
            for name, p in module.named_parameters():
                if p.numel() and not bool(p.any()):
                    noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
                    p.copy_(0.02 * noise.to(p))
                    perturbed.append(name)
        if perturbed:
            effect = time_effect(module)
    assert effect > 0.0, (
        f"{label}: the output does not depend on t: the same images at t = {low} and "
        f"t = {context.steps} give the same output"
        + (
            f", even after giving its all-zero parameters ({', '.join(perturbed[:5])}) random "
            "values"
            if perturbed
            else ""
        )
        + ". A restorer must be conditioned on the level t (e.g. a time embedding)."
    )
    passed.append("time conditioning")
    return passed


# ---------------------------------------------------------------------------------- samplers
class _OracleRestorer(torch.nn.Module):
    """A perfect restorer: returns the true ``x0`` whatever it is given (and checks its input)."""

    def __init__(self, x0: Tensor, steps: int, label: str) -> None:
        super().__init__()
        self.x0, self.steps, self.label = x0, steps, label
        self.calls = 0

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        assert isinstance(x_t, Tensor) and x_t.shape == self.x0.shape, (
            f"{self.label}: called the restorer with images of shape "
            f"{tuple(getattr(x_t, 'shape', ()))}, not the batch's {tuple(self.x0.shape)}; the "
            "oracle check needs the restorer called on the whole batch"
        )
        assert isinstance(t, Tensor) and t.shape == (self.x0.shape[0],), (
            f"{self.label}: called the restorer with t of shape "
            f"{tuple(getattr(t, 'shape', ()))}; pass one level per sample, shape (B,)"
        )
        assert not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool, (
            f"{self.label}: called the restorer with t of dtype {t.dtype}; levels are integers"
        )
        assert int(t.min()) >= 0 and int(t.max()) <= self.steps, (
            f"{self.label}: called the restorer with levels {t.tolist()} outside 0..{self.steps}"
        )
        return self.x0.clone()


class _SpyDegradation:
    """Delegates to a degradation and records the params of every ``degrade`` call."""

    def __init__(self, inner: Degradation) -> None:
        self._inner = inner
        self.name = inner.name
        self.description = inner.description
        self.steps = inner.steps
        self.received: list[DegradationParams | None] = []
        self.draws = 0

    def sample_params(self, x0: Tensor, generator: torch.Generator | None = None):
        self.draws += 1
        return self._inner.sample_params(x0, generator)

    def degrade(self, x0: Tensor, t: Tensor, params: DegradationParams | None = None) -> Tensor:
        self.received.append(params)
        return self._inner.degrade(x0, t, params)

    def __getattr__(self, attribute: str):
        return getattr(self._inner, attribute)


def _same_params(a: DegradationParams | None, b: DegradationParams) -> bool:
    if a is b:
        return True
    if not isinstance(a, dict) or a.keys() != b.keys():
        return False
    return all(
        isinstance(a[key], Tensor)
        and a[key].shape == b[key].shape
        and torch.equal(a[key].detach().cpu(), b[key].detach().cpu())
        for key in b
    )


def builtin_degradations() -> list[Degradation]:
    """Every degradation of the built-in distribution (``coldkit``), with its default parameters,
    found through :meth:`coldkit.plugins.Registry.discover`."""
    from coldkit.plugins import BUILTIN_DISTRIBUTION, Registry

    registry = Registry.discover()
    return [
        record.component(record.params_model())
        for name, record in sorted(registry.records["degradation"].items())
        if record.distribution == BUILTIN_DISTRIBUTION
    ]


def check_sampler(
    sampler: Callable[..., Tensor],
    degradations: Sequence[Degradation] | None = None,
    *,
    images: Tensor | None = None,
    seed: int = 0,
    atol: float = 1e-4,
    kwargs: dict | None = None,
    name: str | None = None,
) -> list[str]:
    """Run the sampler contract on ``sampler(restorer, degradation, x_t, t, params)``.

    With an oracle restorer (one that returns the true ``x0``), the sampler must give back ``x0``
    (to ``atol``) for every degradation in ``degradations`` (default: every built-in one, with its
    default parameters, see :func:`builtin_degradations`), from ``x_t = D(x0, t)`` with every
    sample at ``T`` and with mixed starting levels that include 0 and ``T``. Also checked on each
    run: the restorer is called on the whole batch with integer levels ``(B,)`` in ``0 .. T``;
    every ``degrade`` call gets the params the sampler was given (the same object, or equal
    tensors) and ``sample_params`` is never called (Algorithm 2 is exact only when the random draw
    is reused); ``x_t`` and the params are not changed in place; the result has the shape and
    dtype of ``x_t``.

    ``images`` default to 6 colour images of 16x16 (:func:`make_test_images`). ``kwargs`` are
    extra keyword arguments for every sampler call. By default a sampler with a ``noise``
    parameter (coldkit's convention for per-step noise: ``generate.step_noise`` is passed to it)
    is called with ``noise=0.0``, so that it can be exact; pass ``kwargs`` to choose otherwise.
    ``name`` is the sampler's registered name, for the messages (default: the function's name).
    """
    import inspect

    assert callable(sampler), f"a sampler must be a function, got {type(sampler).__name__}"
    label = f"sampler {name!r}" if name else _named(sampler, "sampler")
    passed = ["interface"]
    if degradations is None:
        degradations = builtin_degradations()
    x0 = make_test_images(count=6, seed=seed + 1) if images is None else images
    if kwargs is None:
        try:
            takes_noise = "noise" in inspect.signature(sampler).parameters
        except (TypeError, ValueError):  # a callable without a signature
            takes_noise = False
        kwargs = {"noise": 0.0} if takes_noise else {}
        if takes_noise:
            passed.append("called with noise=0.0")
    extra = dict(kwargs)
    for degradation in degradations:
        steps = degradation.steps
        where = f"{label} with {_label(degradation)} (T = {steps})"
        params = degradation.sample_params(x0, _generator(seed))
        snapshot = {key: value.clone() for key, value in params.items()}
        for t in (_full(steps, x0), _mixed_levels(steps, x0.shape[0], seed).to(x0.device)):
            spy = _SpyDegradation(degradation)
            x_t = degradation.degrade(x0, t, params)
            x_t_before = x_t.clone()
            oracle = _OracleRestorer(x0, steps, where)
            restored = sampler(oracle, spy, x_t, t, params, **extra)
            levels = f"starting levels t = {t.tolist()}"
            assert isinstance(restored, Tensor), (
                f"{where}: returned {type(restored).__name__}, not a tensor"
            )
            assert restored.shape == x0.shape and restored.dtype == x0.dtype, (
                f"{where}: returned shape {tuple(restored.shape)} {restored.dtype} for x_t of "
                f"shape {tuple(x0.shape)} {x0.dtype}"
            )
            assert torch.equal(x_t, x_t_before), (
                f"{where}: changed x_t in place; work on a copy"
            )
            assert spy.draws == 0, (
                f"{where}: called degradation.sample_params {spy.draws} time(s). The params "
                "passed in must be reused at every step; a new draw makes Algorithm 2 inexact."
            )
            for call, received in enumerate(spy.received):
                assert received is not None, (
                    f"{where}: degrade call {call} got params=None; pass the params the sampler "
                    "was given to every degrade call"
                )
                assert _same_params(received, params), (
                    f"{where}: degrade call {call} got other params than the sampler was given "
                    f"(keys {sorted(received) if isinstance(received, dict) else received!r}); "
                    "reuse the same params at every step"
                )
            assert _same_params(params, snapshot), (
                f"{where}: changed the params in place"
            )
            errors = (restored.double() - x0.double()).abs().flatten(1).amax(dim=1)
            worst = int(errors.argmax())
            error = float(errors[worst])
            assert error <= atol, (
                f"{where}, {levels}: with an oracle restorer that returns the true x0 the sampler "
                f"returned images that differ from x0 by up to {error:.3g} (allowed {atol:g}; "
                f"worst: sample {worst}, starting at t = {int(t[worst])}). Check the loop runs "
                "from each sample's own t down to 0 and leaves samples at t = 0 unchanged."
                + (
                    f" (called with {extra})" if extra else ""
                )
            )
        passed.append(f"x0 from an oracle restorer: {degradation.name}")
    passed.append("params reused at every step")
    return passed


# ---------------------------------------------------------------------------------- datasets
SPLIT_NAMES = ("train", "val", "test")


def _content_hashes(images: Tensor) -> list[bytes]:
    import hashlib

    rows = images.detach().cpu().contiguous().flatten(1).numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]


def check_dataset(dataset: object, *, max_shared: int = 0) -> list[str]:
    """Run the dataset contract on a dataset (``load(split)`` for ``train``, ``val``, ``test``).

    Checks: ``name`` and ``description`` strings and a ``load`` method; each split is an
    :class:`coldkit.protocols.ImageSet` whose images are a float tensor ``(N, C, H, W)`` with
    values in [0, 1], with a ``source`` string; ``train`` is not empty (``val`` and ``test`` may
    be, e.g. a dataset with ``val_fraction = 0``); every split has the same number of channels;
    labels, where given, are an integer ``(N,)`` tensor aligned with the images, with no negative
    class; the splits are disjoint: no image content (hashed bit for bit) appears in two splits,
    or at most ``max_shared`` for data with exact duplicates across its official splits.
    """
    label = _named(dataset, "dataset")
    missing = [a for a in ("name", "description", "load") if not hasattr(dataset, a)]
    assert not missing, f"{label}: lacks {', '.join(missing)} (see coldkit.protocols.Dataset)"
    assert isinstance(dataset.name, str) and dataset.name, f"{label}: name must be a non-empty str"
    assert isinstance(dataset.description, str), f"{label}: description must be a str"
    passed = ["interface"]

    splits: dict[str, ImageSet] = {}
    for split in SPLIT_NAMES:
        loaded = dataset.load(split)
        assert isinstance(loaded, ImageSet), (
            f"{label}: load({split!r}) returned {type(loaded).__name__}, not a "
            "coldkit.ImageSet(images, source, labels)"
        )
        images = loaded.images
        assert isinstance(images, Tensor), (
            f"{label}: the {split} images are a {type(images).__name__}, not a torch.Tensor"
        )
        assert images.ndim == 4, (
            f"{label}: the {split} images have shape {tuple(images.shape)}; images are "
            "(N, C, H, W), e.g. (N, 1, 28, 28) for grey images"
        )
        assert images.is_floating_point(), (
            f"{label}: the {split} images are {images.dtype}; return floats in [0, 1] "
            "(e.g. uint8 / 255)"
        )
        if len(images):
            low, high = float(images.min()), float(images.max())
            assert bool(torch.isfinite(images).all()), f"{label}: the {split} images hold NaN or inf"
            assert 0.0 <= low and high <= 1.0, (
                f"{label}: the {split} images range over [{low:.4g}, {high:.4g}]; values must lie "
                "in [0, 1] (divide 8-bit images by 255)"
            )
        assert isinstance(loaded.source, str) and loaded.source, (
            f"{label}: the {split} split needs a source string (where the images came from)"
        )
        labels = loaded.labels
        if labels is not None:
            assert isinstance(labels, Tensor), (
                f"{label}: the {split} labels are a {type(labels).__name__}, not a torch.Tensor"
            )
            assert labels.shape == (len(images),), (
                f"{label}: the {split} labels have shape {tuple(labels.shape)} for "
                f"{len(images)} images; labels are (N,), one per image, in the images' order"
            )
            assert not (labels.is_floating_point() or labels.is_complex()) and labels.dtype != torch.bool, (
                f"{label}: the {split} labels are {labels.dtype}; class labels are integers "
                "(e.g. torch.long)"
            )
            assert len(labels) == 0 or int(labels.min()) >= 0, (
                f"{label}: the {split} labels include {int(labels.min())}; classes are 0, 1, ..."
            )
        splits[split] = loaded
    assert len(splits["train"].images) > 0, f"{label}: the train split is empty"
    passed.append("splits: float (N, C, H, W) in [0, 1]")
    channels = {split: s.images.shape[1] for split, s in splits.items() if len(s.images)}
    assert len(set(channels.values())) == 1, (
        f"{label}: the splits have different numbers of channels: {channels}"
    )
    if any(s.labels is not None for s in splits.values()):
        passed.append("labels aligned, integer")

    hashes = {split: set(_content_hashes(s.images)) for split, s in splits.items()}
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = len(hashes[first] & hashes[second])
        assert shared <= max_shared, (
            f"{label}: {shared} image(s) appear in both the {first} and the {second} split "
            f"({len(splits[first].images)} and {len(splits[second].images)} images); the splits "
            "must be disjoint (split one seeded permutation of the indices)"
        )
    passed.append("splits disjoint")
    if callable(getattr(dataset, "stream", None)):
        passed.append(_check_stream(dataset, label, splits["train"]))
    return passed


def _check_stream(dataset: object, label: str, loaded: ImageSet, size: int = 16) -> str:
    """A dataset that can stream: ``stream("train", size)`` serves the train split as uint8."""
    from coldkit.streaming import ImageStream

    stream = dataset.stream("train", size)  # type: ignore[attr-defined]
    assert isinstance(stream, ImageStream), (
        f"{label}: stream('train', {size}) returned {type(stream).__name__}, not a "
        "coldkit.streaming.ImageStream"
    )
    assert len(stream) == len(loaded.images), (
        f"{label}: stream('train') holds {len(stream)} images but load('train') {len(loaded.images)}"
        "; both must serve the same split"
    )
    first = stream[0]
    expected = (loaded.images.shape[1], size, size)
    assert isinstance(first, Tensor) and first.dtype == torch.uint8, (
        f"{label}: a streamed image must be a uint8 tensor, not "
        f"{getattr(first, 'dtype', type(first).__name__)}"
    )
    assert tuple(first.shape) == expected, (
        f"{label}: a streamed image has shape {tuple(first.shape)}, expected {expected} "
        "(channels, image_size, image_size)"
    )
    assert stream.channels == expected[0] and isinstance(stream.source, str), (
        f"{label}: the stream's channels ({stream.channels}) must match the images' and its "
        "source must be a str"
    )
    return "stream: uint8 (C, S, S), the same split as load"


# ----------------------------------------------------------------------------------- plugins
@dataclass
class PluginReport:
    """What :func:`check_plugin` checked for one distribution.

    ``checked`` maps ``"kind name"`` (e.g. ``"degradation swirl"``) to the checks it passed;
    ``skipped`` maps ``"kind name"`` to why it was not checked.
    """

    distribution: str
    version: str | None
    checked: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"{self.distribution} {self.version or ''}".rstrip()]
        lines += [f"  ok       {key}: {', '.join(passed)}" for key, passed in self.checked.items()]
        lines += [f"  skipped  {key}: {why}" for key, why in self.skipped.items()]
        return "\n".join(lines)


def _normalise(distribution: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", distribution).lower()


def check_plugin(
    distribution: str,
    *,
    params: dict[str, dict] | None = None,
    sampler_kwargs: dict[str, dict] | None = None,
    skip: Sequence[str] = (),
    context: RestorerContext | None = None,
    check_speed: bool = True,
    cost_factor: float = 3.0,
) -> PluginReport:
    """Run the right contract check on everything the installed ``distribution`` registers.

    One line in a plugin's test suite: ``def test_my_plugins(): check_plugin("my-dist")``.

    Components are found through :meth:`coldkit.plugins.Registry.discover` (records whose
    ``distribution`` is this one; names compared as pip does, so ``my_dist`` finds ``my-dist``)
    and built from their parameter model's defaults:

    * degradation: :func:`check_degradation` on ``component(Params())``;
    * restorer: :func:`check_restorer` on ``component(Params(), context)`` (``context`` defaults
      to :data:`DEFAULT_RESTORER_CONTEXT`);
    * sampler: :func:`check_sampler` over the built-in degradations and the distribution's own;
    * dataset: :func:`check_dataset` on ``component(Params())``;
    * prior: :func:`check_prior` on ``component(Params())``.

    ``params`` maps a component's name (or ``"kind:name"`` where a name is used by two kinds) to
    parameters used instead of the defaults; a component whose parameter model has required
    fields and no entry there is skipped, and so is a dataset whose ``load`` raises
    :class:`coldkit.errors.ColdkitError` (its data is not available here). ``sampler_kwargs``
    maps a sampler's name to keyword arguments for its calls (e.g. ``{"noise": 0.0}``); ``skip``
    lists names (or ``"kind:name"``) not to check. ``check_speed`` and ``cost_factor`` go to
    :func:`check_degradation`.

    Raises :class:`AssertionError` if the distribution is not installed, registers nothing, had a
    plugin that failed to load or a name that was refused (e.g. already taken by another
    package), if no component could be checked, or on the first component that breaks its
    contract (the message names it). Returns a :class:`PluginReport`.
    """
    import importlib.metadata as metadata

    from pydantic import ValidationError

    from coldkit.errors import ColdkitError
    from coldkit.plugins import ENTRY_POINT_GROUP, KINDS, Registry

    wanted = _normalise(distribution)
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise AssertionError(
            f"distribution {distribution!r} is not installed in this environment "
            "(pip install -e . in the plugin's folder, then run the tests)"
        ) from None
    entry_points = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    assert entry_points, (
        f"distribution {distribution!r} declares no entry point in group {ENTRY_POINT_GROUP!r}; "
        f"add [project.entry-points.{ENTRY_POINT_GROUP}] to its pyproject.toml and reinstall it"
    )
    registry = Registry.discover()
    labels = {ep.name for ep in entry_points} | {
        f"{ep.name} ({dist.metadata['Name']})" for ep in entry_points
    }
    problems = [f"{p.plugin}: {p.message}" for p in registry.problems if p.plugin in labels]
    assert not problems, (
        f"distribution {distribution!r}: plugin problems: " + "; ".join(problems)
    )
    records = [
        record
        for kind in KINDS
        for record in registry.records[kind].values()
        if record.distribution is not None and _normalise(record.distribution) == wanted
    ]
    assert records, (
        f"distribution {distribution!r} registers nothing: its entry points "
        f"({', '.join(ep.name for ep in entry_points)}) implement no coldkit hook that registers "
        "a component (see coldkit.hookspecs)"
    )
    report = PluginReport(distribution=dist.metadata["Name"], version=dist.version)
    params = params or {}
    sampler_kwargs = sampler_kwargs or {}
    restorer_context = DEFAULT_RESTORER_CONTEXT if context is None else context
    own_degradations: list[Degradation] = []
    deferred_samplers = []

    def lookup(mapping, record):
        return mapping.get(f"{record.kind}:{record.name}", mapping.get(record.name))

    for record in sorted(records, key=lambda r: (KINDS.index(r.kind), r.name)):
        key = f"{record.kind} {record.name}"
        if f"{record.kind}:{record.name}" in skip or record.name in skip:
            report.skipped[key] = "skipped as asked"
            continue
        if record.kind == "sampler":
            deferred_samplers.append(record)  # after the degradations: samplers use them too
            continue
        try:
            validated = record.params_model.model_validate(lookup(params, record) or {})
        except ValidationError as exc:
            required = [
                str(error["loc"][0]) for error in exc.errors() if error["type"] == "missing"
            ]
            assert required and lookup(params, record) is None, (
                f"{key}: its parameters are invalid: {exc}"
            )
            report.skipped[key] = (
                f"no default for {', '.join(required)}; pass params={{{record.name!r}: {{...}}}}"
            )
            continue
        try:
            if record.kind == "restorer":
                component = record.component(validated, restorer_context)
            elif record.kind == "prior":
                component = lambda record=record, validated=validated: record.component(validated)  # noqa: E731
            else:
                component = record.component(validated)
        except Exception as exc:
            raise AssertionError(
                f"{key} ({distribution}): building it from {validated!r} raised {exc!r}"
            ) from exc
        try:
            if record.kind == "degradation":
                own_degradations.append(component)
                result = check_degradation(
                    component, check_speed=check_speed, cost_factor=cost_factor
                ).passed
            elif record.kind == "restorer":
                result = check_restorer(component, restorer_context)
            elif record.kind == "dataset":
                try:
                    result = check_dataset(component)
                except ColdkitError as exc:
                    report.skipped[key] = f"its data is not available here: {exc}"
                    continue
            else:  # prior
                result = check_prior(component)
        except AssertionError:
            raise
        except Exception as exc:
            raise AssertionError(f"{key} ({distribution}): its check raised {exc!r}") from exc
        report.checked[key] = list(result)
    if deferred_samplers:
        degradations = builtin_degradations()
        names = {d.name for d in degradations}
        degradations += [d for d in own_degradations if d.name not in names]
        for record in deferred_samplers:
            key = f"sampler {record.name}"
            try:
                report.checked[key] = check_sampler(
                    record.component,
                    degradations,
                    kwargs=lookup(sampler_kwargs, record),
                    name=record.name,
                )
            except AssertionError:
                raise
            except Exception as exc:
                raise AssertionError(f"{key} ({distribution}): its check raised {exc!r}") from exc
    assert report.checked, (
        f"distribution {distribution!r}: nothing could be checked ({report})"
    )
    return report
