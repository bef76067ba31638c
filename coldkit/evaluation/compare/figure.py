"""One Figure-3 grid for several runs: the same held-out images, degraded and restored by each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from coldkit.evaluation.compare.reading import RunSummary
from coldkit.errors import ColdkitError, DataError
from coldkit.data.imaging import save_grid
from coldkit.plugins import Registry
from coldkit.runs.opened import open_run
from coldkit.runs.opened import LoadedRun
from coldkit.data.served import data_params, params_for, rows_of
from coldkit.data.splits import evaluation_split
from coldkit.protocols import DegradationParams


@dataclass
class ComparisonFigure:
    """What :func:`write_comparison_figure` drew, and why any run is missing from it."""

    path: Path | None  #: None when no run could be drawn
    labels: list[str]  #: column labels, left to right
    runs: list[str]  #: runs drawn, in order
    images: int  #: rows (held-out images)
    notes: list[str]


@dataclass(frozen=True)
class _Reference:
    """The run whose held-out images every column shows, and the shape they have."""

    name: str
    size: int
    channels: int
    images: Tensor
    #: Parameters the data serves for these images (a paired dataset's twins), or None.
    served: DegradationParams | None = None

    def mismatch(self, name: str, loaded: LoadedRun) -> str | None:
        """Why run ``name`` cannot restore these images, or None when it can."""
        size, channels = loaded.context.image_size, loaded.context.channels
        wanted = [key for key in data_params(loaded.degradation) if key not in (self.served or {})]
        if wanted:
            return (f"{name} is not in the figure: its degradation takes {', '.join(wanted)} "
                    f"from the data, and {self.name}'s held-out images come without it")
        if (size, channels) == (self.size, self.channels):
            return None
        return (
            f"{name} is not in the figure: it takes {channels}-channel {size}x{size} "
            f"images and {self.name} (whose held-out images the figure shows) "
            f"{self.channels}-channel {self.size}x{self.size}; compare it with runs of "
            "its own image size"
        )


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
    does) and restores them with its own ``evaluate.sampler``, its ``[sampling]`` switches
    applied. A run without a usable checkpoint, or whose image size or channel count differs from
    the first run's, is left out with a note.
    """
    registry = registry if registry is not None else Registry.discover()
    notes: list[str] = []
    columns: list[Tensor] = []
    labels: list[str] = []
    drawn: list[str] = []
    reference: _Reference | None = None
    for summary in summaries:
        try:
            loaded = open_run(
                summary.root, registry, device=device,
                notify=lambda note, name=summary.name: notes.append(f"{name}: {note}"),
            )
        except ColdkitError as error:
            notes.append(f"{summary.name} is not in the figure: {error}")
            continue
        if reference is None:
            reference = _reference(summary, loaded, images)
            columns.append(reference.images)
            labels.append("original")
        elif (problem := reference.mismatch(summary.name, loaded)) is not None:
            notes.append(problem)
            continue
        columns += _draw_run(summary, loaded, reference, notes)
        # save_grid cuts labels to the cell width: the run's name first, then what the column is.
        labels += [
            f"{summary.name} T={loaded.degradation.steps}",
            f"{summary.name} {summary.sampler}",
        ]
        drawn.append(summary.name)
        del loaded
    if reference is None or not drawn:
        notes.append("no figure: none of the runs could be drawn")
        return ComparisonFigure(None, [], [], 0, notes)
    save_grid(columns, labels, path)
    return ComparisonFigure(path, labels, drawn, len(reference.images), notes)


def _reference(summary: RunSummary, loaded: LoadedRun, images: int | None) -> _Reference:
    """The first ``images`` held-out images of the first run that opened (its evaluation split)."""
    experiment = loaded.experiment
    size, channels = loaded.context.image_size, loaded.context.channels
    count = images if images is not None else experiment.config.evaluate.figure_rows
    try:
        split = evaluation_split(experiment, size, channels)
    except ColdkitError as error:
        raise DataError(
            f"The comparison figure needs the held-out images of {summary.name}: {error} "
            "To compare without the figure, pass --no-figure."
        ) from None
    return _Reference(summary.name, size, channels, split.images[:count],
                      rows_of(split.params, slice(None, count)))


def _draw_run(
    summary: RunSummary, loaded: LoadedRun, reference: _Reference, notes: list[str]
) -> list[Tensor]:
    """The run's two columns, degraded and sampled (its ``[sampling]`` switches applied when it
    was opened); an unfinished run's step goes to ``notes``."""
    degraded, sampled = _degrade_and_sample(loaded, reference.images, reference.served)
    if not summary.finished:
        notes.append(
            f"{summary.name} is not finished: the figure shows its checkpoint at step "
            f"{loaded.step}"
        )
    return [degraded, sampled]


@torch.no_grad()
def _degrade_and_sample(
    loaded: LoadedRun, originals: Tensor, served: DegradationParams | None
) -> tuple[Tensor, Tensor]:
    """D(x0, T) with the run's degradation and its sampler's restoration, as its evaluation does
    (``served``: what the data serves for ``originals``, for a degradation that reads it)."""
    degradation = loaded.degradation
    x0 = originals.to(loaded.device)
    generator = torch.Generator().manual_seed(loaded.experiment.config.seed)
    params = params_for(degradation, x0, generator, served)
    t = torch.full((len(x0),), degradation.steps, dtype=torch.long, device=loaded.device)
    x_t = degradation.degrade(x0, t, params)
    sampler = loaded.experiment.sampler.build()
    sampled = sampler(loaded.restorer, degradation, x_t, t, params)
    return x_t.cpu(), sampled.cpu()


__all__ = ["ComparisonFigure", "write_comparison_figure"]
