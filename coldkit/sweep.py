"""``coldkit sweep``: one experiment over a grid of settings, one run folder per point.

::

    coldkit sweep examples/mnist_blur.toml --over degradation.steps=5,10,20 --out runs/T

expands the grid (every combination of the ``--over`` values), validates every point's config
before any training (a bad value fails at once, naming its point), then runs the points one by one
(or ``--parallel N`` at a time, each process with its share of the cores) into
``OUT/<key>=<value>_...``. A point whose folder holds a finished run of the same config is skipped,
and an unfinished one resumes from its checkpoint, so a stopped sweep continues where it stopped.
At the end it writes into ``OUT``:

* ``sweep.json``: the grid, every point's folder, status and Table-1 rows;
* ``compare.md``: the ``coldkit compare`` report over the points' folders, and ``compare.png``;
* ``sweep.png``: each Table-1 metric against the first swept value, direct and sampled side by
  side (one line per combination of the other swept values).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.console import Console

from coldkit.config import Experiment, apply_overrides, build_experiment, read_toml
from coldkit.errors import ColdkitError
from coldkit.evaluation.metrics import ROWS
from coldkit.evaluation.compare import (
    RunSummary,
    markdown_report,
    summarize_runs,
    write_comparison_figure,
)
from coldkit.plugins import Registry
from coldkit.run import check_resumable, claimed_run, execute
from coldkit.runs.folder import RunPaths

SWEEP_FILE = "sweep.json"
PLOT_FILE = "sweep.png"
REPORT_FILE = "compare.md"
FIGURE_FILE = "compare.png"
#: Table-1 metrics plotted, with the direction that is better.
PLOTTED = (("ssim", "SSIM (higher is better)"), ("rmse", "RMSE (lower is better)"),
           ("psnr", "PSNR dB (higher is better)"), ("fid", "FID (lower is better)"))


class SweepError(ColdkitError):
    """A sweep could not start or one of its points failed (the message names the point)."""


@dataclass(frozen=True)
class Axis:
    """One ``--over key=v1,v2,...``: a config key and the raw values it takes."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class SweepPoint:
    """One point of the grid: its settings (key, raw value), its folder name and experiment."""

    settings: tuple[tuple[str, str], ...]
    experiment: Experiment
    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def overrides(self) -> list[str]:
        return [f"{key}={value}" for key, value in self.settings]


@dataclass
class Sweep:
    """A validated grid: the base config, the axes, the ``--set`` overrides and every point."""

    config: Path
    axes: tuple[Axis, ...]
    overrides: tuple[str, ...]
    out: Path
    points: list[SweepPoint]
    parallel: int = 1
    status: dict[str, str] = field(default_factory=dict)


def parse_axis(text: str) -> Axis:
    """``key=v1,v2,...`` -> :class:`Axis` (values are TOML, as in ``--set``; no commas inside)."""
    key, separator, raw = text.partition("=")
    values = tuple(value.strip() for value in raw.split(","))
    if not separator or not key.strip() or not all(values):
        raise SweepError(
            f"Cannot read --over {text!r}. Write it as section.key=v1,v2,..., e.g. "
            "--over degradation.steps=5,10,20."
        )
    return Axis(key.strip(), values)


def expand_grid(axes: Sequence[Axis]) -> list[tuple[tuple[str, str], ...]]:
    """Every combination of the axes' values, the first axis varying slowest."""
    keys = [axis.key for axis in axes]
    if len(set(keys)) != len(keys):
        raise SweepError(f"--over names a key twice ({', '.join(keys)}); give each key once.")
    return [tuple(zip(keys, combination))
            for combination in itertools.product(*(axis.values for axis in axes))]


def point_name(settings: Sequence[tuple[str, str]]) -> str:
    """The folder name of a point: ``degradation.steps=5_train.lr=1e-3``."""
    def safe(text: str) -> str:
        return "".join(c if c.isalnum() or c in ".-+=" else "-" for c in text)

    return "_".join(f"{safe(key)}={safe(value)}" for key, value in settings)


def plan_sweep(
    config: Path,
    axes: Sequence[Axis],
    registry: Registry,
    overrides: Sequence[str] = (),
    out: Path | None = None,
    parallel: int = 1,
) -> Sweep:
    """Validate every point of the grid (and any existing folder of it) before anything runs."""
    if not axes:
        raise SweepError("Nothing to sweep: give at least one --over key=v1,v2,...")
    if parallel < 1:
        raise SweepError(f"--parallel {parallel}: give 1 or more processes.")
    if config.is_dir():
        raise SweepError(
            f"{config} is a folder; a sweep starts from a TOML experiment file. To continue a "
            "stopped sweep, run the same `coldkit sweep` command again."
        )
    base = read_toml(config)
    out = out if out is not None else Path("runs") / f"{base.get('name', config.stem)}_sweep"
    points = []
    for settings in expand_grid(axes):
        name = point_name(settings)
        data = apply_overrides(json.loads(json.dumps(base)), [*overrides, *_assignments(settings)])
        try:
            experiment = build_experiment(data, registry)
            check_resumable(experiment, RunPaths(out / name))
        except ColdkitError as error:
            raise SweepError(f"sweep point {name}: {error}") from None
        points.append(SweepPoint(tuple(settings), experiment, out / name))
    return Sweep(config, tuple(axes), tuple(overrides), out, points, parallel)


