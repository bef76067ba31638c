"""Small timing helpers shared by the measurements."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from typing import Callable

import torch


def synchronizer(device: torch.device) -> Callable[[], None]:
    """``torch.cuda.synchronize`` on a GPU (kernels run asynchronously), a no-op on the CPU."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def timed(fn: Callable[[], object], sync: Callable[[], None], calls: int = 1) -> float:
    """Seconds per call of ``fn``, over ``calls`` calls."""
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - start) / calls


def calls_to_last(fn: Callable[[], object], sync: Callable[[], None], seconds: float) -> int:
    """How many calls of ``fn`` last about ``seconds`` (at least 1, at most 1000)."""
    single = max(timed(fn, sync), 1e-7)
    return max(1, min(1000, int(seconds / single) + 1))


def interleaved_medians(
    fns: dict[str, Callable[[], object]],
    sync: Callable[[], None],
    repeats: int,
    min_seconds: float = 0.0,
) -> dict[str, float]:
    """Median seconds per call of each function, timed in turn ``repeats`` times (the order
    reversed every other repeat) after an untimed warm-up call of each; each timing repeats the
    call enough times to last about ``min_seconds``."""
    for fn in fns.values():
        fn()
    calls = {name: calls_to_last(fn, sync, min_seconds) for name, fn in fns.items()}
    samples: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else reversed(names):
            samples[name].append(timed(fns[name], sync, calls[name]))
    return {name: statistics.median(values) for name, values in samples.items()}


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine(device: torch.device) -> dict[str, str]:
    """What the numbers were measured on."""
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": cpu_model(),
        "CPU cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "load average (1 min) at start": load_average(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
        "torch": torch.__version__,
        "Python": platform.python_version(),
        "OS": platform.platform(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["GPU"] = torch.cuda.get_device_name(device)
    return info


def load_average() -> str:
    """Other work on the machine skews timings; the page says how busy it was."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        return "unknown"
