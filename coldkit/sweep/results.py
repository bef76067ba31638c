"""What a finished ``coldkit sweep`` writes into its folder: sweep.json, the ``coldkit compare``
report and figure over its points, and sweep.png (each Table-1 metric against the first swept
value)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from coldkit.evaluation.compare import (
    RunSummary,
    markdown_report,
    summarize_runs,
    write_comparison_figure,
)
from coldkit.evaluation.metrics import ROWS
from coldkit.plugins import Registry
from coldkit.runtime.files import write_error, write_text_atomic
from coldkit.sweep.grid import Sweep, setting_value

SWEEP_FILE = "sweep.json"
PLOT_FILE = "sweep.png"
REPORT_FILE = "compare.md"
FIGURE_FILE = "compare.png"
#: Table-1 metrics plotted, with the direction that is better.
PLOTTED = (("ssim", "SSIM (higher is better)"), ("rmse", "RMSE (lower is better)"),
           ("psnr", "PSNR dB (higher is better)"), ("fid", "FID (lower is better)"))




def sweep_data(sweep: Sweep, summaries: Sequence[RunSummary] | None = None) -> dict[str, Any]:
    """What sweep.json holds: the grid and, per point, its folder, status and Table-1 rows."""
    by_root = {Path(summary.root): summary for summary in summaries or ()}
    points = []
    for point in sweep.points:
        summary = by_root.get(point.folder)
        points.append({
            "name": point.name,
            "settings": {key: setting_value(raw) for key, raw in point.settings},
            "folder": str(point.folder),
            "status": sweep.status.get(point.name, "not started"),
            "train_steps": None if summary is None else summary.train_steps,
            "train_minutes": None if summary is None else summary.train_minutes,
            "rows": {} if summary is None or not summary.finished else {
                row: summary.row(row) for row in ROWS},
        })
    return {
        "config": str(sweep.config),
        "over": {axis.key: [setting_value(raw) for raw in axis.values] for axis in sweep.axes},
        "set": list(sweep.overrides),
        "parallel": sweep.parallel,
        "points": points,
        "files": {"report": REPORT_FILE, "figure": FIGURE_FILE, "plot": PLOT_FILE},
    }


def write_sweep_json(sweep: Sweep, summaries: Sequence[RunSummary] | None = None) -> Path:
    path = sweep.out / SWEEP_FILE
    return write_text_atomic(path, json.dumps(sweep_data(sweep, summaries), indent=2) + "\n")


def finish_sweep(sweep: Sweep, registry: Registry, say: Callable[[str], None]) -> dict[str, Any]:
    """sweep.json, compare.md, compare.png and sweep.png over the finished points."""
    summaries = summarize_runs([point.folder for point in sweep.points])
    write_sweep_json(sweep, summaries)
    write_text_atomic(sweep.out / REPORT_FILE, markdown_report(summaries))
    try:
        drawn = write_comparison_figure(summaries, sweep.out / FIGURE_FILE, registry=registry)
        plot_sweep(sweep, summaries, sweep.out / PLOT_FILE)
    except OSError as exc:  # a full disk or a folder made read-only meanwhile
        raise write_error(sweep.out, exc) from None
    for note in drawn.notes:
        say(f"figure: {note}")
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
        lines.setdefault(label, []).append((setting_value(point.settings[0][1]), summary))
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
    values = [setting_value(raw) for raw in sweep.axes[0].values]
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



__all__ = ["FIGURE_FILE", "PLOT_FILE", "REPORT_FILE", "SWEEP_FILE", "finish_sweep", "plot_sweep",
           "sweep_data", "write_sweep_json"]
