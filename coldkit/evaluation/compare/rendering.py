"""The comparison as a rich table, a Markdown table or JSON, all from the runs' own files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal, Sequence

from rich.table import Table

from coldkit.evaluation.compare.figure import ComparisonFigure
from coldkit.evaluation.compare.reading import RunSummary
from coldkit.errors import ConfigError
from coldkit.evaluation.metrics import ROWS
from coldkit.evaluation.report import METRICS
from coldkit.runtime.files import write_text_atomic

#: Table-1 metrics in the order the comparison shows them: key and column label.
_LABELS = dict(METRICS)
COLUMNS = tuple((key, _LABELS[key]) for key in ("ssim", "rmse", "psnr", "fid", "kid"))

ReportFormat = Literal["json", "markdown"]


# ---------------------------------------------------------------------------------------- cells
def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):  # "inf" as coldkit.evaluation.report writes non-finite values
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


def _fid_cell(values: dict[str, Any], key: str, count: bool = False) -> str:
    """FID (with its image count in brackets if ``count``) or KID; ``n/c`` when absent (the JSON
    report has KID's std)."""
    number = _number(values.get(key))
    if number is None:
        return "n/c"
    if key == "kid":
        return f"{number:.4f}"
    images = values.get("fid_images")
    return f"{number:.1f} ({images})" if count and images is not None else f"{number:.1f}"


def _fid_counts(summaries: Sequence[RunSummary]) -> set[Any]:
    """The image counts the runs' FIDs were computed on."""
    return {
        summary.row(row).get("fid_images")
        for summary in summaries if summary.finished for row in ROWS
    } - {None}


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


def _row_label(row: str, summary: RunSummary) -> str:
    return f"sampled ({summary.sampler})" if row == "sampled" else row


def _metric_cells(summary: RunSummary, row: str, columns: Sequence[tuple[str, str]]) -> list[str]:
    """One Table-1 row's metrics of a run (blank while it is not finished)."""
    values = summary.row(row)
    count = any(label == _LABELS["fid"] for key, label in columns if key == "fid")
    return [
        (_fid_cell(values, key, count) if key in ("fid", "kid") else _metric_cell(values.get(key)))
        if summary.finished else ""
        for key, _ in columns
    ]


def _generation_cells(summary: RunSummary, fid: bool) -> list[str]:
    """The judge's largest class share and Fréchet ratio, and (if ``fid``) the Inception FID of
    the samples with its image count (blank where it did not judge or measure)."""
    shares = summary.generation or {}
    cells = [
        _share_cell(shares.get("largest_class_share")),
        _ratio_cell(shares.get("frechet_ratio")),
    ]
    if fid:
        cells.append(_fid_cell(shares, "fid", count=True) if shares.get("fid") is not None else "")
    return cells


def _has_generation_fid(summaries: Sequence[RunSummary]) -> bool:
    return any((summary.generation or {}).get("fid") is not None for summary in summaries)


def _about(summary: RunSummary) -> list[str]:
    """The run's name, its degradation and restorer, and its training, stacked in one column."""
    if summary.finished:
        minutes = summary.train_minutes
        trained = f"{_steps_cell(summary) or '?'} steps" + (
            "" if minutes is None else f", {minutes:.1f} min"
        )
    else:
        trained = "not finished"
    return [
        summary.name,
        f"{_degradation_cell(summary)}, {_restorer_cell(summary)}",
        trained,
    ]


# ---------------------------------------------------------------------------------- the tables
def metric_columns(summaries: Sequence[RunSummary]) -> list[tuple[str, str]]:
    """SSIM, RMSE, PSNR, and FID and KID when at least one run measured them."""
    has_fid = any(
        _number(summary.row(row).get("fid")) is not None for summary in summaries for row in ROWS
    )
    counts = _fid_counts(summaries)
    shown = [(key, label) for key, label in COLUMNS if key not in ("fid", "kid") or has_fid]
    if len(counts) != 1:  # the counts differ: each FID cell carries its own
        return shown
    (count,) = counts
    return [
        (key, f"{label} ({count} images)" if key in ("fid", "kid") else label)
        for key, label in shown
    ]


def _has_generation(summaries: Sequence[RunSummary]) -> bool:
    return any(summary.generation is not None for summary in summaries)


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
    steps and minutes are stacked in its first column so the table fits 80 columns (KID is
    left to the Markdown and JSON reports for the same reason)."""
    columns = [column for column in metric_columns(summaries) if column[0] != "kid"]
    counts = _fid_counts(summaries)
    if len(counts) == 1 and any(key == "fid" for key, _ in columns):
        # The count under the table, so the FID column stays narrow.
        columns = [(key, _LABELS[key] if key == "fid" else label) for key, label in columns]
    generation = _has_generation(summaries)
    table = Table(title=title)
    if len(counts) == 1 and any(key == "fid" for key, _ in columns):
        table.caption = f"FID on {next(iter(counts))} images per row"
    table.add_column("run")
    table.add_column("row")
    for _, label in columns:
        table.add_column(label, justify="right")
    if generation:
        table.add_column("largest class", justify="right")
        table.add_column("Fréchet ratio", justify="right")
    generation_fid = generation and _has_generation_fid(summaries)
    if generation_fid:
        table.add_column("generation FID", justify="right")
    for index, summary in enumerate(summaries):
        last = index == len(summaries) - 1
        about = _about(summary)
        tail = _generation_cells(summary, generation_fid) if generation else []
        for position, row in enumerate(ROWS):
            label = _row_label(row, summary) if summary.finished else ""
            table.add_row(
                about[position] if position < len(about) else "",
                label,
                *_metric_cells(summary, row, columns),
                *(tail if position == 0 else [""] * len(tail)),
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
    generation_fid = generation and _has_generation_fid(summaries)
    if generation_fid:
        header += ["generation FID (images)"]
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
            cells += _metric_cells(summary, row, columns)
        if generation:
            cells += _generation_cells(summary, generation_fid)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    notes = comparison_notes(summaries)
    if notes:
        lines.append("")
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ JSON
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


def _run_data(summary: RunSummary) -> dict[str, Any]:
    """One run's settings and Table-1 rows, as in its metrics.json."""
    metrics = summary.metrics or {}
    return {
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


def json_report(
    summaries: Sequence[RunSummary], figure: ComparisonFigure | None = None
) -> dict[str, Any]:
    """Every run's settings and Table-1 rows as in its metrics.json, and the figure's layout."""
    data: dict[str, Any] = {
        "runs": [_run_data(summary) for summary in summaries],
        "notes": comparison_notes(summaries),
    }
    if figure is not None:
        data["figure"] = {
            "path": str(figure.path) if figure.path is not None else None,
            "columns": figure.labels,
            "runs": figure.runs,
            "images": figure.images,
            "notes": figure.notes,
        }
    return _plain(data)


# --------------------------------------------------------------------------------- the reports
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
        write_text_atomic(path, render_report(summaries, kind, figure))
    except OSError as exc:
        raise ConfigError(
            f"Cannot write the report to {path} ({exc}). Pick another --out."
        ) from None
    return path


__all__ = [
    "COLUMNS",
    "ReportFormat",
    "comparison_notes",
    "json_report",
    "markdown_report",
    "metric_columns",
    "render_report",
    "rich_table",
    "write_report",
]
