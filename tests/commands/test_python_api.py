"""The Python API (coldkit.api, docs/python.md): the notebook session, on the tiny synthetic run."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console

import coldkit.api as ck
from coldkit.config import Experiment, write_toml
from coldkit.errors import CheckpointError, ConfigError
from coldkit.plugins import Registry
from coldkit.run import claimed_run

from tests.conftest import tiny_experiment

PRIOR = ["generate.prior.components=2", "generate.prior.dims=4"]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.discover()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, registry) -> tuple[ck.Run, Path]:
    """The session of docs/python.md: load a dict with overrides, train quietly."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("api") / "nb"
    exp = ck.load(tiny_experiment(), overrides=["train.steps=4", "name=nb"], registry=registry)
    run = ck.train(exp, out=out, progress=False, registry=registry)
    return run, out


@pytest.fixture(scope="module")
def x0() -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    return torch.rand(5, 1, 16, 16, generator=generator)


def test_importing_coldkit_stays_cheap():
    code = (
        "import sys, coldkit; "
        "assert 'coldkit.api' not in sys.modules and 'coldkit.run' not in sys.modules; "
        "assert coldkit.api.train is not None; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_load_a_dict_with_overrides_and_leave_the_dict_alone(registry):
    data = tiny_experiment()
    exp = ck.load(data, overrides=["train.steps=3", "degradation.steps=3"], registry=registry)
    assert isinstance(exp, Experiment)
    assert exp.config.train.steps == 3
    assert exp.degradation.params.steps == 3
    assert data["train"]["steps"] == 6 and data["degradation"]["steps"] == 4
    # an Experiment with more overrides: a new one
    again = ck.load(exp, overrides=["train.lr=0.01"], registry=registry)
    assert again.config.train.lr == 0.01 and again.config.train.steps == 3


def test_load_a_toml_file_and_a_run_folder(tiny_config, trained, registry):
    exp = ck.load(tiny_config, overrides=["train.steps=2"], registry=registry)
    assert exp.config.name == "tiny" and exp.config.train.steps == 2
    run, out = trained
    assert ck.load(out, registry=registry).to_dict() == run.experiment.to_dict()


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["train.steps"], "section.key=value"),
        (["train.stepz=3"], "train.stepz"),
        (["train.steps=-1"], "train.steps"),
        (["degradation.name=nope"], "nope"),
    ],
)
def test_a_bad_override_is_a_config_error(registry, overrides, match):
    with pytest.raises(ConfigError, match=match):
        ck.load(tiny_experiment(), overrides=overrides, registry=registry)


def test_train_writes_the_run_folder_and_returns_its_metrics(trained):
    run, out = trained
    assert run.root == out
    for name in ("config.toml", "metrics.json", "table.md", "figure.png", "checkpoints/last.pt"):
        assert (out / name).is_file(), name
    metrics = run.metrics
    assert metrics is not None
    assert set(metrics["rows"]) == {"degraded", "direct", "sampled"}
    for row in metrics["rows"].values():
        assert {"ssim", "rmse", "psnr"} <= set(row)
    assert metrics["train_steps"] == 4 and metrics["sampler"] == "improved"
    assert metrics["rows"] == json.loads((out / "metrics.json").read_text())["rows"]
    assert run.step == 4 and run.experiment.config.name == "nb"


def test_the_run_folder_is_the_one_the_cli_would_resume(trained, registry):
    run, out = trained
    # claimed_run (what `coldkit run` uses) accepts the folder back unchanged, and refuses
    # another model in it
    with claimed_run(out, None, [], registry) as (experiment, _):
        assert experiment.to_dict() == run.experiment.to_dict()
    with pytest.raises(ConfigError, match="different config"):
        ck.train(tiny_experiment(), out=out, overrides=["restorer.width=16"], progress=False,
                 registry=registry)


def test_open_gives_back_model_degradation_and_samplers(trained, registry):
    _, out = trained
    run = ck.open(out, registry=registry)
    assert run.step == 4 and run.steps == 4
    assert not run.restorer.training
    assert run.degradation.steps == 4
    assert run.sampler is registry.get("sampler", "improved").component
    assert run.get_sampler("direct") is registry.get("sampler", "direct").component
    assert run.metrics is not None and set(run.metrics["rows"]) == {"degraded", "direct", "sampled"}
    with pytest.raises(ConfigError, match="nope"):
        run.get_sampler("nope")


def test_open_refuses_what_is_not_a_trained_run(tmp_path, registry):
    with pytest.raises(ConfigError, match="not a coldkit run folder"):
        ck.open(tmp_path, registry=registry)
    write_toml(tmp_path / "config.toml", tiny_experiment())
    with pytest.raises(CheckpointError, match="no checkpoint"):
        ck.open(tmp_path, registry=registry)


def test_restore_of_the_fully_degraded_images_is_the_improved_sampler(trained, x0, registry):
    run, _ = trained
    x_t, params = run.degrade(x0, run.steps)
    t = torch.full((len(x0),), run.steps, dtype=torch.long)
    assert torch.allclose(x_t, run.degradation.degrade(x0, t, params))
    restored = run.restore(x_t, run.steps, params=params, sampler="improved")
    assert restored.shape == x0.shape
    improved = registry.get("sampler", "improved").component
    with torch.no_grad():
        expected = improved(run.restorer, run.degradation, x_t, t, params)
    assert torch.equal(restored, expected)
    # the direct sampler is one restorer call, and differs from Algorithm 2
    direct = run.restore(x_t, t, params=params, sampler="direct")
    with torch.no_grad():
        assert torch.equal(direct, run.restorer(x_t, t))
    assert not torch.equal(direct, restored)


