"""The sampler contract: :func:`check_sampler`, run with an oracle restorer and a spy
degradation."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from coldkit.errors import ColdkitError
from coldkit.plugins.compat import sampler_options
from coldkit.protocols import Degradation, DegradationParams
from coldkit.testing._common import (
    _full,
    _generator,
    _label,
    _mixed_levels,
    _named,
    make_test_images,
    build_context,
    serve_test_params,
)


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
    found through :meth:`coldkit.plugins.Registry.discover` and built with
    :func:`build_context`; one whose data is not available here (morph without
    Fashion-MNIST) is left out. One whose parameters come from the data (``paired``) gets test
    images as those parameters (:class:`~coldkit.testing._common.WithParams`)."""
    from coldkit.plugins import BUILTIN_DISTRIBUTION, Registry

    registry = Registry.discover()
    built = [
        record.build(record.params_model(), build_context())
        for name, record in sorted(registry.records["degradation"].items())
        if record.distribution == BUILTIN_DISTRIBUTION
    ]
    built = [serve_test_params(degradation) for degradation in built]
    return [degradation for degradation in built if _data_available(degradation)]


def _data_available(degradation: Degradation) -> bool:
    try:
        degradation.sample_params(make_test_images(1), _generator(0))
    except ColdkitError:
        return False
    return True


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
    assert callable(sampler), f"a sampler must be a function, got {type(sampler).__name__}"
    label = f"sampler {name!r}" if name else _named(sampler, "sampler")
    passed = ["interface"]
    if degradations is None:
        degradations = builtin_degradations()
    x0 = make_test_images(count=6, seed=seed + 1) if images is None else images
    if kwargs is None:
        kwargs = _default_kwargs(sampler)
        if kwargs:
            passed.append("called with noise=0.0")
    extra = dict(kwargs)
    for degradation in degradations:
        steps = degradation.steps
        where = f"{label} with {_label(degradation)} (T = {steps})"
        params = degradation.sample_params(x0, _generator(seed))
        snapshot = {key: value.clone() for key, value in params.items()}
        for t in (_full(steps, x0), _mixed_levels(steps, x0.shape[0], seed).to(x0.device)):
            _check_oracle_run(sampler, degradation, where, x0, t, params, snapshot, atol, extra)
        passed.append(f"x0 from an oracle restorer: {degradation.name}")
    passed.append("params reused at every step")
    return passed


def _default_kwargs(sampler: Callable[..., Tensor]) -> dict:
    """``{"noise": 0.0}`` for a sampler with a ``noise`` parameter, else no keyword arguments."""
    return {"noise": 0.0} if "noise" in sampler_options(sampler) else {}


def _check_oracle_run(
    sampler: Callable[..., Tensor],
    degradation: Degradation,
    where: str,
    x0: Tensor,
    t: Tensor,
    params: DegradationParams,
    snapshot: DegradationParams,
    atol: float,
    extra: dict,
) -> None:
    """One sampler call from ``x_t = D(x0, t)`` with the oracle restorer and a spy degradation."""
    steps = degradation.steps
    spy = _SpyDegradation(degradation)
    x_t = degradation.degrade(x0, t, params)
    x_t_before = x_t.clone()
    oracle = _OracleRestorer(x0, steps, where)
    restored = sampler(oracle, spy, x_t, t, params, **extra)
    _check_result(where, restored, x0, x_t, x_t_before)
    _check_params_reused(where, spy, params, snapshot)
    _check_exact(where, restored, x0, t, atol, extra)


def _check_result(
    where: str, restored: object, x0: Tensor, x_t: Tensor, x_t_before: Tensor
) -> None:
    """A tensor shaped and typed like ``x_t``, and ``x_t`` not changed in place."""
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


def _check_params_reused(
    where: str, spy: _SpyDegradation, params: DegradationParams, snapshot: DegradationParams
) -> None:
    """``sample_params`` never called, every ``degrade`` call given ``params``, which are kept."""
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


def _check_exact(
    where: str, restored: Tensor, x0: Tensor, t: Tensor, atol: float, extra: dict
) -> None:
    """With an oracle restorer the sampler gives back ``x0`` to ``atol``."""
    levels = f"starting levels t = {t.tolist()}"
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
