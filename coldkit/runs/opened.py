"""An opened run: a trained model with what it was trained for, ready to degrade and restore.

:func:`coldkit.runs.folder.open_run` makes one (from a run folder or an exported model folder);
``coldkit generate``, ``coldkit restore``, ``coldkit export``, ``coldkit compare`` and the Python
API (:class:`coldkit.api.Run` is this object, plus ``generate``) all work on it. Opening applies
the run's ``[sampling]`` switches to the restorer once; the run's one dataset reader is its
context's ``data``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from coldkit.config import Experiment, resolve_sampler
from coldkit.data.splits import load_split
from coldkit.errors import ConfigError, ParamsError
from coldkit.plugins import Registry
from coldkit.plugins.compat import random_params
from coldkit.protocols import BuildContext, Degradation, DegradationParams, Sampler

@dataclass
class LoadedRun:
    """A run opened for inference: the restorer (EMA weights) in eval mode on ``device``, with the
    run's ``[sampling]`` switches applied, and the degradation it was trained with.

    ``context`` is the run's :class:`~coldkit.protocols.BuildContext` as it serves (the model's
    recorded ``image_size``, ``channels`` and ``steps``, the device, the seed, the evaluation
    split and its one dataset reader, ``context.data``): the one both the restorer and the
    degradation were built with. ``step`` is the training step of the loaded checkpoint.
    """

    root: Path
    experiment: Experiment
    restorer: nn.Module
    degradation: Degradation
    context: BuildContext
    device: torch.device
    step: int
    registry: Registry
    #: Where the run's metrics.json is (:attr:`coldkit.runs.folder.RunPaths.metrics`).
    _metrics_file: Path | None = field(default=None, repr=False)
    _metrics: dict[str, Any] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, step={self.step})"

    @property
    def steps(self) -> int:
        """T, the degradation's highest level."""
        return self.degradation.steps

    @property
    def sampler(self) -> Sampler:
        """The run's sampler (``evaluate.sampler``, the one of the *sampled* row)."""
        return self.experiment.sampler.build()

    def get_sampler(self, name: str | None = None) -> Sampler:
        """A sampler by name (``direct``, ``naive``, ``improved``, ...); default the run's own.

        An unknown name raises :class:`ConfigError` listing the registered ones.
        """
        if name is None:
            return self.sampler
        return resolve_sampler(self.registry, name, "sampler").build()

    @property
    def metrics(self) -> dict[str, Any] | None:
        """The run's ``metrics.json`` (Table 1 rows, timings, training info); None before the run
        has been evaluated."""
        if self._metrics is None and self._metrics_file is not None:
            if self._metrics_file.is_file():
                self._metrics = json.loads(self._metrics_file.read_text())
        return self._metrics

    def images(self, split: str = "test", count: int | None = None) -> Tensor:
        """Images of the run's dataset (``train``, ``val`` or ``test`` split), resized to the
        model's size as training and evaluation see them; the first ``count`` if given."""
        loaded = load_split(
            self.experiment.dataset, split, self.context.image_size, self.context.channels
        )
        return loaded.images if count is None else loaded.images[:count]

    @torch.no_grad()
    def degrade(
        self, x0: Tensor, t: int | Tensor, *, seed: int | None = None
    ) -> tuple[Tensor, DegradationParams | None]:
        """``D(x0, t)`` of a batch ``(B, C, H, W)`` in [0, 1], with the degradation's random
        parameters drawn from ``seed`` (default: the run's seed).

        Returns the degraded images (CPU) and the parameters; pass those to :meth:`restore` so the
        sampler reuses the same draw.
        """
        generator = torch.Generator().manual_seed(
            self.experiment.config.seed if seed is None else seed
        )
        x0 = x0.to(self.device)
        params = self.degradation.sample_params(x0, generator)
        x_t = self.degradation.degrade(x0, self._levels(t, len(x0)), params)
        return x_t.cpu(), params

    @torch.no_grad()
    def restore(
        self,
        x_t: Tensor,
        t: int | Tensor,
        *,
        sampler: str | None = None,
        params: DegradationParams | None = None,
        seed: int | None = None,
    ) -> Tensor:
        """Estimate ``x0`` from degraded images ``x_t`` ``(B, C, H, W)`` at level ``t``.

        ``t`` is one int for the batch or a ``(B,)`` tensor. ``sampler`` is a sampler name
        (default: the run's ``evaluate.sampler``). ``params`` are the degradation's random
        parameters (from :meth:`degrade`); they may be left out only for a deterministic
        degradation (a degradation with random parameters raises
        :class:`~coldkit.errors.ParamsError`: they cannot be known from ``x_t``). ``seed`` is
        kept for compatibility and unused. Returns the sampler's output on the CPU, unclamped.
        """
        sample = self.get_sampler(sampler)
        x_t = x_t.to(self.device)
        levels = self._levels(t, len(x_t))
        if params is None:
            params = params_of_degraded_images(self.degradation, x_t)
        return sample(self.restorer, self.degradation, x_t, levels, params).float().cpu()

    def _levels(self, t: int | Tensor, count: int) -> Tensor:
        if isinstance(t, Tensor):
            levels = t.to(device=self.device, dtype=torch.long).reshape(-1)
            if levels.numel() == 1:
                levels = levels.expand(count)
            if levels.numel() != count:
                raise ConfigError(
                    f"t has {levels.numel()} levels for {count} images; pass one level per image "
                    "or a single int."
                )
        else:
            levels = torch.full((count,), int(t), dtype=torch.long, device=self.device)
        if count and not (0 <= int(levels.min()) and int(levels.max()) <= self.steps):
            raise ConfigError(
                f"t must lie in the run's levels 0..{self.steps}, got {levels.tolist()}."
            )
        return levels


def params_of_degraded_images(degradation: Degradation, x_t: Tensor) -> DegradationParams:
    """The degradation parameters of images that arrive degraded (``coldkit restore``,
    :meth:`LoadedRun.restore` without ``params``): none for a deterministic degradation.

    For a degradation with random parameters the draw that degraded a file cannot be read back
    from it, and a fresh draw would restore against the wrong mask, snow or target image: that is
    refused with :class:`ParamsError`. A degradation that can read them from images at level T
    (``params_of_degraded``; ``paired``: y is the image itself) gives them.
    """
    if callable(getattr(degradation, "params_of_degraded", None)):
        return degradation.params_of_degraded(x_t)
    probe = random_params(degradation, x_t)
    if probe:
        raise ParamsError(
            f"degradation {degradation.name!r} draws random parameters "
            f"({', '.join(sorted(probe))}) for every image, and they cannot be known from a "
            "degraded image: restoring with a fresh draw would undo a degradation the image never "
            "had. Restore the tensors with the params Run.degrade returned "
            "(Run.restore(x_t, t, params=params)), or train with a setting of the degradation "
            "that draws nothing (its documentation names it; for the built-in mask, centre = "
            "\"fixed\"): then random_params is empty and any image can be restored."
        )
    return {}


__all__ = ["LoadedRun", "params_of_degraded_images"]
