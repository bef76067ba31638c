"""Priors and generation: fit -> save -> load -> sample, seeded determinism, the stochastic
sampler, `coldkit generate` and the `[generate]` stage of `coldkit run` on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from coldkit.cli import app
from coldkit.config import ResolvedPlugin, write_toml
from coldkit.errors import CheckpointError, ConfigError
from coldkit.generation.priors import degrade_fully, fit_prior, load_prior, save_prior
from coldkit.generation.sampling import bind_sampler, generate_samples
from coldkit.plugins import Registry
from coldkit.testing import check_prior, make_test_images
from coldkit_plugins.blur import Blur, BlurParams
from coldkit_plugins.priors import Gmm, GmmParams, PcaGmm, PcaGmmParams
from coldkit_plugins.samplers import improved, stochastic
from tests.conftest import tiny_experiment

runner = CliRunner()


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


@pytest.fixture(scope="module")
def blurred() -> torch.Tensor:
    """D(x0, T) of 64 small grey test images: a blur that keeps some shape."""
    images = make_test_images(64, 16, 1, seed=3)
    blur = Blur(BlurParams(steps=4, kernel_size=5, sigma=1.0))
    return degrade_fully(blur, images, seed=0)


def resolved(registry: Registry, name: str, **params) -> ResolvedPlugin:
    record = registry.get("prior", name)
    return ResolvedPlugin(record, record.params_model.model_validate(params))


class ShapeRestorer(torch.nn.Module):
    """A restorer that depends on its input and level, so samplers have something to follow."""

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (x_t * 1.5 - 0.1 * t.view(-1, 1, 1, 1) / 4).clamp(0, 1)


# ---------------------------------------------------------------------------------- priors
@pytest.mark.parametrize(
    "factory",
    [lambda: Gmm(GmmParams(components=3)), lambda: PcaGmm(PcaGmmParams(components=3, dims=6))],
    ids=["gmm", "pca-gmm"],
)
def test_builtin_priors_pass_the_prior_contract(factory):
    assert check_prior(factory) == [
        "interface",
        "sample shape, dtype, finite",
        "seeded",
        "state_dict round trip",
    ]


def test_check_prior_rejects_an_unseeded_prior():
    class Unseeded(Gmm):
        def sample(self, count, generator):
            return super().sample(count, torch.Generator().manual_seed(int(torch.randint(9, ()))))

    with pytest.raises(AssertionError, match="seed"):
        check_prior(lambda: Unseeded(GmmParams(components=2)))


def test_check_prior_rejects_a_prior_that_forgets_its_fit_in_state_dict():
    class Forgetful(PcaGmm):
        def state_dict(self):
            state = super().state_dict()
            state["centre"] = torch.zeros_like(state["centre"])
            return state

    with pytest.raises(AssertionError, match="state_dict"):
        check_prior(lambda: Forgetful(PcaGmmParams(components=2, dims=4)))


def test_prior_round_trip_through_a_file_loads_without_pickle(registry, blurred, tmp_path):
    fitted = fit_prior(
        resolved(registry, "pca-gmm", components=4, dims=8), Blur(BlurParams(steps=1)),
        make_test_images(64, 16, 1, seed=3), seed=0,
    )
    path = save_prior(fitted, tmp_path / "prior.pt")
    raw = torch.load(path, weights_only=True)  # data only: no pickled objects
    assert raw["name"] == "pca-gmm" and json.loads(raw["params"])["dims"] == 8
    loaded = load_prior(path, registry)
    assert loaded.params == fitted.params
    draw = lambda prior: prior.sample(16, torch.Generator().manual_seed(7))  # noqa: E731
    assert torch.equal(draw(fitted.prior), draw(loaded.prior))


def test_a_broken_prior_file_is_a_checkpoint_error(registry, tmp_path):
    path = tmp_path / "prior.pt"
    path.write_bytes(b"not a prior")
    with pytest.raises(CheckpointError, match="prior.pt"):
        load_prior(path, registry)


def test_gmm_draws_flat_images_and_pca_gmm_keeps_shape(blurred):
    gmm = Gmm(GmmParams(components=2, noise=0.0))
    gmm.fit(blurred)
    flat = gmm.sample(8, torch.Generator().manual_seed(0))
    assert float(flat.std(dim=(2, 3)).max()) < 1e-6  # the paper's prior: one value per channel
    pca = PcaGmm(PcaGmmParams(components=4, dims=8))
    pca.fit(blurred)
    shaped = pca.sample(256, torch.Generator().manual_seed(0))
    # Shape survives: the spatial spread of a draw is like that of the real D(x0, T).
    real_spread = float(blurred.std(dim=(2, 3)).mean())
    assert float(shaped.std(dim=(2, 3)).mean()) == pytest.approx(real_spread, rel=0.3)
    # And the draws are spread like the data, not collapsed to its mean.
    assert float(shaped.std(dim=0).mean()) == pytest.approx(float(blurred.std(dim=0).mean()), rel=0.3)


def test_gmm_noise_breaks_the_symmetry(blurred):
    gmm = Gmm(GmmParams(components=1, noise=0.01))
    gmm.fit(blurred)
    draws = gmm.sample(4, torch.Generator().manual_seed(0))
    assert 0.005 < float(draws.std(dim=(2, 3)).mean()) < 0.02


# -------------------------------------------------------------------------------- samplers
def test_stochastic_sampler_without_noise_is_algorithm_2():
    blur = Blur(BlurParams(steps=4, kernel_size=5, sigma=1.0))
    x0 = make_test_images(6, 16, 1)
    t = torch.tensor([4, 4, 3, 2, 1, 0])
    x_t = blur.degrade(x0, t, {})
    expected = improved(ShapeRestorer(), blur, x_t, t, {})
    assert torch.equal(stochastic(ShapeRestorer(), blur, x_t, t, {}, noise=0.0), expected)
    noisy = stochastic(
        ShapeRestorer(), blur, x_t, t, {}, noise=0.05, generator=torch.Generator().manual_seed(0)
    )
    assert not torch.allclose(noisy[:4], expected[:4])
    assert torch.equal(noisy[5], x_t[5])  # t = 0: nothing to do, no noise added


def test_step_noise_needs_a_sampler_that_takes_it():
    with pytest.raises(ConfigError, match="stochastic"):
        bind_sampler(improved, "improved", 0.01, torch.Generator())
    assert bind_sampler(improved, "improved", 0.0, torch.Generator()) is not None


# ------------------------------------------------------------------------------ generation
def _generate(prior, seed, noise=0.0, count=12):
    blur = Blur(BlurParams(steps=4, kernel_size=5, sigma=1.0))
    generator = torch.Generator().manual_seed(seed + 1)
    sampler = bind_sampler(stochastic, "stochastic", noise, generator)
    return generate_samples(ShapeRestorer(), blur, prior, sampler, count, seed=seed, batch_size=5)


def test_generation_is_deterministic_for_a_seed(blurred):
    prior = PcaGmm(PcaGmmParams(components=3, dims=6))
    prior.fit(blurred)
    first = _generate(prior, seed=4, noise=0.02)
    assert first.shape == (12, 1, 16, 16) and float(first.min()) >= 0 and float(first.max()) <= 1
    assert torch.equal(first, _generate(prior, seed=4, noise=0.02))
    assert not torch.equal(first, _generate(prior, seed=5, noise=0.02))


def test_without_noise_the_same_prior_point_gives_the_same_sample(blurred):
    class OnePoint(PcaGmm):
        def sample(self, count, generator):  # every draw is the same point, x_T of one image
            super().sample(count, generator)
            return blurred[:1].expand(count, -1, -1, -1).contiguous()

    prior = OnePoint(PcaGmmParams(components=1, dims=4))
    prior.fit(blurred)
    quiet = _generate(prior, seed=0, noise=0.0)
    assert torch.equal(quiet, quiet[:1].expand_as(quiet))
    noisy = _generate(prior, seed=0, noise=0.05)
    assert not torch.equal(noisy, noisy[:1].expand_as(noisy))  # step noise alone diversifies


# ----------------------------------------------------------------------------- run and CLI
GENERATE = {
    "num_samples": 24,
    "batch_size": 10,
    "grid_size": 12,
    "judge": False,
    "prior": {"name": "pca-gmm", "components": 2, "dims": 4},
}


@pytest.fixture(scope="module")
def generated_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("generate")
    config = folder / "tiny.toml"
    write_toml(config, tiny_experiment(generate=GENERATE))
    out = folder / "run"
    result = runner.invoke(app, ["run", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_run_with_a_generate_section_writes_samples_and_prior(generated_run):
    for name in ("generated.png", "samples.pt", "generation.json", "priors/pca-gmm.pt"):
        assert (generated_run / name).is_file(), name
    samples = torch.load(generated_run / "samples.pt", weights_only=True)
    assert samples.shape == (24, 1, 16, 16)
    summary = json.loads((generated_run / "generation.json").read_text())
    assert summary["prior"]["name"] == "pca-gmm" and summary["num_samples"] == 24


def test_generate_command_writes_grid_and_tensor(generated_run, tmp_path):
    out = tmp_path / "gen"
    args = ["generate", str(generated_run), "-n", "7", "--prior", "gmm", "--seed", "3",
            "--out", str(out), "--batch-size", "4", "--no-judge"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    samples = torch.load(out / "samples.pt", weights_only=True)
    assert samples.shape == (7, 1, 16, 16)
    assert (out / "generated.png").is_file()
    assert (generated_run / "priors" / "gmm.pt").is_file()  # fitted once, kept in the run
    # Again, in other batches: the prior is loaded, not refitted; blur and Algorithm 2 have no
    # randomness of their own, so the batch size does not change the samples.
    again = runner.invoke(app, args[:-4] + [str(tmp_path / "again"), "--batch-size", "3", "--no-judge"])
    assert again.exit_code == 0 and "loaded from" in again.output
    assert torch.allclose(
        samples, torch.load(tmp_path / "again" / "samples.pt", weights_only=True), atol=1e-6
    )


def test_generate_default_folder_and_stochastic_sampler(generated_run):
    result = runner.invoke(
        app, ["generate", str(generated_run), "-n", "5", "--sampler", "stochastic",
              "--step-noise", "0.01", "--no-judge"],
    )
    assert result.exit_code == 0, result.output
    folder = generated_run / "generated" / "pca-gmm-seed0-n5"
    assert (folder / "generated.png").is_file() and (folder / "samples.pt").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--prior", "nope"], "Unknown prior 'nope'"),
        (["--step-noise", "0.1"], "stochastic"),
    ],
)
def test_generate_errors_are_one_paragraph_exit_2(generated_run, args, message):
    result = runner.invoke(app, ["generate", str(generated_run), "-n", "2", "--no-judge", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_generate_on_a_folder_that_is_not_a_run(tmp_path):
    result = runner.invoke(app, ["generate", str(tmp_path)])
    assert result.exit_code == 2 and "not a coldkit run folder" in result.output


def test_list_priors_json(registry):
    result = runner.invoke(app, ["list-priors", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert {"gmm", "pca-gmm"} <= set(rows)
    assert rows["gmm"]["distribution"] == "coldkit" and "noise" in rows["gmm"]["parameters"]


def test_unknown_prior_in_config_lists_the_valid_ones(tmp_path):
    config = tmp_path / "bad.toml"
    write_toml(config, tiny_experiment(generate={"prior": {"name": "nope"}}))
    result = runner.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert "generate.prior.name" in result.output and "pca-gmm" in result.output


def test_degrade_fully_matches_the_degradation():
    blur = Blur(BlurParams(steps=3, kernel_size=5, sigma=1.0))
    images = make_test_images(7, 16, 1)
    expected = blur.degrade(images, torch.full((7,), 3), {})
    assert torch.allclose(degrade_fully(blur, images, seed=0, batch_size=3), expected)
    assert F.l1_loss(expected, images) > 0.01


def test_run_judges_generation_on_a_labelled_set(tmp_path):
    config = tmp_path / "judged.toml"
    write_toml(
        config,
        tiny_experiment(generate={**GENERATE, "judge": True, "num_samples": 20}),
    )
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "generation.json").read_text())
    report = summary["report"]
    assert report["count"] == 20 and report["num_classes"] == 4  # synthetic: disc quadrants
    assert sum(report["class_histogram"]) == 20
    assert report["frechet_floor"] > 0 and report["frechet_ratio"] > 0
    assert summary["fid"] >= 0.0 and summary["fid_images"] == 8 and summary["fid_note"] is None
    assert (out / "generation.md").is_file() and (out / "judge" / "classifier.pt").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["generation"]["report"]["count"] == 20
    # `coldkit generate` reuses the run's classifier and prior.
    again = runner.invoke(app, ["generate", str(out), "-n", "6", "--out", str(tmp_path / "g")])
    assert again.exit_code == 0, again.output
    assert again.output.count("loaded from") == 2
    assert json.loads((tmp_path / "g" / "generation.json").read_text())["report"]["count"] == 6


def test_generation_without_labels_says_why_it_is_not_judged(tmp_path):
    from coldkit.config import GenerateSection
    from coldkit.generation.stage import judge_for_run
    from coldkit.protocols import ImageSet

    messages: list[str] = []
    images = make_test_images(8, 16, 1)
    report, note = judge_for_run(
        images, GenerateSection(), tmp_path, lambda: ImageSet(images, "unlabelled"),
        lambda: images, 0, torch.device("cpu"), messages.append,
    )
    assert report is None and "no labels" in note and "generate.classifier" in note
    assert any("no labels" in message for message in messages)
    assert not (tmp_path / "judge").exists()
