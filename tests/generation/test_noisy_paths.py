"""Noisy cold paths (issue 25): the path-noise wrapper every degradation gets, the momentum and
stochastic samplers on it, the soft training objective, the standard-normal prior (the hot
baseline), and a run of each through `coldkit run` on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from coldkit import BuildContext
from coldkit.cli import app
from coldkit.config import TrainSection, build_experiment, write_toml
from coldkit.errors import ConfigError
from coldkit.generation.draws import draw_from_prior
from coldkit.path_noise import PATH_NOISE, NoisyPath, PathNoiseParams, mean_path, path_sigmas
from coldkit.plugins import Registry
from coldkit.testing import check_degradation, check_prior, check_sampler, make_test_images
from coldkit.testing.generation import check_generation
from coldkit.training.trainer import Trainer
from coldkit_plugins.blur import Blur, BlurParams
from coldkit_plugins.mask import Mask, MaskParams
from coldkit_plugins.noise import Noise, NoiseParams
from coldkit_plugins.normal_prior import StandardNormal
from coldkit_plugins.priors import Gmm, GmmParams
from coldkit_plugins.samplers import improved, momentum, stochastic
from tests.conftest import tiny_experiment

runner = CliRunner()


def blur() -> Blur:
    return Blur(BlurParams(steps=5, kernel_size=5, sigma=1.0))


def noisy(base=None, sigma: float = 0.05, schedule: str = "linear") -> NoisyPath:
    return NoisyPath(base or blur(), PathNoiseParams(sigma=sigma, schedule=schedule))


class ShapeRestorer(torch.nn.Module):
    """Depends on its input and level (not an oracle), so samplers differ where formulas do."""

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (x_t * 1.3 - 0.02 * t.view(-1, 1, 1, 1)).clamp(0, 1)


def _full(level: int, like: torch.Tensor) -> torch.Tensor:
    return torch.full((len(like),), level, dtype=torch.long)


# ------------------------------------------------------------------------------ the wrapper
@pytest.mark.parametrize("schedule", ["constant", "linear"])
@pytest.mark.parametrize("base", [blur, lambda: Mask(MaskParams(steps=6))], ids=["blur", "mask"])
def test_noisy_path_passes_the_degradation_and_generation_contracts(base, schedule):
    path = noisy(base(), 0.05, schedule)
    assert "params" in check_degradation(path, check_speed=False).passed
    for sampler in (improved, momentum, lambda *a, **k: stochastic(*a, noise=0.0, **k)):
        assert "generation with the prior's params" in check_generation(path, sampler=sampler)


def test_sigma_zero_is_exactly_the_wrapped_degradation():
    base, x0 = Mask(MaskParams(steps=6)), make_test_images(6, 16, 3, seed=2)
    path = NoisyPath(base, PathNoiseParams(sigma=0.0))
    assert path.random_params == base.random_params and path.steps == base.steps
    params = path.sample_params(x0, torch.Generator().manual_seed(4))
    expected = base.sample_params(x0, torch.Generator().manual_seed(4))
    assert params.keys() == expected.keys()
    t = torch.tensor([0, 1, 2, 3, 5, 6])
    assert torch.equal(path.degrade(x0, t, params), base.degrade(x0, t, expected))
    assert check_generation(path)[0] == "generation with the prior's params"


def test_path_noise_follows_its_schedule_and_is_part_of_the_draw():
    x0 = make_test_images(6, 16, 1, seed=0)
    path = noisy(sigma=0.1, schedule="linear")
    assert torch.allclose(path_sigmas(path), torch.linspace(0, 0.1, 6, dtype=torch.float64))
    params = path.sample_params(x0, torch.Generator().manual_seed(0))
    t = _full(3, x0)
    difference = path.degrade(x0, t, params) - blur().degrade(x0, t)
    assert torch.allclose(difference, 0.06 * params[PATH_NOISE], atol=1e-6)
    constant = noisy(sigma=0.1, schedule="constant")
    assert path_sigmas(constant).tolist() == [0.0] + [0.1] * 5
    assert torch.equal(path.degrade(x0, _full(0, x0), params), x0)


def test_config_wraps_any_degradation_and_rejects_unknown_path_noise_keys():
    registry = Registry.discover()
    data = tiny_experiment(
        degradation={"name": "blur", "steps": 4, "path_noise": {"sigma": 0.02, "schedule": "linear"}}
    )
    experiment = build_experiment(data, registry)
    built = experiment.degradation.build()
    assert isinstance(built, NoisyPath) and built.name == "blur" and built.steps == 4
    assert isinstance(mean_path(built), Blur)
    assert experiment.to_dict()["degradation"]["path_noise"] == {"sigma": 0.02, "schedule": "linear"}
    assert not isinstance(build_experiment(tiny_experiment(), registry).degradation.build(), NoisyPath)
    bad = tiny_experiment(degradation={"name": "blur", "path_noise": {"sigma": 0.1, "sigmas": 2}})
    with pytest.raises(ConfigError, match="path_noise.sigmas"):
        build_experiment(bad, registry)


def test_a_mixture_prior_models_the_mean_path_and_generation_adds_the_path_noise():
    path = noisy(sigma=0.2, schedule="constant")
    prior = Gmm(GmmParams(components=2, noise=0.0))
    x0 = make_test_images(32, 16, 1, seed=1)
    prior.fit(blur().degrade(x0, _full(5, x0)))
    x_T, params = draw_from_prior(prior, path, 8, torch.Generator().manual_seed(0))
    flat = prior.sample(8, torch.Generator().manual_seed(0))
    assert set(params) == {PATH_NOISE}
    assert torch.allclose(x_T - flat, 0.2 * params[PATH_NOISE], atol=1e-6)


# ------------------------------------------------------------------------------ samplers
def test_momentum_is_registered_and_passes_the_sampler_contract():
    assert Registry.discover().get("sampler", "momentum").build() is momentum
    passed = check_sampler(momentum, name="momentum")
    assert "params reused at every step" in passed


def test_momentum_is_algorithm_2_where_sigma_does_not_change():
    x0 = make_test_images(6, 16, 1, seed=5)
    restorer = ShapeRestorer()
    for degradation in (blur(), noisy(sigma=0.0)):
        x_T = degradation.degrade(x0, _full(5, x0))
        expected = improved(restorer, degradation, x_T, _full(5, x0), {})
        assert torch.equal(momentum(restorer, degradation, x_T, _full(5, x0), {}), expected)
    # A constant schedule changes sigma only at the last step: the two agree until then.
    path = noisy(sigma=0.1, schedule="constant")
    params = path.sample_params(x0, torch.Generator().manual_seed(1))
    x_T = path.degrade(x0, _full(5, x0), params)
    seen: dict[str, list] = {"momentum": [], "improved": []}
    for name, sampler in (("momentum", momentum), ("improved", improved)):
        sampler(restorer, path, x_T, _full(5, x0), params, callback=lambda s, n=name: seen[n].append(s["x"]))
    for ours, theirs in zip(seen["momentum"], seen["improved"]):
        assert torch.allclose(ours, theirs, atol=1e-6)
    # On a linear schedule the score step changes the path: momentum is not Algorithm 2 there.
    linear = noisy(sigma=0.1, schedule="linear")
    x_T = linear.degrade(x0, _full(5, x0), params)
    ours = momentum(restorer, linear, x_T, _full(5, x0), params, generator=torch.Generator())
    assert not torch.allclose(ours, improved(restorer, linear, x_T, _full(5, x0), params))


def test_momentum_and_stochastic_are_seeded_on_a_noisy_path():
    x0 = make_test_images(6, 16, 1, seed=6)
    path = noisy(sigma=0.1, schedule="linear")
    params = path.sample_params(x0, torch.Generator().manual_seed(0))
    x_T, t = path.degrade(x0, _full(5, x0), params), _full(5, x0)
    restorer = ShapeRestorer()
    for sampler in (momentum, stochastic):
        run = lambda seed: sampler(  # noqa: E731
            restorer, path, x_T, t, params, generator=torch.Generator().manual_seed(seed)
        )
        assert torch.equal(run(1), run(1)) and not torch.allclose(run(1), run(2))
    # Algorithm 2 keeps the drawn noise: deterministic whatever the generator.
    assert torch.equal(improved(restorer, path, x_T, t, params), improved(restorer, path, x_T, t, params))


def test_stochastic_redraws_the_path_noise_at_the_levels_own_sigma():
    x0 = make_test_images(8, 32, 1, seed=7)
    path = noisy(sigma=0.2, schedule="linear")
    params = path.sample_params(x0, torch.Generator().manual_seed(0))
    oracle = lambda x, t: x0  # noqa: E731
    seen = []
    stochastic(oracle, path, path.degrade(x0, _full(5, x0), params), _full(5, x0), params,
               noise=0.0, generator=torch.Generator().manual_seed(3),
               callback=lambda step: seen.append((step["i"], step["x"])))
    for level, x in seen[1:]:
        residual = x - blur().degrade(x0, _full(level, x0))
        assert abs(float(residual.std()) - 0.04 * level) < 0.01  # σ_s = 0.2 s / 5
        assert not torch.allclose(residual, 0.04 * level * params[PATH_NOISE], atol=1e-3)


# -------------------------------------------------------------------------- soft objective
class Identity:
    name, description, steps, random_params = "identity", "x0 at every level", 4, ()

    def sample_params(self, x0, generator=None):
        return {}

    def degrade(self, x0, t, params=None):
        return x0


class Conv(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.conv(x_t)


def _trainer(tmp_path: Path, degradation, objective: str) -> Trainer:
    network = Conv()
    settings = TrainSection(steps=2, batch_size=4, objective=objective)
    images = make_test_images(16, 16, 1, seed=0)
    return Trainer(network, degradation, images, settings, 0, torch.device("cpu"), tmp_path / "c.pt")


def test_soft_objective_equals_the_image_loss_where_re_degrading_is_the_identity(tmp_path):
    x0 = make_test_images(4, 16, 1, seed=1)
    prediction = make_test_images(4, 16, 1, seed=2)
    t = torch.tensor([1, 2, 3, 4])
    image = _trainer(tmp_path, Identity(), "image").objective_loss(prediction, x0, t, {})
    soft = _trainer(tmp_path, Identity(), "soft").objective_loss(prediction, x0, t, {})
    assert torch.equal(image, soft)
    assert _trainer(tmp_path, Identity(), "soft").fit().losses == _trainer(
        tmp_path / "b", Identity(), "image"
    ).fit().losses


def test_soft_objective_compares_the_estimate_re_degraded_without_path_noise(tmp_path):
    x0 = make_test_images(4, 16, 1, seed=1)
    prediction = make_test_images(4, 16, 1, seed=2)
    t = torch.tensor([1, 2, 3, 5])
    path = noisy(sigma=0.3)
    params = path.sample_params(x0, torch.Generator().manual_seed(0))
    soft = _trainer(tmp_path, path, "soft").objective_loss(prediction, x0, t, params)
    expected = (blur().degrade(prediction, t) - blur().degrade(x0, t)).abs().mean()
    assert torch.allclose(soft, expected)
    image = _trainer(tmp_path, path, "image").objective_loss(prediction, x0, t, params)
    assert float(soft) < float(image)  # blur damps the error the image loss sees in full


# ------------------------------------------------------------------- the standard-normal prior
def _hot() -> Noise:
    return Noise(NoiseParams(steps=10, symmetric=True))


def test_standard_normal_prior_passes_the_prior_contract():
    passed = check_prior(lambda: StandardNormal(context=BuildContext(degradation=_hot())))
    assert "params with x_T" in passed and "state_dict round trip" in passed


def test_standard_normal_draws_the_noise_degradations_end_with_its_noise():
    noise = _hot()
    x0 = make_test_images(64, 8, 1, seed=0)
    params = noise.sample_params(x0, torch.Generator().manual_seed(0))
    prior = StandardNormal(context=BuildContext(degradation=noise))
    prior.fit(noise.degrade(x0, _full(10, x0), params), params=params)
    x_T, drawn = prior.sample_with_params(500, torch.Generator().manual_seed(1))
    abar = noise.alphas_cumprod[-1]
    expected = (abar.sqrt() * (2 * x0.mean(0) - 1) + (1 - abar).sqrt() * drawn["noise"] + 1) / 2
    assert torch.allclose(x_T, expected.float(), atol=1e-5)
    assert abs(float(drawn["noise"].std()) - 1) < 0.02


def test_standard_normal_refuses_a_degradation_without_noise():
    with pytest.raises(ConfigError, match="standard-normal.*noise degradation"):
        StandardNormal(context=BuildContext(degradation=blur()))


# ------------------------------------------------------------------------------ runs
def _run(tmp_path: Path, **sections) -> Path:
    config, out = tmp_path / "tiny.toml", tmp_path / "run"
    data = tiny_experiment(**sections)
    if data["degradation"]["name"] == "noise":
        data["degradation"] = sections["degradation"]
    write_toml(config, data)
    result = runner.invoke(app, ["run", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


GENERATE = {"num_samples": 12, "batch_size": 6, "grid_size": 6, "judge": False}


def test_hot_baseline_generates_with_the_standard_normal_prior(tmp_path):
    out = _run(
        tmp_path,
        degradation={"name": "noise", "steps": 6, "symmetric": True},
        generate={**GENERATE, "prior": {"name": "standard-normal"}},
    )
    samples = torch.load(out / "samples.pt", weights_only=True)
    assert samples.shape == (12, 1, 16, 16) and (out / "generation_path.png").is_file()
    assert json.loads((out / "generation.json").read_text())["prior"]["name"] == "standard-normal"


def test_noisy_cold_path_trains_softly_and_generates_with_momentum(tmp_path):
    out = _run(
        tmp_path,
        degradation={"path_noise": {"sigma": 0.02, "schedule": "linear"}},
        train={"objective": "soft"},
        generate={**GENERATE, "sampler": "momentum", "prior": {"name": "gmm", "components": 2}},
    )
    samples = torch.load(out / "samples.pt", weights_only=True)
    assert samples.shape == (12, 1, 16, 16) and torch.isfinite(samples).all()
    assert len({tuple(sample.flatten()[:20].tolist()) for sample in samples}) == 12
