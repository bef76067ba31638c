"""``coldkit compare``: several run folders side by side — a table of their Table-1 rows and one
Figure-3 grid re-made for the same held-out images.

Everything for the table comes from the files a run wrote (``config.toml``, ``run.json``,
``metrics.json``, ``generation.json``); nothing is recomputed. The figure is recomputed, because
each run's own ``figure.png`` may show other images: the first run's first K held-out images are
degraded with every run's own degradation to its level T and restored with its own sampler::

    from coldkit.compare import expand_run_paths, summarize_runs, markdown_report
    runs = summarize_runs(expand_run_paths(["runs/*"]))
    print(markdown_report(runs))
"""

from __future__ import annotations

import glob
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from rich.table import Table
from torch import Tensor

from coldkit.config import read_toml
from coldkit.errors import ColdkitError, ConfigError, DataError
from coldkit.evaluate import ROWS
from coldkit.imaging import save_grid
from coldkit.plugins import Registry
from coldkit.report import METRICS
from coldkit.runfolder import CONFIG_FILE, read_context

METRICS_FILE = "metrics.json"
GENERATION_FILE = "generation.json"
#: Default figure file, in the current folder.
DEFAULT_FIGURE = "compare.png"

#: Table-1 metrics in the order the comparison shows them: key and column label.
_LABELS = dict(METRICS)
COLUMNS = tuple((key, _LABELS[key]) for key in ("ssim", "rmse", "psnr", "fid"))
_GLOB_CHARACTERS = frozenset("*?[")

ReportFormat = Literal["json", "markdown"]


# ------------------------------------------------------------------------------ the run folders
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
        literal = Path(text).expanduser()
        if literal.exists() or not _GLOB_CHARACTERS & set(text):
            found = [literal]
        else:
            found = [Path(match) for match in sorted(glob.glob(str(literal)))]
            found = [match for match in found if match.is_dir()]
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
    #: The judge's ``largest_class_share`` and ``frechet_ratio`` from ``generation.json``.
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
    if not (path / CONFIG_FILE).is_file():
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
    config = read_toml(root / CONFIG_FILE)
    notes: list[str] = []
    metrics: dict[str, Any] | None = None
    metrics_path = root / METRICS_FILE
    if not metrics_path.is_file():
        notes.append(
            f"not finished: no {METRICS_FILE} yet (training or evaluation still running, or "
            f"interrupted; `coldkit run {root}` finishes it)"
        )
    else:
        loaded = _read_json(metrics_path)
        if isinstance(loaded, dict) and isinstance(loaded.get("rows"), dict):
            metrics = loaded
        else:
            notes.append(
                f"{metrics_path} cannot be read as coldkit metrics; `coldkit run {root}` "
                "re-evaluates the run and writes it again"
            )
    return RunSummary(
        root=root,
        name=name,
        config=config,
        metrics=metrics,
        level=_level(root, config),
        generation=_generation(root, metrics),
        notes=notes,
    )


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
    """The judge's two headline numbers from ``generation.json`` (else metrics.json's copy)."""
    summary = _read_json(root / GENERATION_FILE)
    if not isinstance(summary, dict) and metrics is not None:
        summary = metrics.get("generation")
    report = summary.get("report") if isinstance(summary, dict) else None
    if not isinstance(report, dict):
        return None
    return {key: report.get(key) for key in ("largest_class_share", "frechet_ratio")}


# ------------------------------------------------------------------------------------- reports
def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):  # "inf" as coldkit.report writes non-finite values
        try:
            return float(value)
        except ValueError:
            return None
    return float(value)


