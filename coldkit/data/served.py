"""Degradation parameters that come from the data (a paired dataset's degraded twins).

A dataset may serve per-image parameters in :attr:`coldkit.protocols.ImageSet.params`; a
degradation that declares ``data_params`` (their names) takes the rows of the images it degrades
beside whatever ``sample_params`` draws. :func:`params_for` is the one place that puts the two
together: every stage that degrades known images (training, evaluation) asks it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from coldkit.errors import ParamsError
from coldkit.protocols import DegradationParams


def data_params(degradation: Any) -> tuple[str, ...]:
    """The names of the parameters ``degradation`` takes from the data (empty for most)."""
    return tuple(getattr(degradation, "data_params", None) or ())


def params_for(
    degradation: Any,
    x0: Tensor,
    generator: torch.Generator | None,
    served: DegradationParams | None = None,
) -> DegradationParams:
    """The degradation's parameters for the batch ``x0``: what ``sample_params`` draws, plus
    (for a degradation with ``data_params``) the data's rows ``served`` for the same images."""
    params = dict(degradation.sample_params(x0, generator))
    params.update(served_rows(degradation, x0, served))
    return params


def served_rows(
    degradation: Any, x0: Tensor, served: DegradationParams | None
) -> DegradationParams:
    """The rows of ``served`` that ``degradation`` takes from the data, on ``x0``'s device and
    dtype (empty for a degradation without ``data_params``); refused when the data serves none."""
    names = data_params(degradation)
    missing = [name for name in names if not served or name not in served]
    if missing:
        raise ParamsError(
            f"degradation {degradation.name!r} takes {', '.join(missing)} from the data (one "
            "per image), but the dataset serves none: use a dataset that serves pairs "
            "(paired-folder, docs/paired.md), or an ImageSet with params={'y': ...} from Python."
        )
    rows = {name: served[name].to(device=x0.device, dtype=x0.dtype) for name in names}  # type: ignore[index]
    for name, value in rows.items():
        if value.shape != x0.shape:
            raise ParamsError(
                f"the data serves {name} of shape {tuple(value.shape)} for images of shape "
                f"{tuple(x0.shape)}: each image needs its own {name} of the same size."
            )
    return rows


def rows_of(served: DegradationParams | None, index: Any) -> DegradationParams | None:
    """The rows ``index`` (a slice or an index tensor) of served parameters, or None."""
    if served is None:
        return None
    return {name: value[index] for name, value in served.items()}


__all__ = ["data_params", "params_for", "rows_of", "served_rows"]
