"""An opened run: a trained model with what it was trained for, ready to degrade and restore.

:func:`open_run` is the one way to open one, from a run folder or an exported model folder, in
one call: the experiment built once, the checkpoint (or exported weights) checked against it and
loaded, the device chosen, the restorer built and its ``[sampling]`` switches applied, the
run's one dataset reader made. ``coldkit generate``, ``coldkit restore``, ``coldkit export``,
``coldkit compare`` and the Python API (:class:`coldkit.api.Run` is this object, plus
``generate``) all work on what it returns::

    from coldkit.runs.opened import open_run
    run = open_run("runs/mnist_blur")
    x0_hat = run.restorer(x_t, t)
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
from torch import Tensor, nn

from coldkit.config import Experiment, build_experiment, read_toml, resolve_sampler
from coldkit.data.splits import dataset_reader, load_split, serving_split
from coldkit.errors import CheckpointError, ConfigError, ParamsError
from coldkit.plugins import Registry
from coldkit.plugins.compat import random_params
from coldkit.protocols import BuildContext, Degradation, DegradationParams, Sampler
from coldkit.runs import exported
from coldkit.runs.checkpoint import check_trained_for, load_checkpoint
from coldkit.runs.cost import build_restorer, check_before_writing
from coldkit.runs.folder import (
    CHECKPOINT_FILE,
    METADATA_FILE,
    RunPaths,
    build_degradation,
    context_of_shape,
    read_context,
    require_run_folder,
    trained_for,
)
from coldkit.runtime.acceleration import prepare_sampling
from coldkit.runtime.device import select_device

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
    #: Where the run's metrics.json is (:attr:`RunPaths.metrics`).
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
        :class:`~coldkit.errors.ParamsError`: they cannot be known from ``x_t``). ``seed`` seeds
        what a sampler draws (``stochastic``'s noise; default: the run's seed), so a call is
        reproducible. Returns the sampler's output on the CPU, unclamped.
        """
        sample = self.get_sampler(sampler)
        generator = torch.Generator().manual_seed(
            self.experiment.config.seed if seed is None else seed
        )
        x_t = x_t.to(self.device)
        levels = self._levels(t, len(x_t))
        if params is None:
            params = params_of_degraded_images(self.degradation, x_t)
        return sample(
            self.restorer, self.degradation, x_t, levels, params, generator=generator
        ).float().cpu()

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


Opened = TypeVar("Opened", bound=LoadedRun)
#: What :func:`open_run` builds the experiment from instead of the folder's own config: other
#: config data, or a change of the folder's (a function of a copy of its data).
ConfigChange = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class _Stored:
    """What a folder stores of a trained model: its experiment (built once), weights, step and
    model shape, and the file the weights came from (named by errors)."""

    experiment: Experiment
    weights: dict[str, Any]
    step: int
    shape: BuildContext
    source: Path


def open_run(
    root: Path | str,
    registry: Registry | None = None,
    device: str | torch.device | None = None,
    config: ConfigChange | None = None,
    *,
    notify: Callable[[str], None] | None = None,
    opened: type[Opened] = LoadedRun,  # type: ignore[assignment]
) -> Opened:
    """Load a run folder's config and the EMA weights (or raw weights) of its last checkpoint,
    or an exported model folder (``coldkit export``; ``hf://OWNER/NAME`` on the Hugging Face Hub).

    ``device`` defaults to the run's own ``device`` setting (``auto``: CUDA, MPS, then CPU).
    ``config`` replaces the folder's ``config.toml`` data, or (a function) changes a copy of it,
    e.g. with the options of ``coldkit generate``: the experiment is built once, from what it
    gives; its model must be the one the checkpoint was trained with. With ``notify`` (where
    the switches' notes go) the run's ``[sampling]`` switches are applied to the restorer, once:
    every command that samples passes it; ``coldkit export``, which only copies the weights,
    does not. ``opened`` is the class made (:class:`coldkit.api.Run` for the Python API).
    """
    root = exported.locate(root)
    registry = registry if registry is not None else Registry.discover()
    stored = _stored_model(root, registry, config, device)
    experiment = stored.experiment
    chosen = select_device(str(device) if device is not None else experiment.config.device)
    context = _serving_context(experiment, stored.shape, chosen)
    paths = RunPaths(root)
    restorer = _trained_restorer(stored, context, chosen, paths, notify)
    return opened(
        root, experiment, restorer, build_degradation(experiment, context), context, chosen,
        stored.step, registry, paths.metrics,
    )


