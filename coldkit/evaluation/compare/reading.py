"""The run folders of a comparison: which ones the arguments name, and what each says about
itself (its config, metrics, level T and the judge's verdict), read from the files it wrote."""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from coldkit.config import read_toml
from coldkit.errors import ConfigError
from coldkit.runs.folder import CONFIG_FILE, METRICS_FILE, RunPaths, read_context

_GLOB_CHARACTERS = frozenset("*?[")


def expand_run_paths(arguments: Sequence[str | Path]) -> list[Path]:
    """The run folders named by ``arguments``, in the given order, glob patterns expanded.

    A pattern (``runs/*``, ``runs/mnist_?``) is expanded here, sorted by name, so it works where
    the shell does not expand it (Windows); a path that exists is taken as it is even if it holds
    ``*``, ``?`` or ``[``. Files matched by a pattern are skipped (a run is a folder); a folder
    named twice is kept once, where it first appears. A pattern that matches no folder raises
    :class:`ConfigError`.
    """
    paths: list[Path] = []
    seen: set[Path] = set()
    unmatched: list[str] = []
    for argument in arguments:
        text = str(argument)
        found = _matches(text)
        if not found:
            unmatched.append(text)
        for path in found:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                paths.append(path)
    if unmatched:
        raise ConfigError(
            f"No run folder matches {', '.join(repr(text) for text in unmatched)}. Check the "
            "pattern, e.g. 'runs/*', or pass the run folders themselves."
        )
    if not paths:
        raise ConfigError("No run folders given. Pass folders written by `coldkit run`.")
    return paths


def _matches(text: str) -> list[Path]:
    """The path ``text`` names as it is, else the folders its glob pattern matches, by name."""
    literal = Path(text).expanduser()
    if literal.exists() or not _GLOB_CHARACTERS & set(text):
        return [literal]
    found = [Path(match) for match in sorted(glob.glob(str(literal)))]
    return [match for match in found if match.is_dir()]


@dataclass
class RunSummary:
    """What one run folder says about itself, for the comparison table."""

    root: Path
    #: The label used in the table and the figure: the folder's name (its path when two folders
    #: have the same name).
    name: str
    config: dict[str, Any]
    #: ``metrics.json``; None while the run is not finished.
    metrics: dict[str, Any] | None
    #: The level T the run degrades to (``run.json``, else ``degradation.steps``).
    level: int | None
    #: The judge's ``largest_class_share`` and ``frechet_ratio``, and ``fid``, ``kid``,
    #: ``kid_std`` and ``fid_images`` from ``generation.json``.
    generation: dict[str, float | None] | None
    notes: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.metrics is not None

    @property
    def degradation(self) -> str:
        return str(dict(self.config.get("degradation") or {}).get("name", "?"))

    @property
    def restorer(self) -> str:
        return str(dict(self.config.get("restorer") or {}).get("name", "?"))

    @property
    def parameters(self) -> int | None:
        """The restorer's parameter count (metrics.json)."""
        count = None if self.metrics is None else self.metrics.get("parameters")
        return count if isinstance(count, int) else None

    @property
    def sampler(self) -> str:
        if self.metrics is not None and self.metrics.get("sampler"):
            return str(self.metrics["sampler"])
        return str(dict(self.config.get("evaluate") or {}).get("sampler", "improved"))

    @property
    def train_steps(self) -> int | None:
        return None if self.metrics is None else self.metrics.get("train_steps")

    @property
    def train_minutes(self) -> float | None:
        seconds = None if self.metrics is None else self.metrics.get("train_seconds")
        return None if seconds is None else float(seconds) / 60.0

    def row(self, row: str) -> dict[str, Any]:
        """The metrics of one Table-1 row (empty while the run is not finished)."""
        if self.metrics is None:
            return {}
        return dict(dict(self.metrics.get("rows") or {}).get(row) or {})


def run_problem(path: Path) -> str | None:
    """Why ``path`` is not a run folder, or None if it is one."""
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_dir():
        return f"{path} is a file, not a run folder"
    if not RunPaths(path).config.is_file():
        return f"{path} is not a coldkit run folder (no {CONFIG_FILE})"
    return None


def summarize_runs(paths: Sequence[Path]) -> list[RunSummary]:
    """Read every run folder, in the given order.

    Raises :class:`ConfigError` naming every path that is not a run folder; a run that has not
    finished (no ``metrics.json``) is kept, with empty metrics and a note.
    """
    problems = [problem for problem in map(run_problem, paths) if problem is not None]
    if problems:
        raise ConfigError(
            f"{'; '.join(problems)}. Pass folders written by `coldkit run` (they hold "
            f"{CONFIG_FILE}), e.g. runs/mnist_blur, or a pattern such as 'runs/*'."
        )
    names = [path.resolve().name or str(path) for path in paths]
    labels = [name if names.count(name) == 1 else str(path) for name, path in zip(names, paths)]
    return [_summarize(path, label) for path, label in zip(paths, labels)]


def _summarize(root: Path, name: str) -> RunSummary:
    config = read_toml(RunPaths(root).config)
    notes: list[str] = []
    metrics = _metrics(root, notes)
    return RunSummary(
        root=root,
        name=name,
        config=config,
        metrics=metrics,
        level=_level(root, config),
        generation=_generation(root, metrics),
        notes=notes,
    )


def _metrics(root: Path, notes: list[str]) -> dict[str, Any] | None:
    """``metrics.json``, or None with a note saying why there is none."""
    metrics_path = RunPaths(root).metrics
    if not metrics_path.is_file():
        notes.append(
            f"not finished: no {METRICS_FILE} yet (training or evaluation still running, or "
            f"interrupted; `coldkit run {root}` finishes it)"
        )
        return None
    loaded = _read_json(metrics_path)
    if isinstance(loaded, dict) and isinstance(loaded.get("rows"), dict):
        return loaded
    notes.append(
        f"{metrics_path} cannot be read as coldkit metrics; `coldkit run {root}` "
        "re-evaluates the run and writes it again"
    )
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _level(root: Path, config: dict[str, Any]) -> int | None:
    context = read_context(root)
    if context is not None:
        return context.steps
    steps = dict(config.get("degradation") or {}).get("steps")
    return steps if isinstance(steps, int) else None


def _generation(root: Path, metrics: dict[str, Any] | None) -> dict[str, float | None] | None:
    """The judge's two headline numbers and the Inception FID with its image count, from
    ``generation.json`` (else metrics.json's copy)."""
    summary = _read_json(RunPaths(root).generation)
    if not isinstance(summary, dict) and metrics is not None:
        summary = metrics.get("generation")
    if not isinstance(summary, dict):
        return None
    report = summary.get("report")
    if not isinstance(report, dict) and summary.get("fid") is None:
        return None
    judged = report if isinstance(report, dict) else {}
    found = {key: judged.get(key) for key in ("largest_class_share", "frechet_ratio")}
    if summary.get("fid") is not None:
        found.update({key: summary.get(key) for key in ("fid", "kid", "kid_std", "fid_images")})
    return found


__all__ = ["RunSummary", "expand_run_paths", "run_problem", "summarize_runs"]
