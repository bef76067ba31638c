"""The speed switches (torch.compile, channels-last, autocast): each turns on and off without
changing results beyond float tolerance, checkpoints stay plain, bad values are config errors.
No timing assertions: the benchmark measures speed."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import coldkit.api as ck
from coldkit.runtime import acceleration
from coldkit.runtime.acceleration import Switches, prepare_model, resolve
from coldkit.runs.checkpoint import load_checkpoint
from coldkit.config import SamplingSection, TrainSection, build_experiment
from coldkit.errors import ConfigError
from coldkit.plugins import Registry
from coldkit.protocols import BuildContext
from coldkit.training.trainer import ExponentialMovingAverage, Trainer
from coldkit_plugins.blur import Blur, BlurParams
from coldkit_plugins.samplers import improved
from coldkit_plugins.unet import UNet, UNetParams
from tests.conftest import tiny_experiment

CPU = torch.device("cpu")
CHANNELS_LAST = Switches("cpu", channels_last=True)
BF16 = Switches("cpu", autocast="bf16")


def tiny_unet(seed: int = 0, **params: object) -> UNet:
    torch.manual_seed(seed)
    return UNet(
        UNetParams(width=8, multipliers=[1, 2], attention_levels=[1], **params),
        context=BuildContext(image_size=16, channels=1, steps=4),
    )


class Toy(nn.Module):
    """A restorer small enough to compile in seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.out = nn.Conv2d(4, 1, 3, padding=1)
        self.time = nn.Embedding(5, 4)

    def forward(self, x_t, t):
        h = torch.nn.functional.silu(self.conv(x_t) + self.time(t)[:, :, None, None])
        return x_t + self.out(h)


def blur() -> Blur:
    return Blur(BlurParams(steps=4, kernel_size=5, sigma=1.0))


def images() -> torch.Tensor:
    return torch.rand(32, 1, 16, 16, generator=torch.Generator().manual_seed(1))


def make_trainer(folder: Path, restorer: nn.Module | None = None, **settings) -> Trainer:
    restorer = restorer if restorer is not None else tiny_unet()
    defaults = dict(steps=6, batch_size=4, lr=1e-3, checkpoint_every=3, log_every=1)
    return Trainer(restorer, blur(), images(), TrainSection(**{**defaults, **settings}), 0, CPU,
                   folder / "last.pt")


def restore_batch(model: nn.Module) -> torch.Tensor:
    x0 = images()[:6]
    t = torch.tensor([1, 2, 3, 4, 4, 2])
    degradation = blur()
    with torch.no_grad():
        return improved(model.eval(), degradation, degradation.degrade(x0, t, {}), t, {})


# ------------------------------------------------------------------------------ defaults, config
def test_auto_on_a_cpu_without_native_bf16_is_channels_last_only():
    for section in (TrainSection(), SamplingSection()):
        switches = resolve(section, CPU, "train")
        assert (switches.compile, switches.channels_last, switches.autocast) == (False, True, "off")
        assert not switches.notes


def test_explicit_values_are_kept():
    switches = resolve(TrainSection(channels_last=True, autocast="bf16", compile=False), CPU, "x")
    assert switches.channels_last and switches.autocast == "bf16" and not switches.compile


def test_fp16_on_the_cpu_falls_back_with_a_note():
    switches = resolve(SamplingSection(autocast="fp16"), CPU, "sampling")
    assert switches.autocast == "off"
    assert len(switches.notes) == 1 and "sampling.autocast" in switches.notes[0]
    assert "bf16" in switches.notes[0]


def test_compile_without_a_compiler_falls_back_with_a_note(monkeypatch):
    monkeypatch.setattr(acceleration.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    switches = resolve(TrainSection(compile=True), CPU, "train")
    assert not switches.compile and "train.compile" in switches.notes[0]


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("train", "autocast", "fp32"),
        ("train", "compile", "sometimes"),
        ("train", "channels_last", "maybe"),
        ("sampling", "autocast", "half"),
        ("sampling", "fast", True),
    ],
)
def test_bad_switch_values_are_config_errors(section, key, value):
    data = tiny_experiment(**{section: {key: value}})
    with pytest.raises(ConfigError) as error:
        build_experiment(data, Registry.discover())
    assert f"{section}.{key}" in str(error.value)