def _stored_model(
    root: Path, registry: Registry, config: ConfigChange | None, device: Any
) -> _Stored:
    """What an exported model folder or a run folder stores, read and checked."""
    if exported.is_exported(root):
        return _exported_model(root, registry, config, device)
    return _run_folder_model(require_run_folder(root), registry, config)


def _trained_restorer(
    stored: _Stored,
    context: BuildContext,
    device: torch.device,
    paths: RunPaths,
    notify: Callable[[str], None] | None,
) -> nn.Module:
    """The experiment's restorer built for ``context`` with the stored weights, in eval mode on
    ``device``, with the run's ``[sampling]`` switches applied where ``notify`` hears them;
    weights that do not fit the model are a :class:`CheckpointError`."""
    restorer = build_restorer(stored.experiment, context)
    try:
        restorer.load_state_dict(stored.weights)
    except RuntimeError as exc:  # torch lists every tensor: its first line says enough
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "RuntimeError"
        raise CheckpointError(
            f"{stored.source} does not fit the model in {paths.config} "
            f"({first_line.rstrip(':')}). Restore the config the model was trained with."
        ) from None
    restorer = restorer.to(device).eval().requires_grad_(False)
    if notify is not None:
        prepare_sampling(restorer, stored.experiment.config.sampling, device, notify)
    return restorer


def _exported_model(
    root: Path, registry: Registry, config: ConfigChange | None, device: Any
) -> _Stored:
    """An exported folder's experiment, weights, step and shape, each checked before use: the
    manifest's schema and files, its plugins, its config as a config (with the same cost checks
    a run gets before its first allocation), and the manifest against the weights."""
    manifest = exported.read_manifest(root)
    exported.check_plugins(manifest, registry)
    experiment = build_experiment(_configured(manifest.config, config), registry)
    check_before_writing(experiment, str(device) if device is not None else None)
    shape = context_of_shape(manifest.restorer_context)  # the schema checked its three keys
    assert shape is not None
    expected = trained_for(experiment, shape)
    exported.check_model(manifest, expected, experiment.config.dataset.image_size)
    weights = exported.load_weights(manifest)
    return _Stored(experiment, weights, manifest.step, shape, root / exported.WEIGHTS_FILE)


def _run_folder_model(root: Path, registry: Registry, config: ConfigChange | None) -> _Stored:
    """A run folder's experiment, its last checkpoint (validated, and checked against what the
    experiment describes) and the model shape recorded in run.json."""
    paths = RunPaths(root)
    if config is None or callable(config):
        experiment = build_experiment(_configured(read_toml(paths.config), config), registry)
    else:
        experiment = build_experiment(config, registry)
    if not paths.checkpoint.is_file():
        raise CheckpointError(
            f"Run folder {root} has no checkpoint ({CHECKPOINT_FILE}) yet. Train it first "
            f"with `coldkit run {root}`."
        )
    state = load_checkpoint(paths.checkpoint)
    shape = read_context(root)
    if shape is None:
        raise CheckpointError(
            f"{root}/{METADATA_FILE} does not record the model's input shape (restorer_context). "
            f"Run `coldkit run {root}` once with this version of coldkit to record it."
        )
    check_trained_for(paths.checkpoint, state, trained_for(experiment, shape))
    weights = state["ema"]["model"] if state.get("ema") else state["model"]
    return _Stored(experiment, weights, int(state["step"]), shape, paths.checkpoint)


def _configured(data: dict[str, Any], config: ConfigChange | None) -> dict[str, Any]:
    """The config data an opened run is built from: the folder's ``data`` as ``config`` says."""
    if config is None:
        return data
    return config(copy.deepcopy(data)) if callable(config) else config


def _serving_context(
    experiment: Experiment, shape: BuildContext, device: torch.device
) -> BuildContext:
    """The build context of an opened run: it serves the evaluation split (morph's targets come
    from the target dataset's test split), reading datasets through the run's registry."""
    return BuildContext(
        shape.image_size, shape.channels, shape.steps, device, experiment.config.seed,
        serving_split(experiment), dataset_reader(experiment, shape.image_size),
    )


__all__ = ["ConfigChange", "LoadedRun", "open_run", "params_of_degraded_images"]