def _metric_cell(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "n/c"
    return "∞" if math.isinf(number) else f"{number:.3f}"


def _share_cell(value: Any) -> str:
    number = _number(value)
    return "" if number is None else f"{number:.1%}"


def _ratio_cell(value: Any) -> str:
    number = _number(value)
    return "" if number is None else f"{number:.2f}"


def _steps_cell(summary: RunSummary) -> str:
    return "" if summary.train_steps is None else str(summary.train_steps)


def _minutes_cell(summary: RunSummary) -> str:
    minutes = summary.train_minutes
    return "" if minutes is None else f"{minutes:.1f}"


def _degradation_cell(summary: RunSummary) -> str:
    level = "" if summary.level is None else f" T={summary.level}"
    return f"{summary.degradation}{level}"


def _restorer_cell(summary: RunSummary) -> str:
    count = summary.parameters
    return summary.restorer if count is None else f"{summary.restorer} {count / 1e6:.2f}M"


def metric_columns(summaries: Sequence[RunSummary]) -> list[tuple[str, str]]:
    """SSIM, RMSE, PSNR, and FID when at least one run measured it."""
    has_fid = any(
        _number(summary.row(row).get("fid")) is not None for summary in summaries for row in ROWS
    )
    return [(key, label) for key, label in COLUMNS if key != "fid" or has_fid]


def _has_generation(summaries: Sequence[RunSummary]) -> bool:
    return any(summary.generation is not None for summary in summaries)


def _row_label(row: str, summary: RunSummary) -> str:
    return f"sampled ({summary.sampler})" if row == "sampled" else row


def comparison_notes(summaries: Sequence[RunSummary]) -> list[str]:
    """Each run's notes, and a warning when the runs were scored on different image sets."""
    notes = [f"{summary.name}: {note}" for summary in summaries for note in summary.notes]
    scored = {
        (summary.metrics.get("num_images"), summary.metrics.get("evaluation_source"))
        for summary in summaries
        if summary.metrics is not None
    }
    if len(scored) > 1:
        described = "; ".join(
            f"{summary.name}: {summary.metrics.get('num_images')} images, "
            f"{summary.metrics.get('evaluation_source', '?')}"
            for summary in summaries
            if summary.metrics is not None
        )
        notes.append(f"the runs were scored on different held-out images ({described})")
    return notes


def rich_table(summaries: Sequence[RunSummary], title: str = "coldkit compare") -> Table:
    """One block per run, one line per Table-1 row; the run's name, degradation and restorer,
    steps and minutes are stacked in its first column so the table fits 80 columns."""
    columns = metric_columns(summaries)
    generation = _has_generation(summaries)
    table = Table(title=title)
    table.add_column("run")
    table.add_column("row")
    for _, label in columns:
        table.add_column(label, justify="right")
    if generation:
        table.add_column("largest class", justify="right")
        table.add_column("Fréchet ratio", justify="right")
    for index, summary in enumerate(summaries):
        last = index == len(summaries) - 1
        if summary.finished:
            minutes = summary.train_minutes
            trained = f"{_steps_cell(summary) or '?'} steps" + (
                "" if minutes is None else f", {minutes:.1f} min"
            )
        else:
            trained = "not finished"
        about = [
            summary.name,
            f"{_degradation_cell(summary)}, {_restorer_cell(summary)}",
            trained,
        ]
        shares = summary.generation or {}
        tail = (
            [
                _share_cell(shares.get("largest_class_share")),
                _ratio_cell(shares.get("frechet_ratio")),
            ]
            if generation
            else []
        )
        for position, row in enumerate(ROWS):
            first = position == 0
            values = summary.row(row)
            if summary.finished:
                cells = [_row_label(row, summary)]
                cells += [_metric_cell(values.get(key)) for key, _ in columns]
            else:
                cells = [""] * (1 + len(columns))
            table.add_row(
                about[position] if position < len(about) else "",
                *cells,
                *(tail if first else [""] * len(tail)),
                end_section=position == len(ROWS) - 1 and not last,
            )
    return table


def markdown_report(summaries: Sequence[RunSummary]) -> str:
    """A Markdown table, one line per run, then the notes."""
    columns = metric_columns(summaries)
    generation = _has_generation(summaries)
    header = ["run", "degradation", "restorer", "sampler", "steps", "minutes"]
    header += [f"{row} {label}" for row in ROWS for _, label in columns]
    if generation:
        header += ["largest class share", "Fréchet ratio"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 4 + "---:|" * (len(header) - 4)]
    for summary in summaries:
        cells = [
            summary.name,
            _degradation_cell(summary),
            _restorer_cell(summary),
            summary.sampler,
            _steps_cell(summary),
            _minutes_cell(summary),
        ]
        for row in ROWS:
            values = summary.row(row)
            cells += [
                _metric_cell(values.get(key)) if summary.finished else "" for key, _ in columns
            ]
        if generation:
            shares = summary.generation or {}
            cells += [
                _share_cell(shares.get("largest_class_share")),
                _ratio_cell(shares.get("frechet_ratio")),
            ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    notes = comparison_notes(summaries)
    if notes:
        lines.append("")
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def _plain(value: Any) -> Any:
    """JSON-safe data: non-finite floats become "inf", "-inf" or "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def json_report(
    summaries: Sequence[RunSummary], figure: ComparisonFigure | None = None
) -> dict[str, Any]:
    """Every run's settings and Table-1 rows as in its metrics.json, and the figure's layout."""
    runs = []
    for summary in summaries:
        metrics = summary.metrics or {}
        runs.append(
            {
                "name": summary.name,
                "path": str(summary.root),
                "config_name": summary.config.get("name"),
                "finished": summary.finished,
                "degradation": summary.degradation,
                "level": summary.level,
                "restorer": summary.restorer,
                "parameters": summary.parameters,
                "sampler": summary.sampler,
                "train_steps": summary.train_steps,
                "train_minutes": summary.train_minutes,
                "stopped_by": metrics.get("stopped_by"),
                "num_images": metrics.get("num_images"),
                "evaluation_source": metrics.get("evaluation_source"),
                "rows": {row: summary.row(row) for row in ROWS} if summary.finished else {},
                "fid_note": metrics.get("fid_note"),
                "generation": summary.generation,
                "notes": summary.notes,
            }
        )
    data: dict[str, Any] = {"runs": runs, "notes": comparison_notes(summaries)}
    if figure is not None:
        data["figure"] = {
            "path": str(figure.path) if figure.path is not None else None,
            "columns": figure.labels,
            "runs": figure.runs,
            "images": figure.images,
            "notes": figure.notes,
        }
    return _plain(data)


def report_format(
    as_json: bool, as_markdown: bool, out: Path | None
) -> ReportFormat | None:
    """The report asked for: ``--json``, ``--markdown``, else from ``--out``'s suffix, else none."""
    if as_json and as_markdown:
        raise ConfigError("--json and --markdown were both given; pick one report format.")
    if as_json:
        return "json"
    if as_markdown:
        return "markdown"
    if out is not None:
        return "json" if out.suffix.lower() == ".json" else "markdown"
    return None


def render_report(
    summaries: Sequence[RunSummary], kind: ReportFormat, figure: ComparisonFigure | None = None
) -> str:
    if kind == "json":
        return json.dumps(json_report(summaries, figure), indent=2) + "\n"
    return markdown_report(summaries)


def write_report(
    summaries: Sequence[RunSummary],
    kind: ReportFormat,
    path: Path,
    figure: ComparisonFigure | None = None,
) -> Path:
    """Write the JSON or Markdown report to ``path`` (its folder is created)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_report(summaries, kind, figure))
    except OSError as exc:
        raise ConfigError(
            f"Cannot write the report to {path} ({exc}). Pick another --out."
        ) from None
    return path


def figure_target(figure: Path | None, no_figure: bool) -> Path | None:
    """Where the figure goes: ``--figure``, else compare.png here; None with ``--no-figure``."""
    if no_figure:
        if figure is not None:
            raise ConfigError("--figure and --no-figure were both given; drop one of them.")
        return None
    return figure if figure is not None else Path(DEFAULT_FIGURE)


# ------------------------------------------------------------------------------------- figure
@dataclass
class ComparisonFigure:
    """What :func:`write_comparison_figure` drew, and why any run is missing from it."""

    path: Path | None  #: None when no run could be drawn
    labels: list[str]  #: column labels, left to right
    runs: list[str]  #: runs drawn, in order
    images: int  #: rows (held-out images)
    notes: list[str]


def write_comparison_figure(
    summaries: Sequence[RunSummary],
    path: Path,
    registry: Registry | None = None,
    images: int | None = None,
    device: str | torch.device | None = None,
) -> ComparisonFigure:
    """One Figure-3 grid for the same held-out images: the originals, then for each run its
    degraded input D(x0, T) (labelled "NAME T=T") and its sampled output ("NAME SAMPLER").

    The images are the first ``images`` (default: the first run's ``evaluate.figure_rows``) of the
    first run's evaluation split, loaded through its dataset plugin. Each run degrades them with
    its own degradation to its own T (random parameters drawn from its seed, as its evaluation
    does) and restores them with its own ``evaluate.sampler``. A run without a usable checkpoint,
    or whose image size or channel count differs from the first run's, is left out with a note.
    """
    from coldkit.run import load_split  # run imports much: import late
    from coldkit.runfolder import open_run

    registry = registry if registry is not None else Registry.discover()
    notes: list[str] = []
    columns: list[Tensor] = []
    labels: list[str] = []
    drawn: list[str] = []
    reference: tuple[str, int, int] | None = None  # name, image size, channels
    originals: Tensor | None = None
    for summary in summaries:
        try:
            loaded = open_run(summary.root, registry, device=device)
        except ColdkitError as error:
            notes.append(f"{summary.name} is not in the figure: {error}")
            continue
        size, channels = loaded.context.image_size, loaded.context.channels
        if reference is None:
            experiment = loaded.experiment
            count = images if images is not None else experiment.config.evaluate.figure_rows
            dataset = experiment.evaluate_dataset or experiment.dataset
            try:
                split = load_split(dataset, experiment.config.evaluate.split, size, channels)
            except ColdkitError as error:
                raise DataError(
                    f"The comparison figure needs the held-out images of {summary.name}: {error} "
                    "To compare without the figure, pass --no-figure."
                ) from None
            originals = split.images[:count]
            reference = (summary.name, size, channels)
            columns.append(originals)
            labels.append("original")
        elif (size, channels) != reference[1:]:
            notes.append(
                f"{summary.name} is not in the figure: it takes {channels}-channel {size}x{size} "
                f"images and {reference[0]} (whose held-out images the figure shows) "
                f"{reference[2]}-channel {reference[1]}x{reference[1]}; compare it with runs of "
                "its own image size"
            )
            continue
        assert originals is not None
        degraded, sampled = _degrade_and_sample(loaded, originals)
        if not summary.finished:
            notes.append(
                f"{summary.name} is not finished: the figure shows its checkpoint at step "
                f"{loaded.step}"
            )
        columns += [degraded, sampled]
        # save_grid cuts labels to the cell width: the run's name first, then what the column is.
        labels += [
            f"{summary.name} T={loaded.degradation.steps}",
            f"{summary.name} {summary.sampler}",
        ]
        drawn.append(summary.name)
        del loaded
    if not drawn:
        notes.append("no figure: none of the runs could be drawn")
        return ComparisonFigure(None, [], [], 0, notes)
    assert originals is not None
    save_grid(columns, labels, path)
    return ComparisonFigure(path, labels, drawn, len(originals), notes)


@torch.no_grad()
def _degrade_and_sample(loaded: Any, originals: Tensor) -> tuple[Tensor, Tensor]:
    """D(x0, T) with the run's degradation and its sampler's restoration, as its evaluation does."""
    degradation = loaded.degradation
    x0 = originals.to(loaded.device)
    generator = torch.Generator().manual_seed(loaded.experiment.config.seed)
    params = degradation.sample_params(x0, generator)
    t = torch.full((len(x0),), degradation.steps, dtype=torch.long, device=loaded.device)
    x_t = degradation.degrade(x0, t, params)
    sampled = loaded.experiment.sampler.component(loaded.restorer, degradation, x_t, t, params)
    return x_t.cpu(), sampled.cpu()


__all__ = [
    "ComparisonFigure",
    "RunSummary",
    "comparison_notes",
    "expand_run_paths",
    "figure_target",
    "json_report",
    "markdown_report",
    "render_report",
    "report_format",
    "rich_table",
    "run_problem",
    "summarize_runs",
    "write_comparison_figure",
    "write_report",
]
