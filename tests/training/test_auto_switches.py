"""What ``"auto"`` turns on, per device and per CPU (the capability probe replaced by fake
descriptions), why the run says it did, forced values, the bf16 input and output layers kept in
float32, and a compile that fails while training. No timing assertions: benchmarks measure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import coldkit.api as ck
from coldkit.config import SamplingSection, TrainSection
from coldkit.runtime import acceleration, auto
from coldkit.runtime.acceleration import Float32Forward, Switches, prepare_model, resolve
from coldkit.runtime.auto import COMPILE_MIN_STEPS, Capability
from tests.conftest import tiny_experiment
from tests.training.test_acceleration import make_trainer, tiny_unet

REAL_PROBE = auto.probe  # before the suite's fixture replaces it with a plain CPU
CPU = torch.device("cpu")
PLAIN_CPU = Capability("cpu", None, "no avx512_bf16/amx_bf16 on this CPU")
AVX512_BF16 = Capability("cpu", "avx512_bf16")
AMX = Capability("cpu", "amx_bf16")
H100 = Capability("cuda", "NVIDIA H100")
OLD_GPU = Capability("cuda", None, "no native bf16 on this GPU")
APPLE = Capability("mps", None, "no native bf16 known on mps")
LONG, SHORT = COMPILE_MIN_STEPS, COMPILE_MIN_STEPS - 1


@pytest.fixture
def compiler(monkeypatch):
    """As if torch.compile could run on every device type (CI machines without a compiler)."""
    monkeypatch.setattr(acceleration, "compile_unavailable", lambda device: None)
    monkeypatch.setattr(acceleration, "autocast_unsupported", lambda choice, device: None)


# ----------------------------------------------------------------------- the documented table
@pytest.mark.parametrize(
    ("capability", "where", "steps", "expected"),
    [
        (PLAIN_CPU, "train", 4000, (False, True, "off")),
        (PLAIN_CPU, "train", LONG, (True, True, "off")),
        # native bf16 is on (it kept the rows: BF16_KEEPS_RESULTS), channels-last off beside it
        (AVX512_BF16, "train", 4000, (False, False, "bf16")),
        (AMX, "train", LONG, (True, False, "bf16")),
        (AMX, "sampling", None, (False, False, "bf16")),
        (PLAIN_CPU, "sampling", None, (False, True, "off")),
        (H100, "train", SHORT, (False, False, "bf16")),
        (H100, "sampling", None, (False, False, "bf16")),
        (OLD_GPU, "train", LONG, (True, False, "off")),
        (APPLE, "train", LONG, (False, False, "off")),
    ],
)
def test_auto_resolves_to_the_documented_choice(compiler, capability, where, steps, expected):
    section = TrainSection(steps=steps) if where == "train" else SamplingSection()
    device = torch.device(capability.device_type)
    switches = resolve(section, device, where, steps, capability)
    assert (switches.compile, switches.channels_last, switches.autocast) == expected
    assert len(switches.reasons) == 3 and all(r.startswith(f"{where}.auto: ")
                                              for r in switches.reasons)


def test_the_reasons_name_what_decided(monkeypatch):
    native = resolve(TrainSection(steps=4000), CPU, "train", 4000, AVX512_BF16)
    assert native.autocast == "bf16" and "train.auto: bf16 on (avx512_bf16)" in native.reasons
    assert any("channels-last off (beside bf16" in reason for reason in native.reasons)
    # Were bf16 measured not to keep results, native bf16 would stay off, naming the capability.
    monkeypatch.setattr(auto, "BF16_KEEPS_RESULTS", False)
    held = resolve(TrainSection(steps=4000), CPU, "train", 4000, AVX512_BF16)
    assert held.autocast == "off" and held.channels_last
    assert any(r.startswith("train.auto: bf16 off (avx512_bf16 computes it, but bf16 did not")
               and 'autocast = "bf16" forces it' in r for r in held.reasons)
    off = resolve(TrainSection(steps=4000), CPU, "train", 4000, PLAIN_CPU)
    assert "train.auto: bf16 off (no avx512_bf16/amx_bf16 on this CPU)" in off.reasons
    assert any("compile off (4000 steps do not repay" in reason for reason in off.reasons)
    assert "bf16 off (no avx512_bf16" in off.describe()
    assert off.record()["why"] == list(off.reasons)


def test_auto_keeps_float32_for_a_restorer_that_names_no_float32_layers():
    plain = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 1, 3, padding=1))
    switches = resolve(TrainSection(steps=4000), CPU, "train", 4000, AVX512_BF16, plain)
    assert switches.autocast == "off" and switches.channels_last
    assert any("names no float32_layers()" in reason for reason in switches.reasons)
    unet = resolve(TrainSection(steps=4000), CPU, "train", 4000, AVX512_BF16, tiny_unet())
    assert unet.autocast == "bf16"
    forced = resolve(TrainSection(steps=4000, autocast="bf16"), CPU, "train", 4000, AVX512_BF16,
                     plain)
    assert forced.autocast == "bf16"  # forcing it is honoured


@pytest.mark.parametrize("capability", [PLAIN_CPU, AMX])
def test_forced_values_are_honoured(compiler, capability):
    forced_on = TrainSection(steps=10, compile=True, channels_last=True, autocast="bf16")
    switches = resolve(forced_on, CPU, "train", 10, capability)
    assert (switches.compile, switches.channels_last, switches.autocast) == (True, True, "bf16")
    assert not switches.reasons  # nothing was left to "auto"
    forced_off = TrainSection(steps=LONG, compile=False, channels_last=False, autocast="off")
    switches = resolve(forced_off, CPU, "train", LONG, capability)
    assert not switches.any and not switches.reasons


def test_only_the_keys_left_at_auto_follow_the_probe():
    switches = resolve(TrainSection(steps=4000, autocast="off"), CPU, "train", 4000, AMX)
    assert switches.channels_last and switches.autocast == "off"
    assert not any("bf16" in reason for reason in switches.reasons)


# ----------------------------------------------------------------------------- the probe
def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx512f amx_bf16\n")
    assert auto.cpu_flags(str(cpuinfo)) == {"fpu", "avx512f", "amx_bf16"}
    assert auto.cpu_flags(str(tmp_path / "missing")) == frozenset()


@pytest.mark.parametrize(
    ("flags", "found"),
    [({"avx512f", "avx512_bf16"}, "avx512_bf16"), ({"avx512f", "amx_bf16", "avx512_bf16"},
                                                     "amx_bf16"), ({"avx512f", "avx2"}, None)],
)
def test_the_probe_finds_native_bf16_in_the_cpu_flags(monkeypatch, flags, found):
    monkeypatch.setattr(auto, "cpu_flags", lambda: frozenset(flags))
    capability = REAL_PROBE(CPU)
    assert capability.device_type == "cpu" and capability.bf16 == found
    if found is None:
        assert capability.looked_at == "no avx512_bf16/amx_bf16 on this CPU"


def test_resolve_asks_the_probe(monkeypatch):
    monkeypatch.setattr(auto, "probe", lambda device: AMX)
    assert "bf16 on (amx_bf16)" in resolve(SamplingSection(), CPU, "sampling").reasons[-1]
    assert resolve(SamplingSection(), CPU, "sampling").autocast == "bf16"
    assert resolve(SamplingSection(autocast="off"), CPU, "sampling").autocast == "off"


# ---------------------------------------------------- bf16: input and output layers in float32
class Recorder:
    """The dtype each watched layer returned, during one forward."""

    def __init__(self, layers: dict[str, nn.Module]) -> None:
        self.dtypes: dict[str, torch.dtype] = {}
        for name, layer in layers.items():
            layer.register_forward_hook(
                lambda module, args, output, name=name: self.dtypes.__setitem__(name, output.dtype)
            )


def test_bf16_keeps_the_unets_input_level_and_last_layer_in_float32():
    model = tiny_unet()
    assert acceleration.end_layers(model) == [
        model.stem, model.down[0], model.downsample[0], model.head[-1]
    ]
    first_level = model.down[0].blocks[0].conv1
    middle = model.middle.blocks[0].conv1
    recorder = Recorder({"stem": model.stem, "head": model.head[-1], "first level": first_level,
                         "middle": middle})
    prepare_model(model, Switches("cpu", autocast="bf16"))
    x, t = torch.rand(2, 1, 16, 16), torch.tensor([1, 3])
    assert model(x, t).dtype == torch.float32
    assert recorder.dtypes == {"stem": torch.float32, "head": torch.float32,
                               "first level": torch.float32, "middle": torch.bfloat16}
    prepare_model(model, Switches("cpu", autocast="bf16", float32_ends=False))
    model(x, t)
    assert recorder.dtypes["stem"] == torch.bfloat16
    assert recorder.dtypes["first level"] == torch.bfloat16
    prepare_model(model, Switches("cpu"))  # all off: the layers are plain again
    assert not any(isinstance(m.__dict__.get("forward"), Float32Forward) for m in model.modules())


def test_a_restorer_that_names_no_float32_layers_keeps_its_first_and_last_convolution():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.SiLU(), nn.Conv2d(4, 4, 3, padding=1),
                          nn.SiLU(), nn.Conv2d(4, 1, 3, padding=1))
    assert acceleration.end_layers(model) == [model[0], model[4]]
    assert acceleration.end_layers(nn.Sequential(nn.Linear(2, 2))) == []


def test_float32_ends_bring_bf16_closer_to_float32():
    """The ends in float32 remove the rounding of the input (and of the last layer): the
    output moves towards the float32 one."""
    model = tiny_unet()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
        x, t = 0.5 + 0.01 * torch.rand(4, 1, 16, 16), torch.tensor([1, 2, 3, 4])
        reference = model(x, t)
        prepare_model(model, Switches("cpu", autocast="bf16", float32_ends=False))
        whole = (model(x, t) - reference).abs().max()
        prepare_model(model, Switches("cpu", autocast="bf16"))
        ends = (model(x, t) - reference).abs().max()
    assert ends < whole


# -------------------------------------------------------------- compile failing in a run
def test_a_failing_compile_falls_back_with_one_log_line(tmp_path: Path, monkeypatch):
    def broken(fn, *args, **kwargs):
        def run(*a, **k):
            raise RuntimeError("no backend here")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(acceleration, "compile_unavailable", lambda device: None)
    said: list[str] = []
    trainer = make_trainer(tmp_path, steps=3, compile=True)
    trainer = type(trainer)(
        tiny_unet(), trainer.degradation, trainer.batches, trainer.settings, 0, CPU,
        tmp_path / "again.pt", notify=said.append,
    )
    assert trainer.switches.compile
    state = trainer.fit()
    assert state.step == 3 and all(torch.isfinite(torch.tensor(state.losses)))
    assert len(said) == 1 and "torch.compile failed" in said[0] and "eagerly" in said[0]


def test_run_json_records_the_switches_and_why(tmp_path: Path):
    experiment = tiny_experiment(train={"channels_last": False})
    ck.train(experiment, tmp_path / "run", progress=False)
    switches = json.loads((tmp_path / "run" / "run.json").read_text())["switches"]
    assert switches["train"]["channels_last"] is False and switches["train"]["autocast"] == "off"
    assert "train.auto: bf16 off (no avx512_bf16/amx_bf16 on this CPU)" in switches["train"]["why"]
    assert switches["sampling"]["channels_last"] is True  # auto on the CPU
    assert "sampling.auto: channels-last on (measured faster on cpu)" in switches["sampling"]["why"]
    assert "train.auto: bf16 off (no avx512_bf16/amx_bf16 on this CPU)" in switches["train"]["why"]
    assert not any("channels-last" in line for line in switches["train"]["why"])
    assert switches["sampling"]["compile"] is False
    assert any(line.startswith("sampling.auto: compile off") for line in switches["sampling"]["why"])
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "train.auto: bf16 off (no avx512_bf16/amx_bf16 on this CPU)" in log


# ------------------------------------------------------- evaluation follows [sampling]'s auto
def test_evaluation_follows_the_sampling_switches_and_the_instruments_stay_float32(
    tmp_path: Path, monkeypatch
):
    """Re-evaluating one trained run where "auto" turns bf16 on (native bf16): Algorithm 2 and
    the direct
    call over the held-out split run in bf16 (their rows change), while the degraded row and its
    FID, which no restorer touches, stay as they were: the FID network is a measuring
    instrument and runs in float32 on every machine."""
    root = tmp_path / "run"
    plain = ck.train(tiny_experiment(), root, progress=False).metrics["rows"]
    monkeypatch.setattr(auto, "probe", lambda device: AMX)
    switched = ck.train(root, progress=False).metrics["rows"]
    assert switched["degraded"] == plain["degraded"]
    for row in ("direct", "sampled"):
        assert switched[row]["rmse"] != plain[row]["rmse"]
        assert switched[row]["rmse"] == pytest.approx(plain[row]["rmse"], rel=0.05)
    log = (root / "log.txt").read_text()
    assert "sampling switches: compile off, channels-last off, autocast bf16" in log
    assert "sampling.auto: bf16 on (amx_bf16)" in log
    why = json.loads((root / "run.json").read_text())["switches"]["sampling"]["why"]
    assert "sampling.auto: bf16 on (amx_bf16)" in why


# ------------------------------------------- a standardised input: only the ends stay float32
def standardized_unet(seed: int = 0) -> nn.Module:
    return tiny_unet(seed, standardize_input=True)


def faint_pattern_images() -> torch.Tensor:
    """A heavily blurred image's shape: a level of 0.4 plus harmonics 0.1 % strong."""
    grid = torch.linspace(0, 2 * torch.pi, 16)
    pattern = torch.sin(grid)[:, None] * torch.cos(2 * grid)[None, :]
    return (0.4 + 0.001 * pattern).expand(2, 1, 16, 16).clone()


