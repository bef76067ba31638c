"""Speed switches for the restorer: ``torch.compile``, channels-last memory format, bf16/fp16
autocast.

The same three keys exist in ``[train]`` (training) and ``[sampling]`` (every restorer call of
evaluation, generation and restoration). :func:`resolve` turns a section's values into
:class:`Switches` for a device (``"auto"`` -> :data:`AUTO`, unsupported choices -> off with a
note saying why); :func:`prepare_model` applies them to a restorer *in place*:

* the module keeps its identity, parameters and ``state_dict`` keys (no ``_orig_mod.``
  prefix): a checkpoint of a compiled run loads in an uncompiled one and vice versa;
* channels-last converts the 4-D weights and the 4-D inputs of each call, and gives contiguous
  outputs back, so samplers and degradations never see another layout;
* autocast runs the forward under ``torch.autocast`` and casts a half-precision output back to
  the input's dtype: the loss and the samplers' arithmetic stay in float32, and the backward runs
  outside autocast, as torch recommends;
* ``torch.compile`` compiles the forward; if compiling fails (no C++ compiler, a backend
  error) the forward falls back to eager with a warning, once.

Calling :func:`prepare_model` again replaces the previous switches (all off restores the plain
module). fp16 training on CUDA needs a :func:`grad_scaler` (the :class:`~coldkit.training.trainer.Trainer`
keeps one and saves its state in the checkpoint).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import shutil
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol

import torch
from torch import Tensor, nn

AutocastChoice = Literal["off", "bf16", "fp16"]

DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}

#: What ``"auto"`` means per device type: a switch is on only where ``python -m benchmarks.run``
#: measured a gain on that device type (docs/performance.md says what it measured). CPU (a busy
#: 2-core Xeon with AMX, small U-Net): no switch gave a gain that holds for every CPU and every
#: run: channels-last measured 0.67 and 1.23 of the time off in two runs (noise); bf16 autocast
#: 0.56-0.68 of a training step, but only on CPUs with native bf16 (AMX / AVX512-BF16; elsewhere
#: it is slower) and with results changed by ~1e-2, so it stays opt-in (on MNIST blur at T = 20
#: it made 1.9x the steps but lost 0.07 direct SSIM: faint harmonics do not survive bf16);
#: compile 0.78 of a step,
#: after 1-2 minutes of compiling where the inductor cache is cold. CUDA and MPS: not measured
#: yet, so off until a benchmark shows a gain there.
AUTO: dict[str, dict[str, Any]] = {
    "cpu": {"compile": False, "channels_last": False, "autocast": "off"},
    "cuda": {"compile": False, "channels_last": False, "autocast": "off"},
    "mps": {"compile": False, "channels_last": False, "autocast": "off"},
}
_ALL_OFF: dict[str, Any] = {"compile": False, "channels_last": False, "autocast": "off"}


class SwitchSettings(Protocol):
    """A config section with the three switches (``TrainSection``, ``SamplingSection``)."""

    compile: bool | Literal["auto"]
    channels_last: bool | Literal["auto"]
    autocast: Literal["auto", "off", "bf16", "fp16"]


@dataclass(frozen=True)
class Switches:
    """The switches as they apply on one device (no ``"auto"`` left)."""

    device_type: str = "cpu"
    compile: bool = False
    channels_last: bool = False
    autocast: AutocastChoice = "off"
    #: Why a switch asked for was turned off on this device (one line each; for the run's log).
    notes: tuple[str, ...] = ()

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return DTYPES.get(self.autocast)

    @property
    def any(self) -> bool:
        return self.compile or self.channels_last or self.autocast != "off"

    def describe(self) -> str:
        return (
            f"compile {'on' if self.compile else 'off'}, channels-last "
            f"{'on' if self.channels_last else 'off'}, autocast {self.autocast}"
        )


def auto_defaults(device: torch.device | str) -> dict[str, Any]:
    """What ``"auto"`` resolves to on ``device``."""
    return AUTO.get(torch.device(device).type, _ALL_OFF)


def autocast_unsupported(choice: str, device: torch.device) -> str | None:
    """Why autocast ``choice`` cannot run on ``device``, or None."""
    if choice == "off":
        return None
    if not torch.amp.autocast_mode.is_autocast_available(device.type):
        return f"is not available on {device.type}"
    if device.type == "cpu" and choice == "fp16":
        return "is not supported on the CPU (no fp16 matmul units; use 'bf16' there)"
    if device.type == "cuda" and choice == "bf16" and not torch.cuda.is_bf16_supported():
        return "needs a GPU with bfloat16 support (Ampere or newer; use 'fp16' there)"
    return None


def compile_unavailable(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot compile for ``device`` here, or None (it may still fail at
    the first call: then the forward falls back to eager with a warning)."""
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        return "needs triton for CUDA (pip install triton)"
    if device.type == "cpu":
        compilers = [os.environ.get("CXX"), "g++", "clang++", "c++", "cl"]
        if not any(name and shutil.which(name) for name in compilers):
            return "needs a C++ compiler for the CPU (g++ or clang++ on the PATH, or CXX)"
    return None


