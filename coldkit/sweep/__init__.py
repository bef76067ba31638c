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

import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from rich.console import Console

from coldkit.config import apply_overrides, build_experiment, read_toml
from coldkit.errors import ColdkitError
from coldkit.plugins import Registry
from coldkit.run import check_resumable, claimed_run, execute
from coldkit.runs.folder import RunPaths
from coldkit.runtime.files import (
    check_writable_name,
    is_regular_file,
    make_output_folder,
    write_error,
)
from coldkit.sweep.grid import (
    MAX_POINTS,
    Axis,
    Sweep,
    SweepError,
    SweepPoint,
    check_grid_size,
    expand_grid,
    grid_size,
    parse_axis,
    point_name,
)
from coldkit.sweep.results import (
    SWEEP_FILE,
    finish_sweep,
    plot_sweep,
    sweep_data,
    write_sweep_json,
)

#: What a sweep writes directly into its folder, besides one run folder per point.
SWEEP_ENTRIES = ("sweep.json", "compare.md", "compare.png", "sweep.png", "logs")


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
    check_writable_name(out)
    grid = expand_grid(axes)
    names = [point_name(settings) for settings in grid]
    for settings, name in zip(grid, names):
        check_writable_name(out / name, f"sweep point {' '.join(_assignments(settings))}:")
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise SweepError(
            f"Two points of the grid would share the folder {twice} (values that differ only in "
            "characters a folder name cannot hold). Give each value once."
        )
    check_sweep_folder(out, names)
    points = []
    for settings, name in zip(grid, names):
        data = apply_overrides(json.loads(json.dumps(base)), [*overrides, *_assignments(settings)])
        try:
            experiment = build_experiment(data, registry)
            check_resumable(experiment, RunPaths(out / name))
        except ColdkitError as error:
            raise SweepError(f"sweep point {name}: {error}") from None
        points.append(SweepPoint(tuple(settings), experiment, out / name))
    return Sweep(config, tuple(axes), tuple(overrides), out, points, parallel)


def check_sweep_folder(out: Path, names: Sequence[str]) -> None:
    """Refuse an ``--out`` that is not a sweep folder of this grid (a user's non-empty folder
    whose files the sweep would overwrite) and a sweep folder holding symbolic links where the
    sweep writes (a point's run folder, its log, the report): they are refused, never followed."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise SweepError(
            f"--out {out} is a file or a symbolic link, not a sweep folder. Pass --out with a "
            "new folder."
        )
    if not out.is_dir():
        return
    entries = {entry.name for entry in out.iterdir()}
    ours = {"logs", *names}  # what a sweep stopped before its first sweep.json holds
    if entries and SWEEP_FILE not in entries and not entries <= ours:
        shown = ", ".join(sorted(entries - ours)[:5])
        raise SweepError(
            f"--out {out} is a folder that is not a sweep folder and is not empty ({shown}); the "
            "sweep would overwrite its files, so nothing was written. Pass --out with a new or "
            "empty folder."
        )
    logs = out / "logs"
    linked = [out / name for name in (*SWEEP_ENTRIES, *names) if (out / name).is_symlink()]
    if logs.is_dir() and not logs.is_symlink():
        linked += [logs / f"{name}.txt" for name in names if (logs / f"{name}.txt").is_symlink()]
    if (out / SWEEP_FILE).exists() and not is_regular_file(out / SWEEP_FILE):
        linked.append(out / SWEEP_FILE)
    if linked:
        raise SweepError(
            f"Sweep folder {out} holds symbolic links where the sweep writes "
            f"({', '.join(str(path) for path in sorted(set(linked)))}), so it could overwrite "
            "files outside it; nothing was written. Remove the links, or pass --out with a new "
            "folder."
        )


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
    make_output_folder(sweep.out)
    write_sweep_json(sweep)  # first: the folder is known as this sweep's if it is stopped
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
    starting points after a failure. Interrupted (Ctrl-C, or SIGTERM to the sweep), it ends the
    running points too and waits for them (each keeps its last checkpoint and resumes later)."""
    logs = make_output_folder(sweep.out / "logs")
    children = _Children(sweep)
    failed: list[str] = []

    def one(point: SweepPoint) -> None:
        if failed or children.stopping.is_set():
            return
        sweep.status[point.name] = "running"
        log = logs / f"{point.name}.txt"
        say(f"started {point.name} (output: {log})")
        code = children.run(point, log)
        sweep.status[point.name] = "finished" if code == 0 else "failed"
        if children.stopping.is_set():
            sweep.status[point.name] = "stopped"
            return
        say(f"{sweep.status[point.name]}: {point.name}")
        if code != 0:
            failed.append(f"{point.name} (exit code {code}, see {log})")

    pool = ThreadPoolExecutor(max_workers=sweep.parallel)
    with _terminate_as_interrupt():
        try:
            for future in [pool.submit(one, point) for point in todo]:
                future.result()
        except BaseException:
            children.stop()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    if failed:
        raise SweepError(f"sweep point {failed[0]}; fix it and run the same command again: "
                         "finished points are kept.")


class _Children:
    """The ``coldkit run`` processes of a parallel sweep, ended together when it stops."""

    def __init__(self, sweep: Sweep) -> None:
        self.sweep = sweep
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        # Processes that share the cores: each its share, and idle threads that sleep at once.
        self.env = {
            "OMP_WAIT_POLICY": "PASSIVE",
            **os.environ,
            "OMP_NUM_THREADS": str(threads_per_process(sweep.parallel)),
        }

    def run(self, point: SweepPoint, log: Path) -> int:
        """Run one point's ``coldkit run`` with its output in ``log``; its exit code."""
        command = [sys.executable, "-m", "coldkit", "run", str(self.sweep.config),
                   "--out", str(point.folder)]
        for assignment in [*self.sweep.overrides, *point.overrides]:
            command += ["--set", assignment]
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        try:
            descriptor = os.open(log, flags, 0o666)  # a link planted there is refused
        except OSError as exc:
            raise write_error(log, exc) from None
        with os.fdopen(descriptor, "w") as handle, self._lock:
            if self.stopping.is_set():
                return 130
            process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                       env=self.env)
            self._running.add(process)
        try:
            return process.wait()
        finally:
            with self._lock:
                self._running.discard(process)

    def stop(self) -> None:
        """End every running point (SIGTERM, then SIGKILL after 30 s) and wait for it."""
        with self._lock:
            self.stopping.set()
            running = list(self._running)
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM interrupts the main thread as Ctrl-C does (so a sweep ended by
    ``kill`` or a scheduler ends its points too); outside the main thread it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


__all__ = [
    "Axis",
    "Sweep",
    "SweepError",
    "SweepPoint",
    "MAX_POINTS",
    "check_grid_size",
    "check_sweep_folder",
    "expand_grid",
    "grid_size",
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
