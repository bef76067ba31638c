"""What ``"auto"`` means for the speed switches (:mod:`coldkit.runtime.acceleration`) on one
device: :func:`probe` finds what the device computes natively, :func:`choices` turns that into a
value and a one-line reason per switch (``auto: bf16 on (avx512_bf16)``).

The rules, each from a measurement (docs/performance.md, "What auto turns on"):

* bf16 autocast: on where the processor computes bf16 itself (AVX-512 BF16 or AMX on x86,
  read from ``/proc/cpuinfo``; a GPU that ``torch.cuda.is_bf16_supported`` without emulation)
  and the restorer names the layers that stay float32 (``float32_layers()``, coldkit's U-Net
  does): ``mnist_blur`` trained and sampled so kept its Table 1 rows at 4,000 steps on the
  validation split (:data:`BF16_KEEPS_RESULTS`). A restorer that names none stays float32 (with
  only its first and last convolution in float32 the direct row lost 0.049 SSIM); elsewhere
  emulated bf16 is slower than float32. The reason names the native capability;
* channels-last: on only for the device types in :data:`CHANNELS_LAST_AUTO` (the CPU), and
  not beside bf16 (GroupNorm on channels-last bf16 tensors cost more than the layout saved);
* compile: in training only, for runs of at least :data:`COMPILE_MIN_STEPS` steps (compiling
  costs about a minute before the first step); never for sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

#: The x86 CPU features (``/proc/cpuinfo`` flags) with which the processor computes bfloat16
#: itself; elsewhere torch emulates bf16 (slower than float32, docs/performance.md).
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")

#: Whether ``"auto"`` may turn bf16 on where the processor computes it natively (for a restorer
#: that names its ``float32_layers``). On an AMD EPYC with AVX-512 BF16 (2026-12-07,
#: ``python -m benchmarks.bf16_numerics --steps 4000 --sample-in both``, validation split, seed
#: 0) ``mnist_blur`` trained and sampled in bf16 with the U-Net's input level and output layer in
#: float32 scored direct / sampled SSIM 0.717 / 0.633 against 0.722 / 0.637 in float32, inside
#: the seed spread of 0.008 (with only the first and last convolution in float32: 0.674 direct).
BF16_KEEPS_RESULTS = True

#: ``compile = "auto"`` in ``[train]`` compiles only runs of at least this many steps. On a quiet
#: 2-core Xeon, compiling the ``small`` U-Net's training step took one to two minutes with a cold
#: inductor cache (on a busy one, over 14 minutes), and compiled steps took 0.78-0.85 of the
#: ~0.11 s eager step: 17-24 ms saved a step, so 4,000-7,000 steps just repay a cold compile
#: (docs/performance.md, "What auto turns on"); 10,000 leaves a margin for slower compilers.
COMPILE_MIN_STEPS = 10_000

#: ``channels_last = "auto"``: on only for the device types where the interleaved one-thread
#: measurement (docs/performance.md, "What auto turns on") showed a reliable gain: on the CPU
#: 0.79 of the float32 training step (40 rounds, every running median 0.77-0.81; sampling 0.84
#: earlier). CUDA and MPS are not measured yet.
CHANNELS_LAST_AUTO: frozenset[str] = frozenset({"cpu"})


@dataclass(frozen=True)
class Capability:
    """What ``"auto"`` needs to know about a device: whether it computes bf16 natively.

    ``bf16`` names what was found (``"avx512_bf16"``, ``"amx_bf16"``, the GPU's name), or is None;
    ``looked_at`` says where the probe looked, for the log line when it found nothing.
    """

    device_type: str
    bf16: str | None = None
    looked_at: str = ""


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags of the first processor in ``cpuinfo`` (empty where unreadable)."""
    try:
        with open(cpuinfo, encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def probe(device: torch.device | str) -> Capability:
    """What ``device`` computes natively (the one place ``"auto"`` looks; tests replace it)."""
    device = torch.device(device)
    if device.type == "cpu":
        flags = cpu_flags()
        found = next((flag for flag in NATIVE_BF16_FLAGS if flag in flags), None)
        looked = "no avx512_bf16/amx_bf16 on this CPU" if flags else "no CPU flags readable"
        return Capability("cpu", found, looked)
    if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported(
        including_emulation=False
    ):
        return Capability("cuda", torch.cuda.get_device_name(device), "")
    return Capability(device.type, None, f"no native bf16 known on {device.type}")


def choices(
    capability: Capability,
    where: str,
    steps: int | None,
    float32_layers: bool = True,
    forced_autocast: str | None = None,
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """What ``"auto"`` means for each switch on a device with ``capability``, and why (one line
    per switch, ``auto: bf16 on (avx512_bf16)``). ``steps``: the run's ``train.steps`` (None
    outside training: sampling makes too few restorer calls to repay compiling).
    ``float32_layers``: whether the restorer names the layers that stay float32 under autocast
    (:func:`coldkit.runtime.acceleration.end_layers`). ``forced_autocast``: the autocast the
    config fixes (None: left to ``"auto"``), which channels-last follows."""
    kind = capability.device_type
    native_bf16 = capability.bf16 is not None and kind in ("cpu", "cuda")
    if native_bf16 and BF16_KEEPS_RESULTS and float32_layers:
        autocast, why_autocast = "bf16", f"auto: bf16 on ({capability.bf16})"
    elif native_bf16 and BF16_KEEPS_RESULTS:
        autocast, why_autocast = "off", (
            f"auto: bf16 off ({capability.bf16} computes it, but the restorer names no "
            "float32_layers(), and without them bf16 lost 0.05 direct SSIM; autocast = \"bf16\" "
            "forces it)"
        )
    elif native_bf16:
        autocast, why_autocast = "off", (
            f"auto: bf16 off ({capability.bf16} computes it, but bf16 did not keep results; "
            'autocast = "bf16" forces it)'
        )
    else:
        autocast, why_autocast = "off", f"auto: bf16 off ({capability.looked_at})"
    if kind not in CHANNELS_LAST_AUTO:
        channels_last, why_channels = False, f"auto: channels-last off (no measured gain on {kind})"
    elif (forced_autocast or autocast) != "off":
        channels_last, why_channels = False, (
            f"auto: channels-last off (beside {forced_autocast or autocast} on {kind}: GroupNorm "
            "on channels-last bf16 cost more than the layout saved)"
        )
    else:
        channels_last, why_channels = True, f"auto: channels-last on (measured faster on {kind})"
    if kind not in ("cpu", "cuda"):
        compile_on, why_compile = False, f"auto: compile off (not measured on {kind})"
    elif steps is None:
        compile_on, why_compile = False, f"auto: compile off ({where}: too few calls to repay it)"
    else:
        compile_on = steps >= COMPILE_MIN_STEPS
        verb = "repay" if compile_on else "do not repay"
        why_compile = (f"auto: compile {'on' if compile_on else 'off'} ({steps} steps {verb} "
                       f"1-2 min of compiling; on from {COMPILE_MIN_STEPS})")
    values = {"compile": compile_on, "channels_last": channels_last, "autocast": autocast}
    return values, (why_compile, why_channels, why_autocast)


def defaults(
    device: torch.device | str, steps: int | None = None, capability: Capability | None = None
) -> dict[str, Any]:
    """What ``"auto"`` resolves to on ``device`` (for a training run of ``steps`` steps)."""
    device = torch.device(device)
    capability = capability if capability is not None else probe(device)
    return choices(capability, "train" if steps is not None else "sampling", steps)[0]


__all__ = [
    "CHANNELS_LAST_AUTO",
    "BF16_KEEPS_RESULTS",
    "COMPILE_MIN_STEPS",
    "NATIVE_BF16_FLAGS",
    "Capability",
    "choices",
    "cpu_flags",
    "defaults",
    "probe",
]