def test_a_standardized_input_reaches_the_network_at_unit_scale():
    model = standardized_unet()
    x = faint_pattern_images()
    network_input, _ = model._network_input(x, torch.zeros(2, model.input_stats.out_features))
    assert network_input.mean(dim=(1, 2, 3)).abs().max() < 1e-4
    assert torch.allclose(network_input.std(dim=(1, 2, 3), correction=0), torch.ones(2))
    # what bf16 keeps of the pattern: nearly all of it standardised, little of it as x * 2 - 1
    def kept(values: torch.Tensor) -> float:
        error = values.bfloat16().float() - values
        return 1 - float(error.std() / (values - values.mean()).std())
    assert kept(network_input) > 0.99
    assert kept(x * 2 - 1) < 0.8


def test_a_standardized_unet_keeps_only_its_ends_in_float32_and_starts_as_the_identity():
    model = standardized_unet()
    assert acceleration.end_layers(model) == [model.stem, model.head[-1]]
    first_level = model.down[0].blocks[0].conv1
    recorder = Recorder({"stem": model.stem, "head": model.head[-1], "first level": first_level})
    prepare_model(model, Switches("cpu", autocast="bf16"))
    x, t = faint_pattern_images(), torch.tensor([1, 3])
    restored = model(x, t)
    assert restored.dtype == torch.float32
    assert recorder.dtypes == {"stem": torch.float32, "head": torch.float32,
                               "first level": torch.bfloat16}
    assert torch.equal(restored, x)  # residual, zero-initialised head: the identity at first
    flat = torch.full((2, 1, 16, 16), 0.25)  # no contrast at all: finite, not a division by 0
    assert torch.isfinite(model(flat, t)).all()


def test_a_standardized_unet_trains_and_its_checkpoint_loads(tmp_path: Path):
    trainer = make_trainer(tmp_path, standardized_unet(), steps=3)
    trainer.fit()
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    fresh = standardized_unet(seed=1)
    fresh.load_state_dict(state["model"])
    assert any("input_stats" in key for key in fresh.state_dict())
    assert torch.equal(fresh.input_stats.weight, state["model"]["input_stats.weight"])