def _assignments(settings: Sequence[tuple[str, str]]) -> list[str]:
    return [f"{key}={value}" for key, value in settings]


def is_finished(point: SweepPoint) -> bool:
    """Whether the point's folder holds a finished run (metrics.json) of exactly its config."""
    paths = RunPaths(point.folder)
    if not (paths.metrics.is_file() and paths.config.is_file()):
        return False
    return read_toml(paths.config) == json.loads(json.dumps(point.experiment.to_dict()))


# ------------------------------------------------------------------------------- running
def run_sweep(
    sweep: Sweep, registry: Registry, console: Console, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run every unfinished point, then write sweep.json, the report and the plots."""
    sweep.out.mkdir(parents=True, exist_ok=True)
    todo = []
    for point in sweep.points:
        if is_finished(point):
            sweep.status[point.name] = "finished earlier"
        else:
            todo.append(point)
    say(f"sweep: {len(sweep.points)} points, {len(todo)} to run, into {sweep.out}")
    try:
        if sweep.parallel == 1:
            for number, point in enumerate(todo, 1):
                say(f"[{number}/{len(todo)}] {point.name}")
                _run_here(sweep, point, registry, console)
        else:
            _run_in_processes(sweep, todo, say)
    finally:
        write_sweep_json(sweep)
    return finish_sweep(sweep, registry, say)


def _run_here(sweep: Sweep, point: SweepPoint, registry: Registry, console: Console) -> None:
    sweep.status[point.name] = "running"
    try:
        with claimed_run(point.experiment, point.folder, [], registry) as (experiment, paths):
            execute(experiment, paths, console)
    except ColdkitError as error:
        sweep.status[point.name] = "failed"
        raise SweepError(f"sweep point {point.name}: {error}") from None
    except BaseException:
        sweep.status[point.name] = "stopped"
        raise
    sweep.status[point.name] = "finished"


def threads_per_process(parallel: int) -> int:
    """Each of ``parallel`` processes' share of this machine's cores (at least 1)."""
    return max(1, (os.cpu_count() or 1) // parallel)


def _run_in_processes(sweep: Sweep, todo: list[SweepPoint], say: Callable[[str], None]) -> None:
    """``coldkit run`` per point in a process of its own, ``parallel`` at a time, each with
    OMP_NUM_THREADS set to its share of the cores (and OMP_WAIT_POLICY=PASSIVE unless set); stop
    starting points after a failure."""
    # Processes that share the cores: each its share, and idle threads that sleep at once.
    env = {
        "OMP_WAIT_POLICY": "PASSIVE",
        **os.environ,
        "OMP_NUM_THREADS": str(threads_per_process(sweep.parallel)),
    }
    logs = sweep.out / "logs"
    logs.mkdir(exist_ok=True)
    failed: list[str] = []

    def one(point: SweepPoint) -> None:
        if failed:
            return
        sweep.status[point.name] = "running"
        command = [sys.executable, "-m", "coldkit", "run", str(sweep.config),
                   "--out", str(point.folder)]
        for assignment in [*sweep.overrides, *point.overrides]:
            command += ["--set", assignment]
        log = logs / f"{point.name}.txt"
        say(f"started {point.name} (output: {log})")
        with open(log, "w") as handle:
            code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        sweep.status[point.name] = "finished" if code.returncode == 0 else "failed"
        say(f"{sweep.status[point.name]}: {point.name}")
        if code.returncode != 0:
            failed.append(f"{point.name} (exit code {code.returncode}, see {log})")

    with ThreadPoolExecutor(max_workers=sweep.parallel) as pool:
        list(pool.map(one, todo))
    if failed:
        raise SweepError(f"sweep point {failed[0]}; fix it and run the same command again: "
                         "finished points are kept.")


# ------------------------------------------------------------------------------- the results
def _value(raw: str) -> Any:
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw


def sweep_data(sweep: Sweep, summaries: Sequence[RunSummary] | None = None) -> dict[str, Any]:
    """What sweep.json holds: the grid and, per point, its folder, status and Table-1 rows."""
    by_root = {Path(summary.root): summary for summary in summaries or ()}
    points = []
    for point in sweep.points:
        summary = by_root.get(point.folder)
        points.append({
            "name": point.name,
            "settings": {key: _value(raw) for key, raw in point.settings},
            "folder": str(point.folder),
            "status": sweep.status.get(point.name, "not started"),
            "train_steps": None if summary is None else summary.train_steps,
            "train_minutes": None if summary is None else summary.train_minutes,
            "rows": {} if summary is None or not summary.finished else {
                row: summary.row(row) for row in ROWS},
        })
    return {
        "config": str(sweep.config),
        "over": {axis.key: [_value(raw) for raw in axis.values] for axis in sweep.axes},
        "set": list(sweep.overrides),
        "parallel": sweep.parallel,
        "points": points,
        "files": {"report": REPORT_FILE, "figure": FIGURE_FILE, "plot": PLOT_FILE},
    }


def write_sweep_json(sweep: Sweep, summaries: Sequence[RunSummary] | None = None) -> Path:
    path = sweep.out / SWEEP_FILE
    path.write_text(json.dumps(sweep_data(sweep, summaries), indent=2) + "\n")
    return path


def finish_sweep(sweep: Sweep, registry: Registry, say: Callable[[str], None]) -> dict[str, Any]:
    """sweep.json, compare.md, compare.png and sweep.png over the finished points."""
    summaries = summarize_runs([point.folder for point in sweep.points])
    write_sweep_json(sweep, summaries)
    (sweep.out / REPORT_FILE).write_text(markdown_report(summaries))
    drawn = write_comparison_figure(summaries, sweep.out / FIGURE_FILE, registry=registry)
    for note in drawn.notes:
        say(f"figure: {note}")
    plot_sweep(sweep, summaries, sweep.out / PLOT_FILE)
    for name in (SWEEP_FILE, REPORT_FILE, FIGURE_FILE, PLOT_FILE):
        say(f"wrote {sweep.out / name}")
    return sweep_data(sweep, summaries)


def _series(sweep: Sweep, summaries: Sequence[RunSummary]) -> dict[str, list[tuple[Any, RunSummary]]]:
    """The finished points grouped into lines: one per combination of the axes after the first,
    each a list of (first axis value, summary) in grid order."""
    by_root = {Path(summary.root): summary for summary in summaries}
    lines: dict[str, list[tuple[Any, RunSummary]]] = {}
    for point in sweep.points:
        summary = by_root.get(point.folder)
        if summary is None or not summary.finished:
            continue
        label = ", ".join(f"{key}={raw}" for key, raw in point.settings[1:]) or "runs"
        lines.setdefault(label, []).append((_value(point.settings[0][1]), summary))
    return lines


def plot_sweep(sweep: Sweep, summaries: Sequence[RunSummary], path: Path) -> Path:
    """Rows: the Table-1 metrics measured; columns: direct, sampled; x: the first swept key."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = _series(sweep, summaries)
    metrics = [(key, label) for key, label in PLOTTED if any(
        summary.row(row).get(key) is not None
        for points in lines.values() for _, summary in points for row in ("direct", "sampled"))]
    metrics = metrics or list(PLOTTED[:3])
    values = [_value(raw) for raw in sweep.axes[0].values]
    numeric = all(isinstance(value, (int, float)) and not isinstance(value, bool)
                  for value in values)
    figure, grid = plt.subplots(len(metrics), 2, figsize=(8, 2.6 * len(metrics)), squeeze=False,
                                sharex=True)
    for row_index, (key, label) in enumerate(metrics):
        for column, row in enumerate(("direct", "sampled")):
            axes = grid[row_index][column]
            for line_label, points in lines.items():
                xs = [x if numeric else values.index(x) for x, _ in points]
                ys = [summary.row(row).get(key) for _, summary in points]
                axes.plot(xs, [float("nan") if y is None else y for y in ys], "o-",
                          label=line_label)
            axes.set_title(f"{row}: {label}", fontsize=9)
            axes.grid(alpha=0.3)
            if not numeric:
                axes.set_xticks(range(len(values)), [str(value) for value in values])
        grid[row_index][1].sharey(grid[row_index][0])
    for column in range(2):
        grid[-1][column].set_xlabel(sweep.axes[0].key)
    if len(lines) > 1:
        grid[0][1].legend(fontsize=7)
    figure.suptitle(f"coldkit sweep of {sweep.config.name}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


__all__ = [
    "Axis",
    "Sweep",
    "SweepError",
    "SweepPoint",
    "expand_grid",
    "finish_sweep",
    "is_finished",
    "parse_axis",
    "plan_sweep",
    "plot_sweep",
    "point_name",
    "run_sweep",
    "sweep_data",
    "threads_per_process",
    "write_sweep_json",
]
