"""``python -m benchmarks.run [--quick] [--device cpu|cuda] [--out PATH]``: measure coldkit's
costs on this machine and rewrite ``docs/performance.md``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks import measure, report, sharing
from benchmarks.settings import FULL, QUICK, Settings
from benchmarks.timing import load_average, machine
from coldkit.plugins import Registry

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
#: Sections measured by hand (``python -X importtime``) that a rewrite of the page keeps.
KEPT_HEADING = "## CLI start-up"


def run(settings: Settings, device: torch.device, out: Path, quick: bool = False) -> str:
    """Run every benchmark, write the page to ``out`` and return its text."""
    registry = Registry.discover()
    say(f"benchmarks on {device}")
    info = machine(device)
    # Training first, so the process's peak RSS is mostly the training step's.
    training = step("training step", lambda: measure.training_step(registry, settings, device))
    costs = step("D(x0, T) : D(x0, 1)", lambda: measure.degradation_costs(registry, settings,
                                                                          device))
    blur = step("blur vs reference", lambda: measure.blur_against_reference(registry, settings,
                                                                           device))
    sampling = step("Algorithm 2", lambda: measure.sampling(registry, settings, device))
    switches = step("speed switches", lambda: measure.switches(registry, settings, device))
    info["load average (1 min) at end"] = load_average()
    text = report.render(settings, quick, info, costs, blur, sampling, training,
                         switches)
    # The sharing section is measured by benchmarks.sharing (several processes): keep it.
    kept = sharing.kept_section(out.read_text(encoding="utf-8")) if out.is_file() else None
    if kept is not None:
        text = sharing.replace_section(text, kept)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + kept_sections(out), encoding="utf-8")
    say(f"wrote {out}")
    return text


def kept_sections(out: Path) -> str:
    """The page's hand-measured sections (from :data:`KEPT_HEADING` on), to keep on a rewrite."""
    previous = out.read_text(encoding="utf-8") if out.is_file() else ""
    start = previous.find(KEPT_HEADING)
    return "" if start < 0 else "\n" + previous[start:]


def step(label: str, fn):
    started = time.perf_counter()
    result = fn()
    say(f"  {label}: {time.perf_counter() - started:.1f} s")
    return result


def say(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, small sizes only")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the page to write")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    run(QUICK if args.quick else FULL, torch.device(args.device), args.out, args.quick)


if __name__ == "__main__":
    main()