def test_restore_with_a_noisy_sampler_is_seeded(trained, x0):
    run, _ = trained
    x_t, params = run.degrade(x0, run.steps)
    first = run.restore(x_t, run.steps, params=params, sampler="stochastic", seed=1)
    again = run.restore(x_t, run.steps, params=params, sampler="stochastic", seed=1)
    other = run.restore(x_t, run.steps, params=params, sampler="stochastic", seed=2)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    default = run.restore(x_t, run.steps, params=params, sampler="stochastic")
    assert torch.equal(default, run.restore(x_t, run.steps, params=params, sampler="stochastic",
                                            seed=run.experiment.config.seed))


def test_restore_refuses_levels_outside_the_run(trained, x0):
    run, _ = trained
    with pytest.raises(ConfigError, match="0..4"):
        run.restore(x0, run.steps + 1)
    with pytest.raises(ConfigError, match="one level per image"):
        run.restore(x0, torch.tensor([1, 2]))
    with pytest.raises(ConfigError, match="nope"):
        run.restore(x0, 1, sampler="nope")


def test_generate_is_deterministic_for_a_seed(trained):
    run, out = trained
    first = run.generate(6, prior="pca-gmm", seed=0, overrides=PRIOR)
    assert first.shape == (6, 1, 16, 16)
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert (out / "priors" / "pca-gmm.pt").is_file()  # fitted once, cached as coldkit generate does
    assert (out / "generated" / "pca-gmm-seed0-n6" / "samples.pt").is_file()
    again = run.generate(6, prior="pca-gmm", seed=0, overrides=PRIOR)
    assert torch.equal(first, again)
    other = run.generate(6, prior="pca-gmm", seed=1, overrides=PRIOR)
    assert not torch.equal(first, other)


def test_generate_uses_the_opened_runs_experiment(trained, monkeypatch, tmp_path):
    import coldkit.api as api_module

    run, _ = trained
    seen = []
    real = api_module.generate_from_run
    monkeypatch.setattr(
        api_module, "generate_from_run",
        lambda loaded, experiment, *rest: seen.append(experiment) or real(loaded, experiment, *rest),
    )
    monkeypatch.setattr(api_module, "build_experiment", lambda *a: pytest.fail("rebuilt"))
    run.generate(3, prior="pca-gmm", seed=2, overrides=PRIOR, out=tmp_path / "gen")
    (experiment,) = seen
    for section in ("dataset", "degradation", "restorer"):  # the opened run's, not rebuilt
        assert getattr(experiment, section) is getattr(run.experiment, section)
    assert experiment.registry is run.experiment.registry
    assert experiment.config.generate.num_samples == 3 and experiment.prior.record.name == "pca-gmm"


def test_a_command_on_an_opened_run_reads_through_its_one_dataset_reader(trained, tmp_path):
    from coldkit.runs.context import output_context

    run, out = trained
    before = run.context.data.notify
    context, folder = output_context(
        run, run.experiment, Console(quiet=True), tmp_path / "out", lambda paths: paths.root / "x"
    )
    with context:
        assert context.data is run.context.data  # one run, one reader
        assert context.data.notify is context.notify  # its notes go to the command's log
        assert context.device == run.device and context.paths.root == out
    assert run.context.data.notify is before  # and no longer once the command is done
    assert folder == tmp_path / "out" and folder.is_dir()


def test_evaluate_scores_the_run_again_with_a_console(trained, registry):
    run, out = trained
    buffer = io.StringIO()
    console = Console(file=buffer, width=120)
    metrics = ck.evaluate(
        run, overrides=["evaluate.num_images=4"], progress=console, registry=registry
    )
    assert metrics["num_images"] == 4 and metrics["train_steps"] == 4
    assert json.loads((out / "metrics.json").read_text())["num_images"] == 4
    assert "Table 1 rows" in buffer.getvalue()
    with pytest.raises(ConfigError, match="evaluate.nope"):
        ck.evaluate(run, overrides=["evaluate.nope=1"], registry=registry)


def test_run_images_are_the_datasets_split_at_the_models_size(trained):
    run, _ = trained
    images = run.images("test", count=3)
    assert images.shape == (3, 1, 16, 16)
    assert torch.equal(images, run.images("test")[:3])
    assert not torch.equal(images, run.images("train", count=3))


def test_the_session_in_docs_python_md_runs(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[2]
    page = (root / "docs" / "python.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    session = next(block for block in blocks if "ck.train(" in block)
    (tmp_path / "examples").mkdir()
    shutil.copy(root / "examples" / "smoke_synthetic.toml", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(session, "docs/python.md", "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["run"].metrics["train_steps"] == 20
    assert namespace["images"].shape == (16, 1, 16, 16)
    assert namespace["metrics"]["num_images"] == 8
    assert (tmp_path / "runs" / "nb" / "priors" / "pca-gmm.pt").is_file()


def test_open_applies_the_runs_sampling_switches(trained, registry, tmp_path):
    from coldkit.runtime import acceleration
    from coldkit.config import read_toml

    _, out = trained
    folders = {}
    for name, channels_last in (("plain", False), ("switched", True)):
        folders[name] = tmp_path / name
        shutil.copytree(out, folders[name])
        data = read_toml(folders[name] / "config.toml")
        data["sampling"] = {**data.get("sampling", {}), "channels_last": channels_last}
        write_toml(folders[name] / "config.toml", data)
    plain = ck.open(folders["plain"], registry=registry)
    fast = ck.open(folders["switched"], registry=registry)
    assert acceleration.applied_switches(fast.restorer).channels_last
    assert acceleration.applied_switches(plain.restorer) is None
    images = plain.images("test", 4)
    torch.testing.assert_close(fast.restore(images, t=2), plain.restore(images, t=2), atol=1e-5, rtol=1e-5)