def resolve(settings: SwitchSettings, device: torch.device | str, where: str) -> Switches:
    """``settings`` (a ``[train]`` or ``[sampling]`` section) on ``device``: ``"auto"`` becomes
    :data:`AUTO`'s value, and a choice the device cannot run becomes off, with a note naming the
    key (``where.key``) and the reason."""
    device = torch.device(device)
    auto = auto_defaults(device)
    values = {
        key: auto[key] if getattr(settings, key) == "auto" else getattr(settings, key)
        for key in ("compile", "channels_last", "autocast")
    }
    notes = []
    reason = autocast_unsupported(values["autocast"], device)
    if reason is not None:
        notes.append(f"{where}.autocast = {values['autocast']!r} {reason}; running in float32")
        values["autocast"] = "off"
    if values["compile"]:
        reason = compile_unavailable(device)
        if reason is not None:
            notes.append(f"{where}.compile: torch.compile {reason}; running eagerly")
            values["compile"] = False
    return Switches(device.type, notes=tuple(notes), **values)


@contextlib.contextmanager
def _null() -> Any:
    yield


def autocast_context(switches: Switches) -> contextlib.AbstractContextManager:
    """``torch.autocast`` with the switches' dtype, or a context that does nothing."""
    dtype = switches.autocast_dtype
    if dtype is None:
        return _null()
    return torch.autocast(switches.device_type, dtype=dtype)


def grad_scaler(switches: Switches) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for fp16 autocast on CUDA (where small fp16 gradients
    would underflow); disabled, its methods pass through unchanged."""
    enabled = switches.autocast == "fp16" and switches.device_type == "cuda"
    return torch.amp.GradScaler(switches.device_type if enabled else "cpu", enabled=enabled)


# ------------------------------------------------------------------------------ the model
def _to_channels_last(value: Any) -> Any:
    if isinstance(value, Tensor) and value.dim() == 4:
        return value.contiguous(memory_format=torch.channels_last)
    return value


class AcceleratedForward:
    """A module's forward with the switches applied; set as the module's ``forward``."""

    def __init__(self, eager: Callable[..., Any], switches: Switches) -> None:
        self.eager = eager
        self.switches = switches
        self.compiled = torch.compile(eager) if switches.compile else None
        self.compile_failed = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        switches = self.switches
        if switches.channels_last:
            args = tuple(_to_channels_last(value) for value in args)
            kwargs = {key: _to_channels_last(value) for key, value in kwargs.items()}
        with autocast_context(switches):
            output = self._forward(*args, **kwargs)
        if isinstance(output, Tensor):
            if switches.autocast_dtype is not None and output.dtype == switches.autocast_dtype:
                wanted = next(
                    (a.dtype for a in args if isinstance(a, Tensor) and a.is_floating_point()),
                    torch.float32,
                )
                output = output.to(wanted)
            if switches.channels_last and output.dim() == 4:
                output = output.contiguous()
        return output

    def _forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is None or self.compile_failed:
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as exc:  # compiling failed: run eagerly (a real error raises again)
            self.compile_failed = True
            warnings.warn(
                f"torch.compile failed ({type(exc).__name__}: {str(exc)[:300]}); the restorer "
                "runs eagerly instead. Set compile = false to silence this.",
                RuntimeWarning,
                stacklevel=3,
            )
            return self.eager(*args, **kwargs)

    def __deepcopy__(self, memo: dict) -> AcceleratedForward:
        # a copied module gets its own forward (compiled afresh, if compiling)
        return AcceleratedForward(copy.deepcopy(self.eager, memo), self.switches)


def plain_forward(model: nn.Module) -> Callable[..., Any]:
    """The module's own forward, without switches."""
    current = model.__dict__.get("forward")
    return current.eager if isinstance(current, AcceleratedForward) else model.forward


def applied_switches(model: nn.Module) -> Switches | None:
    """The switches :func:`prepare_model` last applied to ``model`` (None: plain)."""
    current = model.__dict__.get("forward")
    return current.switches if isinstance(current, AcceleratedForward) else None


def prepare_model(model: nn.Module, switches: Switches) -> nn.Module:
    """Apply ``switches`` to ``model`` in place (replacing earlier ones) and return it."""
    previous = applied_switches(model)
    eager = plain_forward(model)
    if previous is not None:
        del model.__dict__["forward"]
    if switches.channels_last:
        model.to(memory_format=torch.channels_last)
    elif previous is not None and previous.channels_last:
        model.to(memory_format=torch.contiguous_format)
    if switches.any:
        model.forward = AcceleratedForward(eager, switches)  # type: ignore[method-assign]
    return model


def prepare_sampling(
    restorer: nn.Module,
    settings: SwitchSettings,
    device: torch.device,
    notify: Callable[[str], None],
) -> nn.Module:
    """The restorer with the ``[sampling]`` switches applied (in place), each note told.

    Every restorer call outside training (evaluation, generation, restore, compare, the Python
    API) goes through here, so the switches apply the same way everywhere.
    """
    switches = resolve(settings, device, "sampling")
    for note in switches.notes:
        notify(note)
    return prepare_model(restorer, switches)


def sampling_note(model: nn.Module) -> str | None:
    """``sampling switches: ...`` for the run's log, or None when the model runs plain."""
    switches = applied_switches(model)
    return f"sampling switches: {switches.describe()}" if switches and switches.any else None


__all__ = [
    "AUTO",
    "AcceleratedForward",
    "Switches",
    "applied_switches",
    "auto_defaults",
    "autocast_context",
    "autocast_unsupported",
    "compile_unavailable",
    "grad_scaler",
    "plain_forward",
    "prepare_model",
    "prepare_sampling",
    "resolve",
    "sampling_note",
]
