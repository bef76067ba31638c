"""What a run will cost, checked before it writes anything.

:func:`check_before_writing` runs before ``coldkit run`` creates or changes its folder: the
device exists, the restorer can be built for the image size (on the ``meta`` device: no memory,
no time), and the memory the run needs at least — the degradation's tables for T, the model
with its gradients, Adam moments and EMA, and one batch — fits in what the machine has. The
tables are measured on the degradation built for two small T and extrapolated, so a T of a
billion is refused in milliseconds with the largest T that fits, instead of growing until the
kernel kills the process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

try:  # the address-space limit (ulimit -v) exists on Unix only
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

from coldkit.config import Experiment
from coldkit.errors import ConfigError
from coldkit.protocols import BuildContext
from coldkit.runtime.device import select_device

#: The two small T the degradation is built for to measure how its tables grow with T.
PROBE_STEPS = (8, 16)
#: Copies of the weights training holds: weights, gradients, Adam's two moments, the EMA.
WEIGHT_COPIES = 5
#: Float32 images of one batch held at once at least: x0, x_t, the prediction, its gradient.
BATCH_COPIES = 4
#: Building a degradation's tables holds several copies at once: blur's per-step complex128
#: transfer functions, stacked, cumulated and cast peak at about 8x the table it keeps
#: (measured: 693 MB of peak memory for an 87 MB table, T = 20,000 at 32x32).
TABLE_BUILD_FACTOR = 8
GIB = 1024**3


@dataclass(frozen=True)
class RunCost:
    """Memory a run needs at least, in bytes, and how the degradation's part grows with T."""

    tables: float
    tables_per_step: float
    model: float
    batch: float


def build_restorer(experiment: Experiment, context: BuildContext) -> nn.Module:
    """The experiment's restorer network (untrained), or a config error naming the fix."""
    try:
        return experiment.restorer.build(context)
    except ValueError as exc:
        raise ConfigError(
            f"restorer: {exc}. Adjust [restorer] or dataset.image_size."
        ) from None


def check_before_writing(experiment: Experiment, device: str | None = None) -> RunCost | None:
    """Raise :class:`ConfigError` for what can be known wrong before a run writes anything:
    a device that does not exist, a restorer that cannot be built for the image size, or a run
    (T, model, batch) that cannot fit in memory. Returns the estimate (None where the
    degradation could not be probed). ``device`` replaces the config's (a model opened
    elsewhere, e.g. an exported one on ``cpu``)."""
    device = select_device(device if device is not None else experiment.config.device)
    channels = int(experiment.dataset.params.model_dump().get("channels") or 3)
    image_size = experiment.config.dataset.image_size
    steps = int(getattr(experiment.degradation.params, "steps", 0) or 0)
    with torch.device("meta"):  # shapes only: checks the image size, allocates nothing
        restorer = build_restorer(
            experiment, BuildContext(image_size=image_size, channels=channels, steps=max(1, steps))
        )
    cost = estimate_cost(experiment, restorer, channels)
    if cost is not None:
        _check_memory(cost, device, steps)
    return cost


def estimate_cost(experiment: Experiment, restorer: nn.Module, channels: int) -> RunCost | None:
    """The memory estimate; None where the degradation has no ``steps`` to vary."""
    params = experiment.degradation.params
    steps = getattr(params, "steps", None)
    size = experiment.config.dataset.image_size
    if not isinstance(steps, int):
        return None
    probes = []
    for probe in PROBE_STEPS:
        try:
            probed = params.model_copy(update={"steps": probe})
            degradation = experiment.degradation.record.build(probed)
            image = torch.zeros(1, channels, size, size)
            degradation.degrade(image, torch.tensor([probe]), degradation.sample_params(image))
        except Exception:  # a plugin whose T is tied to other parameters: no estimate
            return None
        probes.append(_tensor_bytes(vars(degradation)))
    per_step = max(0.0, (probes[1] - probes[0]) / (PROBE_STEPS[1] - PROBE_STEPS[0]))
    tables = probes[1] + per_step * (steps - PROBE_STEPS[1])
    weights = sum(p.numel() * p.element_size() for p in restorer.parameters())
    train = experiment.config.train
    batch = BATCH_COPIES * train.batch_size * channels * size * size * 4
    return RunCost(max(tables, 0.0), per_step, float(WEIGHT_COPIES * weights), float(batch))


def _check_memory(cost: RunCost, device: torch.device, steps: int) -> None:
    """Refuse a run that cannot fit: the tables are built in host memory (with their build
    peak), then held with the model and a batch on the training device."""
    on_host = 0.0 if device.type != "cpu" else cost.model + cost.batch
    checks = [(torch.device("cpu"), TABLE_BUILD_FACTOR, on_host)]
    if device.type != "cpu":
        checks.append((device, 1, cost.model + cost.batch))
    for where, factor, others in checks:
        available = available_memory(where)
        needed = cost.tables * factor + others
        if available is not None and needed > available:
            raise _too_large(cost, where, factor, others, available, steps)


def _too_large(
    cost: RunCost, where: torch.device, factor: int, others: float, available: float, steps: int
) -> ConfigError:
    fixed_tables = cost.tables - cost.tables_per_step * steps
    per_step = cost.tables_per_step * factor
    largest = int((available - others - fixed_tables * factor) / per_step) if per_step else 0
    bound = f" (with this model and batch, T up to about {largest:,} fits)" if largest > 0 else ""
    building = f", up to {factor}x that while they are built" if factor > 1 else ""
    return ConfigError(
        f"This run needs about {(cost.tables * factor + others) / GIB:.1f} GiB of memory on "
        f"{where} (degradation tables for T = {steps:,}: {cost.tables / GIB:.1f} GiB{building}; "
        f"model with gradients, Adam and EMA: {cost.model / GIB:.2f} GiB; one batch: "
        f"{cost.batch / GIB:.2f} GiB) and {available / GIB:.1f} GiB is available. Lower "
        f"degradation.steps{bound}, or train.batch_size, the restorer's size or "
        "dataset.image_size. Nothing was written."
    )


def available_memory(device: torch.device) -> float | None:
    """Bytes free for this process on ``device`` (None where it cannot be told)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return float(free)
    found = [value for value in (_free_memory(), address_space_left()) if value is not None]
    return min(found) if found else None


def _free_memory() -> float | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def address_space_left() -> float | None:
    """Bytes this process may still map under its address-space limit (``ulimit -v``), or None
    where there is no limit: past it an allocation fails however much memory is free."""
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    used = 0.0
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmSize:"):
                    used = float(line.split()[1]) * 1024
    except OSError:
        pass
    return max(0.0, float(soft) - used)


def _tensor_bytes(value: Any, depth: int = 0) -> int:
    """Bytes of the tensors held in ``value`` (attributes, dicts, lists, modules), a few levels
    deep."""
    if isinstance(value, Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, nn.Module):
        return sum(t.numel() * t.element_size() for t in (*value.parameters(), *value.buffers()))
    if depth >= 3:
        return 0
    if isinstance(value, dict):
        return sum(_tensor_bytes(item, depth + 1) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(item, depth + 1) for item in value)
    return 0


__all__ = [
    "RunCost", "address_space_left", "available_memory", "build_restorer",
    "check_before_writing", "estimate_cost",
]
