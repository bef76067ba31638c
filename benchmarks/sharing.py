"""``python -m benchmarks.sharing [--steps N] [--repeats R] [--out docs/performance.md]``: do two trainings
side by side share the machine?

Times N training steps of ``examples/mnist_blur.toml`` in a process alone and in two processes
started together, in four cases:

* ``unset``, every core each: torch imported before coldkit, so coldkit's wait policy cannot
  apply: libgomp's own default, whose idle threads spin 300,000 iterations before they sleep;
* ``short-spin``, every core each: ``GOMP_SPINCOUNT=10000`` (set by ``import coldkit``), the
  default before the core registry;
* the core registry (coldkit's default): each run claims cores / runs threads
  (``coldkit.runtime.cores``) and follows the other runs after every step, as training does;
* ``passive, 1 thread each``: what ``coldkit sweep --parallel 2`` gives each point on 2 cores.

The result replaces the "Runs that share a machine" section of ``docs/performance.md``
(``benchmarks.run`` keeps that section when it rewrites the page). Run it on a quiet machine:
the numbers are only as good as the machine is idle.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "mnist_blur.toml"
DEFAULT_OUT = ROOT / "docs" / "performance.md"
START, END = "<!-- sharing:start -->", "<!-- sharing:end -->"


@dataclass(frozen=True)
class Case:
    key: str  # what --cases names it by
    label: str
    policy: str  # "unset", "short-spin" or "passive"
    threads: int | None  # None: no threads setting
    registry: bool = False  # True: coldkit's core registry sizes the threads (its default)


CASES = (
    Case("before", "libgomp's default spin, every core each (before)", "unset", None),
    Case("short-spin", "GOMP_SPINCOUNT=10000, every core each (the last default)", "short-spin",
         None),
    Case("default", "core registry + GOMP_SPINCOUNT=10000 (coldkit's default)", "short-spin",
         None, True),
    Case("passive", "PASSIVE, threads = 1 each (sweep --parallel 2)", "passive", 1),
)


# ------------------------------------------------------------------------------- one process
def worker(steps: int, policy: str, threads: int | None, barrier: Path, peers: int) -> None:
    """Prepare mnist_blur's training, wait for every peer, time ``steps`` steps, print JSON."""
    if policy == "unset":
        import torch  # noqa: F401 - loads libgomp before coldkit can set the wait policy
    from rich.console import Console

    from coldkit.config import load_experiment
    from coldkit.plugins import Registry
    from coldkit.runs.context import RunContext
    from coldkit.runs.folder import RunPaths
    from coldkit.training import stage as training_stage

    overrides = ["device=\"cpu\"", "train.max_minutes=60"]
    if threads is not None:
        overrides.append(f"threads={threads}")
    experiment = load_experiment(CONFIG, Registry.discover(), overrides)
    with tempfile.TemporaryDirectory() as folder, RunContext.start(
        experiment, RunPaths(Path(folder)), Console(quiet=True)
    ) as run:  # leaving it gives the claimed cores back
        trainer = training_stage.prepare(run).trainer
        for _ in range(3):  # warm-up
            trainer.train_step()
        (barrier / str(os.getpid())).touch()
        while len(list(barrier.iterdir())) < peers:
            time.sleep(0.01)
        started = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
            run.follow_cores()  # as the training stage does after every step
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "wait_policy": os.environ.get("OMP_WAIT_POLICY")}))


