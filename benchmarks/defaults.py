"""``python -m benchmarks.defaults [--steps N] [--rounds R] [--threads N] [--config FILE]``: how
much faster do coldkit's defaults train the README's main job than every switch off?

Builds the trainer of ``examples/mnist_blur.toml`` (the README's main job) three times in one
process and times its training step, interleaved:

* ``before``: every speed switch off and Adam's per-parameter loop (the trainer before the
  fused optimizer), and coldkit's U-Net without ``standardize_input`` (the network before it);
* ``switches off``: ``compile``, ``channels_last`` and ``autocast`` forced off;
* ``defaults``: the config as written (every switch ``auto``: what
  :func:`coldkit.runtime.auto.choices` decides on this machine, printed).

Each round times ``--steps`` steps of each case in turn (the order reversed every other round);
the table gives the median seconds per step and the ratio to each baseline, plus the first step
of each case (which includes compiling where ``compile`` is on), the time the job's
``train.steps`` would take (first step + the rest at the median), and the step's FLOP
utilisation: its FLOPs (``FlopCounterMode``, the restorer's forward and backward) per second
against the matmul peak of the precision the case computes in (``torch.mm`` of 2048x2048 float32
or bf16 on the same threads; issue 26's goal: 50 %). The goal (issue 26): the
defaults at most 0.60 of ``switches off`` where the CPU computes bf16 natively, at most 0.85
elsewhere. Run it on a quiet machine; on a busy one only the ratios mean something.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from benchmarks.measure import matmul_flops_per_second
from benchmarks.settings import FULL

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "mnist_blur.toml"
OFF = ["train.compile=false", "train.channels_last=false", 'train.autocast="off"']
CASES = {"before": OFF, "switches off": OFF, "defaults": []}


@dataclass
class Timing:
    case: str
    switches: str
    first_step: float
    per_step: float
    job_steps: int
    #: what the case's restorer computes in: ``float32`` or the autocast dtype (``bf16``)
    precision: str = "float32"
    #: FLOPs of one training step (forward and backward of the restorer)
    flops: float = 0.0
    #: the matmul peak of ``precision`` on these threads (FLOP/s); 0 where not measured
    peak: float = 0.0

    @property
    def job_seconds(self) -> float:
        return self.first_step + (self.job_steps - 1) * self.per_step

    @property
    def utilisation(self) -> float:
        """Achieved FLOP/s of the step over the peak of its precision (0 where not measured)."""
        return self.flops / self.per_step / self.peak if self.peak > 0 else 0.0


#: The side of the square matrices whose ``torch.mm`` gives the peak (the benchmark's default).
PEAK_SIZE = FULL.matmul_size


def step_flops(trainer) -> float:  # type: ignore[no-untyped-def]
    """FLOPs of one training step as ``FlopCounterMode`` counts them (convolutions, matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        trainer.train_step()
    return float(counter.get_total_flops())


def precision_of(trainer) -> str:  # type: ignore[no-untyped-def]
    """``float32`` or the autocast choice the trainer runs in (``bf16``, ``fp16``)."""
    return "float32" if trainer.switches.autocast == "off" else trainer.switches.autocast


def trainers(config: Path, threads: int, stack: contextlib.ExitStack) -> dict:
    """One trainer per case, each in a run context of its own (temporary folders)."""
    from rich.console import Console

    from coldkit.config import load_experiment
    from coldkit.plugins import Registry
    from coldkit.runs.context import RunContext
    from coldkit.runs.folder import RunPaths
    from coldkit.training import stage as training_stage

    registry, built = Registry.discover(), {}
    for case, overrides in CASES.items():
        settings = ['device="cpu"', f"threads={threads}", *overrides]
        experiment = load_experiment(config, registry, settings)
        if case == "before" and experiment.config.restorer.name == "unet":
            settings.append("restorer.standardize_input=false")
            experiment = load_experiment(config, registry, settings)
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        run = stack.enter_context(RunContext.start(experiment, RunPaths(folder),
                                                   Console(quiet=True)))
        trainer = training_stage.prepare(run).trainer
        if case == "before":  # Adam's per-parameter loop, as the trainer ran before
            trainer.optimizer = torch.optim.Adam(
                trainer.restorer.parameters(), lr=experiment.config.train.lr, foreach=False
            )
        built[case] = trainer
    return built


def measure(config: Path, steps: int, rounds: int, threads: int,
            peak_size: int = PEAK_SIZE) -> list[Timing]:
    with contextlib.ExitStack() as stack:
        built = trainers(config, threads, stack)
        first = {}
        for case, trainer in built.items():
            started = time.perf_counter()
            trainer.train_step()
            first[case] = time.perf_counter() - started
            trainer.train_step()  # warm-up
        samples: dict[str, list[float]] = {case: [] for case in built}
        names = list(built)
        for round_number in range(rounds):
            for case in names if round_number % 2 == 0 else reversed(names):
                started = time.perf_counter()
                for _ in range(steps):
                    built[case].train_step()
                samples[case].append((time.perf_counter() - started) / steps)
        # Counted and measured after the timings: the counter's hooks must not touch them.
        flops = step_flops(built["switches off"])  # the same network in every case
        dtypes = {"float32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
        peak_settings = replace(FULL, matmul_size=peak_size)
        peaks = {name: matmul_flops_per_second(peak_settings, torch.device("cpu"), dtypes[name])
                 for name in sorted({precision_of(trainer) for trainer in built.values()})}
        return [
            Timing(case, trainer.switches.describe(), first[case],
                   statistics.median(samples[case]), trainer.settings.steps,
                   precision_of(trainer), flops, peaks[precision_of(trainer)])
            for case, trainer in built.items()
        ]


def report(timings: list[Timing], steps: int, rounds: int, threads: int) -> str:
    by_case = {timing.case: timing for timing in timings}
    off, before = by_case["switches off"], by_case["before"]
    lines = [
        f"{rounds} rounds of {steps} steps per case, interleaved, {threads} thread(s), "
        f"{os.cpu_count()} cores, load average (1 min) {os.getloadavg()[0]:.2f}",
        "",
        "| case | switches | first step (s) | per step (ms) | : switches off | : before "
        f"| {off.job_steps} steps (s) | GFLOP/s | FLOP utilisation (precision) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in timings:
        achieved = t.flops / t.per_step / 1e9
        utilisation = (f"{100 * t.utilisation:.1f} % of {t.peak / 1e9:.0f} ({t.precision})"
                       if t.peak > 0 else "—")
        lines.append(
            f"| {t.case} | {t.switches} | {t.first_step:.2f} | {1e3 * t.per_step:.1f} | "
            f"{t.per_step / off.per_step:.2f} | {t.per_step / before.per_step:.2f} | "
            f"{t.job_seconds:.0f} | {achieved:.1f} | {utilisation} |"
        )
    defaults = by_case["defaults"]
    job = defaults.job_seconds / off.job_seconds
    lines += ["", f"the job with the defaults takes {job:.2f} of its time with every switch off "
                  "(goal: at most 0.60 with native bf16, 0.85 without)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per case per round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--config", type=Path, default=CONFIG)
    args = parser.parse_args(argv)
    timings = measure(args.config, args.steps, args.rounds, args.threads)
    print(report(timings, args.steps, args.rounds, args.threads))


if __name__ == "__main__":
    main()