def test_switches_are_read_from_the_config():
    data = tiny_experiment(
        train={"compile": False, "channels_last": True, "autocast": "bf16"},
        sampling={"autocast": "off", "channels_last": "auto"},
    )
    config = build_experiment(data, Registry.discover()).config
    assert config.train.channels_last is True and config.train.autocast == "bf16"
    assert config.sampling.autocast == "off" and config.sampling.compile == "auto"


# ------------------------------------------------------------------------- on and off: results
def test_channels_last_training_matches_float_tolerance(tmp_path: Path):
    plain = make_trainer(tmp_path / "a").fit().losses
    switched = make_trainer(tmp_path / "b", channels_last=True)
    assert switched.switches.channels_last
    losses = switched.fit().losses
    assert losses == pytest.approx(plain, rel=1e-5, abs=1e-6)


def test_bf16_autocast_training_stays_close(tmp_path: Path):
    plain = make_trainer(tmp_path / "a", steps=12).fit().losses
    trainer = make_trainer(tmp_path / "b", steps=12, autocast="bf16")
    losses = trainer.fit().losses
    assert all(math.isfinite(loss) for loss in losses)
    assert losses == pytest.approx(plain, abs=2e-2)
    # it learns as the float32 run does: the mean of the last steps falls as much, within bf16
    drop = lambda values: sum(values[:3]) / 3 - sum(values[-3:]) / 3  # noqa: E731
    assert drop(losses) == pytest.approx(drop(plain), abs=2e-2)


@pytest.mark.parametrize(
    "switches, tolerance",
    [(CHANNELS_LAST, 1e-5), (BF16, 2e-2), (Switches("cpu", channels_last=True, autocast="bf16"), 2e-2)],
    ids=["channels_last", "bf16", "both"],
)
def test_sampling_outputs_match(switches: Switches, tolerance: float):
    reference = restore_batch(tiny_unet())
    model = prepare_model(tiny_unet(), switches)
    restored = restore_batch(model)
    assert restored.dtype == torch.float32 and restored.is_contiguous()
    assert (restored - reference).abs().max() < tolerance


def test_a_switch_turns_off_again():
    model = tiny_unet()
    reference = restore_batch(tiny_unet())
    prepare_model(model, Switches("cpu", channels_last=True, autocast="bf16"))
    assert "forward" in model.__dict__
    prepare_model(model, Switches("cpu"))
    assert "forward" not in model.__dict__ and acceleration.applied_switches(model) is None
    assert all(p.is_contiguous() for p in model.parameters())
    assert torch.equal(restore_batch(model), reference)


def test_state_dict_keys_and_deepcopy_stay_plain():
    model = tiny_unet()
    keys = list(model.state_dict())
    prepare_model(model, Switches("cpu", compile=True, channels_last=True))  # compiles lazily
    assert list(model.state_dict()) == keys
    assert not any(key.startswith("_orig_mod") for key in model.state_dict())
    twin = copy.deepcopy(model)
    assert acceleration.applied_switches(twin) == acceleration.applied_switches(model)
    tiny_unet(seed=3).load_state_dict(model.state_dict())


def test_the_ema_copy_is_plain(tmp_path: Path):
    trainer = make_trainer(tmp_path, channels_last=True, autocast="bf16")
    assert acceleration.applied_switches(trainer.restorer) is not None
    assert acceleration.applied_switches(trainer.ema.model) is None


def test_compile_failure_falls_back_to_eager(monkeypatch):
    def broken(fn, *args, **kwargs):
        def run(*a, **k):
            raise RuntimeError("no backend here")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    model = prepare_model(tiny_unet(), Switches("cpu", compile=True))
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        restored = restore_batch(model)
    assert torch.equal(restored, restore_batch(tiny_unet()))


