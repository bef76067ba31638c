"""Which torch device a config's ``device`` setting means on this machine."""

from __future__ import annotations

import os

import torch

from coldkit.errors import ConfigError
from coldkit.runtime.cores import CoreClaim, unclaimed_reason


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


def claim_cores(threads: int | None, device: torch.device) -> tuple[CoreClaim | None, str]:
    """Set this run's CPU threads: ``threads`` where the config sets it, else its share of the
    cores among the coldkit runs on this machine (:mod:`coldkit.runtime.cores`), which the run
    follows with :meth:`CoreClaim.rebalance` and gives back with :meth:`CoreClaim.release`.
    Returns the claim (None where the registry does not apply or cannot be written) and the log
    line that says which."""
    apply_threads(threads)
    reason = unclaimed_reason(threads, device.type, os.environ)
    if reason is not None:
        return None, f"threads: {reason}"
    before = torch.get_num_threads()
    try:
        claim = CoreClaim.acquire(torch.set_num_threads, cores=before, restore=before)
    except OSError as exc:
        return None, (f"threads: torch's default ({before}); the core registry could not be "
                      f"used ({exc}); set threads = N if runs share this machine")
    return claim, sharing_note(claim)


def sharing_note(claim: CoreClaim) -> str:
    """The log line that says how many threads a run uses, and why."""
    runs = claim.live_claims()
    sharing = "alone" if runs == 1 else f"shared by {runs} coldkit runs"
    return (f"threads: {claim.threads} of {claim.cores} cores (machine {sharing}; "
            "threads = N overrides)")


__all__ = ["apply_threads", "claim_cores", "select_device", "sharing_note"]
