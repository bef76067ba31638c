"""The sampler protocol of plugin API 4: samplers are called with ``generator`` and ``callback``
keywords (and ``noise`` where they declare ``takes_noise``), and samplers of older plugin modules
are adapted, so coldkit never reads a sampler's signature to call it."""

from __future__ import annotations

import types

import torch

from coldkit import hookimpl
from coldkit.generation.sampling import bind_sampler, generation_path
from coldkit.plugins import Registry
from coldkit.testing import check_sampler
from coldkit_plugins.blur import Blur, BlurParams
from coldkit_plugins.samplers import direct, improved, naive, stochastic


def _blur() -> Blur:
    return Blur(BlurParams(steps=4, kernel_size=5, sigma=1.0))


def _old_plugin(api: int | None):
    """A plugin module with an API 3 style sampler: a noise parameter, no callback."""
    calls = []

    def jitter(restorer, degradation, x_t, t, params=None, noise=0.0, generator=None):
        calls.append({"noise": noise, "generator": generator})
        x = x_t
        for s in range(int(t.max()), 0, -1):
            level = torch.full_like(t, s)
            x = degradation.degrade(restorer(x, level), level - 1, params)
        return x

    module = types.SimpleNamespace(register_samplers=hookimpl(
        lambda register: register(jitter, name="jitter", description="old style")
    ))
    if api is not None:
        module.COLDKIT_PLUGIN_API = api
    return module, calls


def test_builtin_samplers_report_every_step_to_the_callback():
    blur = _blur()
    x0 = torch.rand(3, 1, 8, 8)
    t = torch.tensor([4, 3, 2])
    x_t = blur.degrade(x0, t, {})
    for sampler, levels in ((direct, [4]), (naive, [4, 3, 2, 1]), (improved, [4, 3, 2, 1])):
        heard = []
        out = sampler(lambda x, s: x0, blur, x_t, t, {}, callback=heard.append)
        assert [step["i"] for step in heard] == levels, sampler.__name__
        assert torch.equal(heard[0]["x"], x_t) and torch.equal(heard[0]["denoised"], x0)
        assert torch.equal(out, sampler(lambda x, s: x0, blur, x_t, t, {}))  # callback changes nothing


def test_only_a_sampler_that_declares_noise_gets_it():
    assert getattr(stochastic, "takes_noise", False) and not hasattr(improved, "takes_noise")
    bound = bind_sampler(stochastic, "stochastic", 0.05, torch.Generator().manual_seed(0))
    assert bound.keywords["noise"] == 0.05 and "generator" in bound.keywords
    assert "noise" not in bind_sampler(improved, "improved", 0.0, torch.Generator()).keywords


def test_an_old_plugin_sampler_is_adapted_to_the_protocol():
    module, calls = _old_plugin(api=3)
    registry = Registry.discover(entry_points=[], extra_plugins=[("old", module)])
    record = registry.get("sampler", "jitter")
    assert record.api == 3
    sampler = record.build()
    assert sampler.takes_noise  # read from its signature, for one release
    generator = torch.Generator().manual_seed(0)
    bound = bind_sampler(sampler, "jitter", 0.03, generator)
    blur = _blur()
    x0 = torch.rand(2, 1, 8, 8)
    t = torch.full((2,), 4)
    heard = []
    bound(lambda x, s: x0, blur, blur.degrade(x0, t, {}), t, {}, callback=heard.append)
    assert calls[-1] == {"noise": 0.03, "generator": generator}
    assert [step["i"] for step in heard] == [4, 3, 2, 1]  # the callback, through its restorer calls
    assert check_sampler(sampler, [blur], name="jitter")  # the kit takes old samplers too


def test_a_module_without_an_api_declaration_is_api_1_and_adapted():
    module, _ = _old_plugin(api=None)
    registry = Registry.discover(entry_points=[], extra_plugins=[("old", module)])
    assert registry.get("sampler", "jitter").api == 1


def test_the_generation_path_figure_comes_from_the_callback():
    blur = _blur()

    class Flat:
        def sample(self, count, generator):
            return torch.full((count, 1, 8, 8), 0.5)

    columns, labels = generation_path(
        lambda x, s: x * 0 + 0.25, blur, Flat(), improved, 3, columns=2, seed=0
    )
    assert labels == ["x_T (t=4)", "t=3", "t=1", "x_0"]
    assert len(columns) == 4 and columns[0].shape == (3, 1, 8, 8)


def test_a_degradation_declares_its_random_params_and_the_kit_checks_the_declaration():
    import pytest

    from coldkit.plugins.compat import random_params
    from coldkit.testing.degradation import check_params
    from coldkit_plugins.mask import Mask, MaskParams
    from coldkit_plugins.noise import Noise

    x0 = torch.rand(2, 1, 8, 8)
    assert random_params(_blur(), x0) == () and random_params(Noise(), x0) == ("noise",)
    assert random_params(Mask(MaskParams(centre="fixed")), x0) == ()
    lying = Noise()
    lying.random_params = ()
    with pytest.raises(AssertionError, match="random_params declares"):
        check_params(lying, x0)
    undeclared = Noise()
    del undeclared.random_params  # an API 3 degradation: asked by one draw, for one release
    assert random_params(undeclared, x0) == ("noise",)
