"""Progress bars of the stages that work through images in batches (evaluating, generating)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def batch_progress(console: Console, label: str) -> Progress:
    """A bar counting images done, e.g. ``batch_progress(console, "evaluating")``."""
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


__all__ = ["batch_progress"]
