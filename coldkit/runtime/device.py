"""Which torch device a config's ``device`` setting means on this machine."""

from __future__ import annotations

import torch

from coldkit.errors import ConfigError


def select_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: unknown device {name!r}; use auto, cpu, cuda or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for, but CUDA is not available; use cpu or auto.")
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and device.index is not None and device.index >= count:
        raise ConfigError(
            f"device: {name!r} asked for, but this machine has {count} CUDA "
            "device(s), numbered from 0; use cuda:0, cuda or auto."
        )
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ConfigError(f"device: {name!r} asked for, but MPS is not available; use cpu or auto.")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(
            f"device: {name!r} is not a device coldkit runs on; use auto, cpu, cuda or mps."
        )
    return device


def apply_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads for this process's torch work (``None``: leave torch's default,
    which is ``OMP_NUM_THREADS`` or one per core)."""
    if threads is not None:
        torch.set_num_threads(threads)


__all__ = ["apply_threads", "select_device"]