@pytest.mark.skipif(
    acceleration.compile_unavailable(CPU) is not None,
    reason=f"torch.compile cannot run here: {acceleration.compile_unavailable(CPU)}",
)
def test_compile_matches_eager_and_checkpoints_cross(tmp_path: Path, recwarn):
    """One short compiled training run (a toy restorer: compiling takes seconds, not minutes)."""
    torch.manual_seed(0)
    plain_model = Toy()
    compiled_model = copy.deepcopy(plain_model)
    plain = make_trainer(tmp_path / "plain", plain_model, steps=3)
    compiled = make_trainer(tmp_path / "compiled", compiled_model, steps=3, compile=True)
    assert compiled.switches.compile
    plain_losses = plain.fit().losses
    compiled_losses = compiled.fit().losses
    assert not [w for w in recwarn if "torch.compile failed" in str(w.message)]
    forward = compiled.restorer.forward
    assert forward.compiled is not None and not forward.compile_failed  # it ran compiled
    assert compiled_losses == pytest.approx(plain_losses, rel=1e-4, abs=1e-5)
    state = load_checkpoint(tmp_path / "compiled" / "last.pt")
    assert not any("_orig_mod" in key for key in state["model"])
    # a compiled run's checkpoint resumes uncompiled, and the other way round
    into_plain = make_trainer(tmp_path / "compiled", Toy(), steps=3)
    assert into_plain.resume() and into_plain.state.step == 3
    for a, b in zip(into_plain.restorer.parameters(), compiled.restorer.parameters()):
        assert torch.equal(a, b)
    into_compiled = make_trainer(tmp_path / "plain", Toy(), steps=3, compile=True)
    assert into_compiled.resume()
    for a, b in zip(into_compiled.ema.model.parameters(), plain.ema.model.parameters()):
        assert torch.equal(a, b)


def test_checkpoints_cross_switches(tmp_path: Path):
    trainer = make_trainer(tmp_path, steps=3, channels_last=True, autocast="bf16")
    trainer.fit()
    other = make_trainer(tmp_path, steps=3)
    assert other.resume() and other.state.step == 3
    for a, b in zip(other.restorer.parameters(), trainer.restorer.parameters()):
        assert torch.equal(a, b)


# -------------------------------------------------------------------------------- grad scaler
def test_grad_scaler_only_for_fp16_on_cuda():
    assert not acceleration.grad_scaler(Switches("cpu", autocast="bf16")).is_enabled()
    assert not acceleration.grad_scaler(Switches("cpu")).is_enabled()


def test_scaler_path_trains_the_same_and_resumes_exactly(tmp_path: Path):
    """The fp16 path on CUDA, exercised on the CPU: an enabled scaler (powers of two: exact)
    gives the same losses; its state is saved and restored through a weights-only checkpoint."""
    plain = make_trainer(tmp_path / "a", steps=4).fit().losses
    scaled = make_trainer(tmp_path / "b", steps=4)
    scaled.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=2)
    assert scaled.fit().losses == pytest.approx(plain, rel=1e-6)
    saved = load_checkpoint(tmp_path / "b" / "last.pt")["grad_scaler"]
    assert saved["scale"] == scaled.scaler.get_scale() != 2.0**10  # it grew: state, not defaults
    resumed = make_trainer(tmp_path / "b", steps=4)
    resumed.scaler = torch.amp.GradScaler("cpu")
    assert resumed.resume() and resumed.scaler.get_scale() == scaled.scaler.get_scale()
    assert load_checkpoint(tmp_path / "a" / "last.pt")["grad_scaler"] is None


# ------------------------------------------------------------------------------------- the EMA
def test_multi_tensor_ema_equals_the_per_parameter_loop():
    model = tiny_unet()
    ema = ExponentialMovingAverage(model, 0.99)
    reference = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for update in range(1, 31):
            for parameter in model.parameters():
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.01)
            ema.update(model)
            decay = min(0.99, (1 + update) / (10 + update))
            for average, current in zip(reference.parameters(), model.parameters()):
                average.lerp_(current, 1.0 - decay)
    for a, b in zip(ema.model.parameters(), reference.parameters()):
        assert (a - b).abs().max() <= 1e-7


# --------------------------------------------------------------------------- a whole run
def test_run_with_sampling_switches_scores_the_same(tmp_path: Path):
    base = ck.train(tiny_experiment(), tmp_path / "plain", progress=False).metrics
    switched = ck.train(
        tiny_experiment(sampling={"channels_last": True}, train={"channels_last": True}),
        tmp_path / "switched", progress=False,
    ).metrics
    assert switched["final_loss"] == pytest.approx(base["final_loss"], rel=1e-4)
    for row in ("direct", "sampled"):
        assert switched["rows"][row]["rmse"] == pytest.approx(base["rows"][row]["rmse"], rel=1e-4)


def test_switches_may_change_on_resume(tmp_path: Path):
    ck.train(tiny_experiment(), tmp_path / "run", progress=False)
    run = ck.train(
        tmp_path / "run", overrides=["train.channels_last=true", "sampling.autocast=bf16"],
        progress=False,
    )
    assert run.experiment.config.sampling.autocast == "bf16"
