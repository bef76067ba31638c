"""Every registered built-in degradation passes the public contract kit (coldkit.testing), and the
kit itself catches broken degradations."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from pydantic import BaseModel

from coldkit import NoParams
from coldkit.plugins import BUILTIN_DISTRIBUTION, Registry
from coldkit.testing import (
    check_cost,
    check_degradation,
    check_deterministic,
    check_grows_with_t,
    check_identity_at_zero,
    check_mixed_levels,
    check_params,
    check_preserves_tensor,
    make_test_images,
)
from coldkit.testing import build_context as checks_context, serve_test_params
from coldkit_plugins.samplers import improved

REGISTRY = Registry.discover()
BUILTINS = sorted(
    name
    for name, record in REGISTRY.records["degradation"].items()
    if record.distribution == BUILTIN_DISTRIBUTION
)


def build(name: str, **params):
    record = REGISTRY.get("degradation", name)
    if name == "morph":  # a target that is there without Fashion-MNIST's files
        params = {"target": "synthetic", "target_params": {"seed": 7}, **params}
    # paired's y comes from the data: the kit serves test images as y.
    return serve_test_params(record.build(params, checks_context()))


def test_every_builtin_is_discovered():
    # The parametrisation below comes from discovery; make sure it found the built-ins.
    assert {"blur", "mask", "pixelate", "snow", "decolor", "noise"} <= set(BUILTINS)


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_passes_the_contract_on_colour_images(name):
    # A generous cost factor: timing on a shared 2-core machine is noisy (3.4x seen for blur
    # under load, 1.05x when idle), while a loop over t costs about T times (20 or more).
    report = check_degradation(build(name), cost_factor=8.0)
    assert report.cost_ratio is not None and report.cost_ratio <= 8.0
    assert "grows with t" in report.passed and "mixed levels" in report.passed


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_passes_the_contract_on_grey_images(name):
    grey = make_test_images(channels=1, seed=3)
    # decolor has no colour to remove on grey images: the identity there, by design.
    check_degradation(build(name), grey, expect_change=name != "decolor", check_speed=False)


@pytest.mark.parametrize("name", BUILTINS)
def test_algorithm_2_with_an_oracle_restorer_returns_x0(name):
    degradation = build(name)
    x0 = make_test_images(count=6, seed=1)
    params = degradation.sample_params(x0, torch.Generator().manual_seed(5))  # drawn once
    for t in (
        torch.full((6,), degradation.steps),
        torch.tensor([0, 1, degradation.steps, 2, degradation.steps, 1]).clamp(max=degradation.steps),
    ):
        x_t = degradation.degrade(x0, t, params)
        restored = improved(lambda x, level: x0, degradation, x_t, t, params)
        assert torch.allclose(restored, x0, atol=1e-5), (name, float((restored - x0).abs().max()))


@pytest.mark.parametrize("name", ["mask", "snow", "noise"])
def test_algorithm_2_needs_the_same_params_at_every_step(name):
    """Redrawing the random params between steps breaks Algorithm 2: why params are passed."""
    degradation = build(name, steps=4)
    x0 = make_test_images(count=6, seed=1)
    t = torch.full((6,), 4)
    x_t = degradation.degrade(x0, t, degradation.sample_params(x0, torch.Generator().manual_seed(1)))
    other = degradation.sample_params(x0, torch.Generator().manual_seed(2))
    restored = improved(lambda x, level: x0, degradation, x_t, t, other)
    assert not torch.allclose(restored, x0, atol=1e-3)


# ------------------------------------------------------------------ the kit catches bad plugins
class _Base:
    name: ClassVar[str] = "broken"
    description: ClassVar[str] = "a deliberately broken degradation"
    Params: ClassVar[type[BaseModel]] = NoParams
    steps = 4

    def sample_params(self, x0, generator=None):
        return {}

    def _blend(self, x0, share):
        return (1 - share) * x0 + share * 0.5


class NotIdentityAtZero(_Base):
    def degrade(self, x0, t, params=None):
        share = ((t.to(x0.dtype) + 1) / (self.steps + 1)).view(-1, 1, 1, 1)
        return self._blend(x0, share)


class UsesLargestLevel(_Base):
    def degrade(self, x0, t, params=None):
        level = torch.full_like(t, int(t.max()))  # the whole batch at t.max(): wrong
        share = (level.to(x0.dtype) / self.steps).view(-1, 1, 1, 1)
        return self._blend(x0, share)


class RandomInDegrade(_Base):
    def degrade(self, x0, t, params=None):
        share = (t.to(x0.dtype) / self.steps).view(-1, 1, 1, 1)
        return torch.where(share == 0, x0, x0 + share * torch.rand_like(x0))


class UnseededParams(_Base):
    def sample_params(self, x0, generator=None):
        return {"offset": torch.rand(x0.shape[0])}  # ignores the generator

    def degrade(self, x0, t, params=None):
        share = (t.to(x0.dtype) / self.steps).view(-1, 1, 1, 1)
        return x0 + share * params["offset"].view(-1, 1, 1, 1)


class ChangesDtype(_Base):
    def degrade(self, x0, t, params=None):
        share = (t.float() / self.steps).view(-1, 1, 1, 1)
        return torch.where(share == 0, x0.float(), self._blend(x0.float(), share))


class ShrinksAgain(_Base):
    def degrade(self, x0, t, params=None):
        share = torch.sin(t.to(x0.dtype) / self.steps * 0.75 * torch.pi).view(-1, 1, 1, 1)
        return self._blend(x0, share)  # worst at t = 2T/3, better again at t = T


class LoopsOverT(_Base):
    steps = 40

    def degrade(self, x0, t, params=None):
        kernel = torch.full((x0.shape[1], 1, 3, 3), 1 / 9, dtype=x0.dtype)
        out = x0
        for level in range(1, int(t.max()) + 1):  # cost grows with t
            blurred = F.conv2d(F.pad(out, (1, 1, 1, 1), mode="circular"), kernel, groups=x0.shape[1])
            out = torch.where((t >= level).view(-1, 1, 1, 1), blurred, out)
        return out


@pytest.mark.parametrize(
    ("broken", "check", "message"),
    [
        (NotIdentityAtZero(), check_identity_at_zero, "must return x0 unchanged"),
        (UsesLargestLevel(), check_mixed_levels, "degraded alone"),
        (RandomInDegrade(), check_deterministic, "same params"),
        (UnseededParams(), check_params, "same seed"),
        (ChangesDtype(), check_preserves_tensor, "came back as"),
        (ShrinksAgain(), check_grows_with_t, "should not decrease"),
    ],
)
def test_kit_rejects_a_broken_degradation(broken, check, message):
    with pytest.raises(AssertionError, match=message):
        check(broken)
    with pytest.raises(AssertionError):
        check_degradation(broken, check_speed=False)


def test_kit_rejects_a_loop_over_t():
    with pytest.raises(AssertionError, match="loop"):
        check_cost(LoopsOverT())


def test_kit_rejects_a_degradation_that_does_nothing_unless_told():
    grey = make_test_images(channels=1)
    decolor = build("decolor")
    with pytest.raises(AssertionError, match="equals x0"):
        check_grows_with_t(decolor, grey)
    check_grows_with_t(decolor, grey, expect_change=False)