# ------------------------------------------------------------------------------- the controller
def run_together(case: Case, steps: int, count: int) -> list[float]:
    """Start ``count`` workers at once; the seconds each took for its steps."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
    if case.policy == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    if not case.registry and case.threads is None:  # torch's default: every core, no registry
        env["OMP_NUM_THREADS"] = str(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as barrier, tempfile.TemporaryDirectory() as registry:
        env["COLDKIT_CORES_DIR"] = registry  # this benchmark's runs only
        command = [sys.executable, "-m", "benchmarks.sharing", "--worker", "--steps", str(steps),
                   "--policy", case.policy, "--barrier", barrier, "--peers", str(count)]
        if case.threads is not None:
            command += ["--threads", str(case.threads)]
        processes = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE)
                     for _ in range(count)]
        outputs = [process.communicate()[0] for process in processes]
    if any(process.returncode for process in processes):
        raise SystemExit(f"a worker failed in case {case.label!r}")
    return [json.loads(output.decode().strip().splitlines()[-1])["seconds"] for output in outputs]


def measure(steps: int, repeats: int, cases: tuple[Case, ...] = CASES) -> list[dict]:
    """Each case alone and in pairs, ``repeats`` rounds interleaved over the cases (so a burst
    of outside load hits every case alike); the median of the rounds. The first case is the
    baseline of the "alone : before" column."""
    alone: dict[str, list[float]] = {case.label: [] for case in cases}
    pairs: dict[str, list[list[float]]] = {case.label: [] for case in cases}
    for round_number in range(repeats):
        for case in cases:
            alone[case.label].append(run_together(case, steps, 1)[0])
            pairs[case.label].append(sorted(run_together(case, steps, 2)))
            print(f"round {round_number + 1}, {case.label}: alone {alone[case.label][-1]:.1f} s, "
                  f"side by side {pairs[case.label][-1][0]:.1f} s and "
                  f"{pairs[case.label][-1][1]:.1f} s (load {os.getloadavg()[0]:.2f})", flush=True)
    return [
        {"case": case.label, "alone": statistics.median(alone[case.label]),
         "pair": [statistics.median(pair[i] for pair in pairs[case.label]) for i in (0, 1)]}
        for case in cases
    ]


def section(rows: list[dict], steps: int, repeats: int = 1, load: str = "",
            keys: list[str] | None = None) -> str:
    baseline = rows[0]["alone"]
    chosen = "" if keys is None else f" --cases {' '.join(keys)}"
    lines = [
        START,
        "## Runs that share a machine",
        "",
        f"Written by `python -m benchmarks.sharing --steps {steps} --repeats {repeats}{chosen}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores{load}): "
        f"{steps} training steps of `examples/mnist_blur.toml` in one process alone, then in "
        "two processes started together (timed from a common start after warm-up); medians of "
        f"{repeats} rounds, the cases interleaved. The goal: each of two side by side takes at "
        "most 2x the time of one alone, and a run alone is no slower than before.",
        "",
        "| case | alone (s) | alone : before | each of two (s) | each of two : alone | verdict |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        worst = max(row["pair"])
        ratio = worst / row["alone"]
        verdict = "**PASS**" if ratio <= 2.0 and row["alone"] <= 1.05 * baseline else "**MISS**"
        lines.append(
            f"| {row['case']} | {row['alone']:.1f} | {row['alone'] / baseline:.2f} | "
            f"{' / '.join(f'{value:.1f}' for value in row['pair'])} | {ratio:.2f} | {verdict} |"
        )
    lines += [
        "",
        "`import coldkit` (and so `coldkit` and `python -m coldkit`) sets `GOMP_SPINCOUNT=10000` "
        "unless the variable is already set: idle OpenMP threads spin a thirtieth as long before "
        "they sleep, so a run alone keeps its speed and a second run is starved less. It must "
        "happen before torch is imported, so a script that imports torch first keeps libgomp's "
        "default (the first row). To choose another policy, set the variables yourself "
        "(`OMP_WAIT_POLICY=PASSIVE coldkit run ...` when you run several by hand). "
        "A CPU run whose threads are not set claims its share of the cores in a per-user "
        "registry (`coldkit.runtime.cores`): cores / runs, followed every few seconds, so the "
        "first of two runs gives a core back when the second starts and takes it again when "
        "it ends. The `threads` setting (top level of an experiment, `--set threads=1`) or "
        "`OMP_NUM_THREADS` fixes a run's threads instead; `coldkit sweep --parallel N` gives "
        "each of its N processes cores / N threads.",
        END,
    ]
    return "\n".join(lines)


def kept_section(page: str) -> str | None:
    """The sharing section of an existing page, for ``benchmarks.run`` to keep."""
    start, end = page.find(START), page.find(END)
    return page[start:end + len(END)] if 0 <= start < end else None


def replace_section(page: str, block: str) -> str:
    old = kept_section(page)
    return page.replace(old, block) if old else page.rstrip("\n") + "\n\n" + block + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--cases", nargs="+", choices=[case.key for case in CASES], default=None,
        help="measure only these cases, the first as the baseline (e.g. `--cases before "
        "default`: each of two default runs against one alone, and alone against before)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--policy", default="passive", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--barrier", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--peers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.steps, args.policy, args.threads, args.barrier, args.peers)
        return
    start = os.getloadavg()[0]
    cases = tuple(case for key in args.cases for case in CASES if case.key == key) \
        if args.cases else CASES
    rows = measure(args.steps, args.repeats, cases)
    load = f", load average (1 min) {start:.2f} at start and {os.getloadavg()[0]:.2f} at end"
    page = args.out.read_text() if args.out.is_file() else "# Performance\n"
    text = section(rows, args.steps, args.repeats, load, args.cases)
    args.out.write_text(replace_section(page, text))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
