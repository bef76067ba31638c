"""Speed switches for the restorer: ``torch.compile``, channels-last memory format, bf16/fp16
autocast.

The same three keys exist in ``[train]`` (training) and ``[sampling]`` (every restorer call of
evaluation, generation and restoration). :func:`resolve` turns a section's values into
:class:`Switches` for a device: ``"auto"`` -> :func:`coldkit.runtime.auto.choices` for what
:func:`coldkit.runtime.auto.probe` finds the device computes natively (bf16 where the processor
has it and the restorer names its ``float32_layers``), with a reason per switch; unsupported
choices -> off with a note saying why.
:func:`prepare_model` applies them to a restorer *in place*:

* the module keeps its identity, parameters and ``state_dict`` keys (no ``_orig_mod.``
  prefix): a checkpoint of a compiled run loads in an uncompiled one and vice versa;
* channels-last converts the 4-D weights and the 4-D inputs of each call, and gives contiguous
  outputs back, so samplers and degradations never see another layout;
* autocast runs the forward under ``torch.autocast`` and casts a half-precision output back to
  the input's dtype: the loss and the samplers' arithmetic stay in float32, and the backward runs
  outside autocast, as torch recommends. The restorer's input level and output layer
  (:func:`end_layers`) stay float32: at T = 20 of MNIST blur the digit lives in harmonics a few
  per cent strong, which the first layers amplify and bf16 there loses (docs/performance.md);
* ``torch.compile`` compiles the forward; if compiling fails (no C++ compiler, a backend
  error) the forward falls back to eager with one line (to the run's log, else a warning).

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

from coldkit.runtime import auto

AutocastChoice = Literal["off", "bf16", "fp16"]

DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}

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
    #: Why ``"auto"`` chose what it did, one line per switch left at ``"auto"``.
    reasons: tuple[str, ...] = ()
    #: Under autocast, keep the restorer's input level and output layer in float32 (see
    #: :func:`end_layers`): the faint harmonics of a heavily degraded input survive only there.
    float32_ends: bool = True

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return DTYPES.get(self.autocast)

    @property
    def any(self) -> bool:
        return self.compile or self.channels_last or self.autocast != "off"

    def describe(self) -> str:
        """``compile off, channels-last off, autocast bf16``, then why ``"auto"`` chose so."""
        text = (
            f"compile {'on' if self.compile else 'off'}, channels-last "
            f"{'on' if self.channels_last else 'off'}, autocast {self.autocast}"
        )
        return f"{text} ({'; '.join(self.reasons)})" if self.reasons else text

    def record(self) -> dict[str, Any]:
        """The switches and why, as ``run.json`` keeps them."""
        return {
            "compile": self.compile,
            "channels_last": self.channels_last,
            "autocast": self.autocast,
            "why": list(self.reasons + self.notes),
        }


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


def resolve(
    settings: SwitchSettings,
    device: torch.device | str,
    where: str,
    steps: int | None = None,
    capability: auto.Capability | None = None,
    restorer: nn.Module | None = None,
) -> Switches:
    """``settings`` (a ``[train]`` or ``[sampling]`` section) on ``device``: ``"auto"`` becomes
    :func:`coldkit.runtime.auto.choices`' value for the device's
    :class:`~coldkit.runtime.auto.Capability` (``auto.probe(device)`` unless given), a training
    run of ``steps`` steps (None: sampling) and ``restorer`` (bf16 only for a restorer that names
    its ``float32_layers``; None: coldkit's U-Net is assumed), with a reason each; a choice the
    device cannot run becomes off, with a note naming the key (``where.key``)."""
    device = torch.device(device)
    keys = ("compile", "channels_last", "autocast")
    automatic = [key for key in keys if getattr(settings, key) == "auto"]
    reasons: tuple[str, ...] = ()
    values = {key: getattr(settings, key) for key in keys}
    if automatic:
        capability = capability if capability is not None else auto.probe(device)
        names_layers = restorer is None or names_float32_layers(restorer)
        forced = None if settings.autocast == "auto" else settings.autocast
        chosen, why = auto.choices(capability, where, steps, names_layers, forced)
        values.update({key: chosen[key] for key in automatic})
        reasons = tuple(f"{where}.{line}" for key, line in zip(keys, why) if key in automatic)
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
    return Switches(device.type, notes=tuple(notes), reasons=reasons, **values)


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


def _compile_failed_line(exc: Exception) -> str:
    return (f"torch.compile failed ({type(exc).__name__}: {str(exc)[:300]}); the restorer runs "
            "eagerly instead. Set compile = false to silence this.")


class AcceleratedForward:
    """A module's forward with the switches applied; set as the module's ``forward``.

    ``notify`` receives the one line said when compiling fails (the run's log); without it the
    line is a :class:`RuntimeWarning`.
    """

    def __init__(
        self,
        eager: Callable[..., Any],
        switches: Switches,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.eager = eager
        self.switches = switches
        self.notify = notify
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
            if self.notify is not None:
                self.notify(_compile_failed_line(exc))
            else:
                warnings.warn(_compile_failed_line(exc), RuntimeWarning, stacklevel=3)
            return self.eager(*args, **kwargs)

    def __deepcopy__(self, memo: dict) -> AcceleratedForward:
        # a copied module gets its own forward (compiled afresh, if compiling)
        return AcceleratedForward(copy.deepcopy(self.eager, memo), self.switches, self.notify)


class Float32Forward:
    """A layer's forward outside autocast, on float32 inputs; set as the layer's ``forward``
    for the restorer's input and output layers while autocast is on."""

    def __init__(self, eager: Callable[..., Any], device_type: str) -> None:
        self.eager = eager
        self.device_type = device_type

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        args = tuple(
            value.float() if isinstance(value, Tensor) and value.is_floating_point() else value
            for value in args
        )
        with torch.autocast(self.device_type, enabled=False):
            return self.eager(*args, **kwargs)

    def __deepcopy__(self, memo: dict) -> Float32Forward:
        return Float32Forward(copy.deepcopy(self.eager, memo), self.device_type)


def names_float32_layers(model: object) -> bool:
    """Whether the restorer says which of its layers stay float32 (``float32_layers()``)."""
    return callable(getattr(model, "float32_layers", None))


def end_layers(model: nn.Module) -> list[nn.Module]:
    """The restorer's layers kept in float32 under autocast: those its ``float32_layers()``
    names (coldkit's U-Net: its input level — the ``stem``, the first encoder level and its
    downsampling — and the last convolution of its ``head``; with ``standardize_input`` only
    the stem and that convolution), else its first and last convolution; none for a restorer
    without convolutions.

    Why more than the ends where the restorer can say: a restorer that undoes heavy blur
    amplifies harmonics a few per cent strong in its first layers, and bf16 rounding there is
    amplified with them (a float32-trained U-Net sampled in bf16 with only its first and last
    convolution in float32 lost 0.27 direct SSIM on MNIST blur at T = 20; with its input level
    too, 0.005: docs/performance.md). Deeper layers carry the amplified signal and take bf16.
    """
    if names_float32_layers(model):
        return list(dict.fromkeys(model.float32_layers()))  # type: ignore[operator]
    convolutions = [m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    return [] if not convolutions else list(dict.fromkeys([convolutions[0], convolutions[-1]]))


def _set_float32_ends(model: nn.Module, switches: Switches) -> None:
    """Keep (or, with autocast off, stop keeping) the input and output layers in float32."""
    for module in model.modules():
        if isinstance(module.__dict__.get("forward"), Float32Forward):
            del module.__dict__["forward"]
    if switches.autocast_dtype is not None and switches.float32_ends:
        for layer in end_layers(model):
            layer.forward = Float32Forward(layer.forward, switches.device_type)  # type: ignore[method-assign]


def plain_forward(model: nn.Module) -> Callable[..., Any]:
    """The module's own forward, without switches."""
    current = model.__dict__.get("forward")
    return current.eager if isinstance(current, AcceleratedForward) else model.forward


def applied_switches(model: nn.Module) -> Switches | None:
    """The switches :func:`prepare_model` last applied to ``model`` (None: plain)."""
    current = model.__dict__.get("forward")
    return current.switches if isinstance(current, AcceleratedForward) else None


def prepare_model(
    model: nn.Module, switches: Switches, notify: Callable[[str], None] | None = None
) -> nn.Module:
    """Apply ``switches`` to ``model`` in place (replacing earlier ones) and return it;
    ``notify`` gets the one line said if compiling fails (else it is a warning)."""
    previous = applied_switches(model)
    eager = plain_forward(model)
    if previous is not None:
        del model.__dict__["forward"]
    if switches.channels_last:
        model.to(memory_format=torch.channels_last)
    elif previous is not None and previous.channels_last:
        model.to(memory_format=torch.contiguous_format)
    _set_float32_ends(model, switches)
    if switches.any:
        model.forward = AcceleratedForward(eager, switches, notify)  # type: ignore[method-assign]
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
    switches = resolve(settings, device, "sampling", restorer=restorer)
    for note in switches.notes:
        notify(note)
    return prepare_model(restorer, switches, notify)


def sampling_note(model: nn.Module) -> str | None:
    """``sampling switches: ...`` (and why) for the run's log, or None when the model runs
    plain."""
    switches = applied_switches(model)
    return f"sampling switches: {switches.describe()}" if switches and switches.any else None


__all__ = [
    "AcceleratedForward",
    "Float32Forward",
    "Switches",
    "applied_switches",
    "autocast_context",
    "autocast_unsupported",
    "compile_unavailable",
    "end_layers",
    "grad_scaler",
    "names_float32_layers",
    "plain_forward",
    "prepare_model",
    "prepare_sampling",
    "resolve",
    "sampling_note",
]
