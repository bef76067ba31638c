"""``coldkit compare``: several run folders side by side — a table of their Table-1 rows and one
Figure-3 grid re-made for the same held-out images.

Everything for the table comes from the files a run wrote (``config.toml``, ``run.json``,
``metrics.json``, ``generation.json``); nothing is recomputed. The figure is recomputed, because
each run's own ``figure.png`` may show other images: the first run's first K held-out images are
degraded with every run's own degradation to its level T and restored with its own sampler::

    from coldkit.evaluation.compare import expand_run_paths, summarize_runs, markdown_report
    runs = summarize_runs(expand_run_paths(["runs/*"]))
    print(markdown_report(runs))

:mod:`~coldkit.evaluation.compare.reading` reads the run folders,
:mod:`~coldkit.evaluation.compare.rendering` writes the table and the reports,
:mod:`~coldkit.evaluation.compare.figure` draws the figure.
"""

from __future__ import annotations

from coldkit.evaluation.compare.figure import ComparisonFigure, write_comparison_figure
from coldkit.evaluation.compare.reading import (
    RunSummary,
    expand_run_paths,
    run_problem,
    summarize_runs,
)
from coldkit.evaluation.compare.rendering import (
    comparison_notes,
    json_report,
    markdown_report,
    render_report,
    rich_table,
    write_report,
)

__all__ = [
    "ComparisonFigure",
    "RunSummary",
    "comparison_notes",
    "expand_run_paths",
    "json_report",
    "markdown_report",
    "render_report",
    "rich_table",
    "run_problem",
    "summarize_runs",
    "write_comparison_figure",
    "write_report",
]
