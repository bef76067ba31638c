"""The build context (plugin API 2): it reaches every kind, old-style plugins still build, a
plugin's second dataset goes through the run's registry (trace, run.json, disable_plugins), and
random degradation parameters live through generation and restore."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from pydantic import BaseModel, ConfigDict
from rich.console import Console

from coldkit import BuildContext, PLUGIN_API_VERSION, RestorerContext, hookimpl
from coldkit.config import build_experiment
from coldkit.errors import ConfigError, DataError, ParamsError, PluginError
from coldkit.generation.draws import draw_from_prior
from coldkit.runs.opened import params_of_degraded_images
from coldkit.generation.priors import degrade_fully, degrade_fully_with_params
from coldkit.plugins import Registry, takes_build_context
from coldkit.run import claimed_run, execute
from coldkit.testing import (
    builtin_degradations,
    check_degradation,
    check_generation,
    check_prior,
    make_test_images,
)
from coldkit.testing import build_context as checks_context

from tests.conftest import tiny_experiment

SYNTHETIC_TARGET = {"target": "synthetic", "target_params": {"seed": 7, "count": 64, "size": 16}}


# ------------------------------------------------------------------ the context reaches each kind
class _Seen:
    contexts: dict[str, BuildContext] = {}


class NewDegradation:
    name, description, steps = "new-degradation", "records its context", 3

    def __init__(self, params, *, context: BuildContext) -> None:
        _Seen.contexts["degradation"] = context

    def sample_params(self, x0, generator=None):
        return {}

    def degrade(self, x0, t, params=None):
        return x0


def new_restorer(params, *, context: BuildContext):
    _Seen.contexts["restorer"] = context
    return torch.nn.Identity()


def new_sampler(restorer, degradation, x_t, t, params=None, *, context: BuildContext):
    return context


class NewDataset:
    name, description = "new-dataset", "records its context"

    def __init__(self, params, *, context: BuildContext) -> None:
        _Seen.contexts["dataset"] = context


class NewPrior:
    name, description = "new-prior", "records its context"

    def __init__(self, params, *, context: BuildContext) -> None:
        _Seen.contexts["prior"] = context


class OldDegradation(NewDegradation):
    name = "old-degradation"

    def __init__(self, params) -> None:
        self.params = params


def old_restorer(params, context):  # positional: the RestorerContext, as in plugin API 1
    assert isinstance(context, RestorerContext)
    return torch.nn.Identity()


def _plugin(**hooks):
    return SimpleNamespace(**{name: hookimpl(function) for name, function in hooks.items()})


NEW_STYLE = _plugin(
    register_degradations=lambda register: (register(NewDegradation), register(OldDegradation)),
    register_restorers=lambda register: (
        register(new_restorer, name="new-restorer"), register(old_restorer, name="old-restorer")
    ),
    register_samplers=lambda register: register(new_sampler, name="new-sampler"),
    register_datasets=lambda register: register(NewDataset),
    register_priors=lambda register: register(NewPrior),
)


def test_the_build_context_reaches_every_kind_and_old_style_components_still_build():
    registry = Registry.discover(entry_points=[], extra_plugins=[("new", NEW_STYLE)])
    assert not registry.problems
    context = BuildContext(16, 1, 3, seed=5, split="test")
    for kind, name in (("degradation", "new-degradation"), ("restorer", "new-restorer"),
                       ("dataset", "new-dataset"), ("prior", "new-prior")):
        registry.get(kind, name).build({}, context)
        assert _Seen.contexts[kind] is context
    bound = registry.get("sampler", "new-sampler").build(None, context)
    assert bound(None, None, None, None) is context
    assert isinstance(registry.get("degradation", "old-degradation").build({}, context),
                      OldDegradation)
    assert registry.get("restorer", "old-restorer").build({}, context) is not None
    assert registry.get("restorer", "old-restorer").build({}, RestorerContext(1, 16, 3))
    assert not takes_build_context(old_restorer) and takes_build_context(new_restorer)


def test_a_plugin_that_needs_a_newer_api_is_reported_not_loaded():
    future = _plugin(register_degradations=lambda register: register(OldDegradation))
    future.COLDKIT_PLUGIN_API = PLUGIN_API_VERSION + 1
    registry = Registry.discover(entry_points=[], extra_plugins=[("future", future)])
    assert "old-degradation" not in registry.names("degradation")
    assert any("plugin API" in problem.message for problem in registry.problems)


# ------------------------------------------------------------------ a second dataset, seen by all
class OtherDataset:
    """Synthetic shapes under another name, from a plugin of its own (the target)."""

    name, description = "other-shapes", "synthetic shapes of a separate plugin"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def __init__(self, params) -> None:
        from coldkit_plugins.datasets import Synthetic, SyntheticParams

        self.inner = Synthetic(SyntheticParams(count=40, size=16, seed=3))

    def load(self, split):
        return self.inner.load(split)


OTHER_DATA = _plugin(register_datasets=lambda register: register(OtherDataset))


def _morph_experiment(tmp_path: Path, **extra) -> dict:
    data = tiny_experiment(
        generate={"num_samples": 6, "batch_size": 6, "judge": False,
                  "prior": {"name": "morph-target"}},
        **extra,
    )
    data["degradation"] = {"name": "morph", "steps": 3, "target": "other-shapes"}
    return data


def test_a_degradation_reading_a_second_dataset_is_traced_listed_and_disabled(tmp_path: Path):
    lines: list[str] = []
    registry = Registry.discover(extra_plugins=[("other_data", OTHER_DATA)], trace=lines.append)
    experiment = build_experiment(_morph_experiment(tmp_path), registry)
    with claimed_run(experiment, tmp_path / "run", [], registry) as (resolved, paths):
        metrics = execute(resolved, paths, Console(quiet=True))
    assert metrics["generation"]["num_samples"] == 6
    assert any("dataset 'other-shapes' served by other_data" in line for line in lines)
    sources = json.loads(paths.metadata.read_text())["plugin_data"]
    assert {source["split"] for source in sources} == {"train", "test"}
    assert all(source["dataset"] == "other-shapes" for source in sources)
    assert "data for a plugin: dataset 'other-shapes'" in paths.log.read_text()

    # The dataset reference is resolved with the config: a disabled data plugin stops it there.
    with pytest.raises(
        ConfigError, match="degradation.target.name: .*other-shapes.*Disabled plugins: other_data"
    ):
        build_experiment(_morph_experiment(tmp_path, disable_plugins=["other_data"]), registry)


# ------------------------------------------------------------------ params through the whole life
def _synthetic_morph(**params):
    registry = Registry.discover()
    return registry.get("degradation", "morph").build(
        {**SYNTHETIC_TARGET, "steps": 5, **params}, checks_context()
    )


def _every_builtin_degradation():
    names = {degradation.name for degradation in builtin_degradations()}
    extra = [] if "morph" in names else [_synthetic_morph()]  # no Fashion-MNIST here
    blurring = _synthetic_morph(alpha_end=0.05, blur_end=2.0)  # blurs x0 as it fades
    return [*builtin_degradations(), *extra, blurring]


@pytest.mark.parametrize("degradation", _every_builtin_degradation(), ids=lambda d: d.name)
def test_generation_and_restore_pass_the_oracle_check(degradation):
    passed = check_generation(degradation)
    assert "generation with the prior's params" in passed and "restore with params" in passed


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("blend", ["variance", "convex"])
def test_morph_passes_check_degradation(schedule, blend):
    morph = _synthetic_morph(schedule=schedule, blend=blend)
    check_degradation(morph, check_speed=False)
    x0 = make_test_images(4)
    params = morph.sample_params(x0, torch.Generator().manual_seed(0))
    at_T = morph.degrade(x0, torch.full((4,), morph.steps), params)
    assert torch.allclose(at_T, params["z"], atol=1e-6)  # D(x0, T) = z: x_T is a target image


def test_morph_with_alpha_end_keeps_a_faint_x0_at_T():
    morph = _synthetic_morph(schedule="cosine", alpha_end=0.04)
    check_degradation(morph, check_speed=False)
    x0 = make_test_images(4)
    params = morph.sample_params(x0, torch.Generator().manual_seed(0))
    at_T = morph.degrade(x0, torch.full((4,), morph.steps), params)
    assert torch.allclose(at_T, 0.2 * x0 + 0.96**0.5 * params["z"], atol=1e-6)


def test_morph_with_blur_end_blurs_x0_as_it_fades_and_without_it_is_unchanged():
    import kornia

    x0 = make_test_images(4)
    plain, blurred = _synthetic_morph(alpha_end=0.04), _synthetic_morph(alpha_end=0.04, blur_end=2.0)
    check_degradation(blurred, check_speed=False)
    params = plain.sample_params(x0, torch.Generator().manual_seed(0))
    t = torch.tensor([0, 1, 3, 5])
    faded = plain.degrade(x0, t, params)
    assert torch.equal(_synthetic_morph(alpha_end=0.04, blur_end=0.0).degrade(x0, t, params), faded)
    both = blurred.degrade(x0, t, params)
    assert torch.equal(both[0], x0[0])  # D(x0, 0) = x0 exactly
    # sigma grows linearly: 0.4, 1.2, 2.0 pixels at t = 1, 3, 5; from about one pixel on, the
    # periodic Gaussian is kornia's sampled one (below, sampling a kernel aliases)
    for index in (2, 3):
        sigma = 2.0 * int(t[index]) / 5
        reference = kornia.filters.gaussian_blur2d(
            x0[index : index + 1], (15, 15), (sigma, sigma), border_type="circular"
        )
        keep, mix = float(plain.keep[t[index]]), float(plain.mix[t[index]])
        expected = keep * reference[0] + mix * params["z"][index]
        assert torch.allclose(both[index], expected, atol=1e-3)
    assert not torch.allclose(both[1:], faded[1:], atol=1e-3)


def test_morph_target_with_blur_end_draws_the_blurred_x0_the_path_leaves_at_T():
    registry = Registry.discover()
    morph = _synthetic_morph(alpha_end=0.09, blur_end=3.0)
    prior = registry.get("prior", "morph-target").build(
        {"x0_components": 2}, checks_context(degradation=morph)
    )
    x0 = make_test_images(30)
    x_T, params = degrade_fully_with_params(morph, x0, seed=0)
    prior.fit(x_T, seed=0, params=params)
    drawn, drawn_params = prior.sample_with_params(30, torch.Generator().manual_seed(1))
    g = (drawn - 0.91**0.5 * drawn_params["z"]) / 0.3

    def roughness(images):  # mean absolute difference of neighbouring pixels
        return float((images[..., 1:] - images[..., :-1]).abs().mean())

    at_T = morph.blurred(x0, torch.full((30,), morph.steps))
    assert roughness(g) < 0.5 * roughness(x0)  # smooth, as the blurred x0 it learnt
    assert roughness(g) < 1.5 * roughness(at_T)


def test_morph_target_learns_x0_from_the_params_and_draws_x_T_with_them():
    from coldkit.generation.priors import fit_takes_params

    registry = Registry.discover()
    morph = _synthetic_morph(alpha_end=0.09)
    context = checks_context(degradation=morph)
    prior = registry.get("prior", "morph-target").build({"x0_components": 2}, context)
    assert fit_takes_params(prior)
    assert not fit_takes_params(registry.get("prior", "pca-gmm").build({}))
    x0 = make_test_images(30)
    x_T, params = degrade_fully_with_params(morph, x0, seed=0)
    assert torch.equal(x_T, degrade_fully(morph, x0, seed=0))  # the same draws
    prior.fit(x_T, seed=0, params=params)
    drawn, drawn_params = prior.sample_with_params(8, torch.Generator().manual_seed(1))
    x0_part = (drawn - 0.91**0.5 * drawn_params["z"]) / 0.3
    assert x0_part.min() >= -1e-5 and x0_part.max() <= 1 + 1e-5  # a clamped draw of x0
    assert x0_part.flatten(1).std(0).mean() > 0.01  # not one image: the mixture varies
    again = registry.get("prior", "morph-target").build({"x0_components": 2}, context)
    again.load_state_dict(prior.state_dict())
    assert torch.equal(again.sample(8, torch.Generator().manual_seed(1)), drawn)


def test_morph_targets_x0_temperature_reaches_its_x0_mixture():
    registry = Registry.discover()
    context = checks_context(degradation=_synthetic_morph(alpha_end=0.09))
    prior = registry.get("prior", "morph-target").build({"x0_temperature": 0.6}, context)
    assert prior.x0_prior.params.temperature == 0.6
    default = registry.get("prior", "morph-target").build({}, context)
    assert default.x0_prior.params.temperature == 1.0


def test_a_tiny_morph_run_with_alpha_end_fits_its_prior_on_params_and_generates(tmp_path: Path):
    registry = Registry.discover(extra_plugins=[("other_data", OTHER_DATA)])
    data = _morph_experiment(tmp_path)
    data["degradation"]["alpha_end"] = 0.05
    data["generate"]["prior"]["x0_components"] = 2
    experiment = build_experiment(data, registry)
    with claimed_run(experiment, tmp_path / "run", [], registry) as (resolved, paths):
        metrics = execute(resolved, paths, Console(quiet=True))
    assert metrics["generation"]["num_samples"] == 6


def test_morph_target_prior_returns_its_params_and_passes_check_prior():
    record = Registry.discover().get("prior", "morph-target")
    passed = check_prior(lambda: record.build(SYNTHETIC_TARGET, checks_context()))
    assert "params with x_T" in passed


def test_a_prior_without_params_is_refused_for_random_parameters_with_a_reason():
    from coldkit.testing.generation import _ParamlessPrior

    mask = Registry.discover().get("degradation", "mask").build({"steps": 4})
    x_T = make_test_images(3)
    with pytest.raises(ParamsError, match="mask.*centre.*fixed"):
        draw_from_prior(_ParamlessPrior(x_T), mask, 3, torch.Generator())
    with pytest.raises(ParamsError, match="cannot be known from a degraded image"):
        params_of_degraded_images(mask, x_T)
    fixed = Registry.discover().get("degradation", "mask").build({"steps": 4, "centre": "fixed"})
    assert draw_from_prior(_ParamlessPrior(x_T), fixed, 3, torch.Generator())[1] == {}


def test_deterministic_prior_passes_check_prior():
    class MeanPrior:  # the shape of docs/generation.md's "Writing a prior" example, noise = 0
        name, description = "mean", "the mean of x_T"

        def fit(self, x_T, seed=0):
            self.mean = x_T.mean(0)

        def sample(self, count, generator):
            return self.mean.expand(count, *self.mean.shape).clone()

        def state_dict(self):
            return {"mean": self.mean}

        def load_state_dict(self, state):
            self.mean = state["mean"]

    assert "seeded" in check_prior(MeanPrior)


# ------------------------------------------------------------------ the clothes-into-digits example
FASHION = Path("/usr/share/datasets/fashion-mnist")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fashion_to_mnist.toml"


def test_a_missing_target_dataset_says_how_to_install_it(tmp_path: Path):
    morph = Registry.discover().get("degradation", "morph").build(
        {"target": "fashion-mnist", "target_params": {"source": "idx", "idx_dir": str(tmp_path)}},
        checks_context(),
    )
    with pytest.raises(DataError, match=r"dataset-fashion-mnist.*degradation.target = \{ name"):
        morph.sample_params(make_test_images(2), torch.Generator())


@pytest.mark.skipif(
    not (FASHION / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)
def test_the_example_draws_distinct_test_split_clothes_for_generation():
    from coldkit.config import load_experiment
    from coldkit.data.splits import DatasetReader

    registry = Registry.discover()
    experiment = load_experiment(EXAMPLE, registry)
    reader = DatasetReader(registry, 32)
    context = BuildContext(32, 1, 20, split="test", data=reader)
    morph = experiment.degradation.build(context)
    prior = experiment.prior.build(
        BuildContext(32, 1, 20, split="test", data=reader, degradation=morph)
    )
    digits = torch.rand(40, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    x_T, params = degrade_fully_with_params(morph, digits, seed=0)
    prior.fit(x_T, seed=0, params=params)
    x_T, params = draw_from_prior(prior, morph, 1000, torch.Generator().manual_seed(0))
    assert x_T.shape == (1000, 1, 32, 32)
    assert len(torch.unique(params["z"].flatten(1), dim=0)) == 1000  # 1,000 distinct clothes
    keep, mix = float(morph.keep[-1]), float(morph.mix[-1])
    assert abs(keep - 0.05**0.5) < 1e-9  # the example keeps a faint digit at T
    digit_part = (x_T - mix * params["z"]) / keep
    assert digit_part.min() > -1e-4 and digit_part.max() < 1 + 1e-4
    assert [source["split"] for source in reader.sources] == ["test"]
    assert reader.sources[0]["images"] == 10000
