"""Open a finished (or checkpointed) run folder: its experiment, trained restorer and degradation.

``coldkit generate`` and ``coldkit restore`` start here, and so does Python code that wants a
trained model back::

    from coldkit.runfolder import open_run
    run = open_run("runs/mnist_blur")
    x0_hat = run.restorer(x_t, t)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from coldkit.checkpoint import load_checkpoint
from coldkit.config import Experiment, build_experiment, load_experiment
from coldkit.errors import CheckpointError, ConfigError
from coldkit.plugins import Registry
from coldkit.protocols import Degradation, RestorerContext

CONFIG_FILE = "config.toml"
METADATA_FILE = "run.json"
CHECKPOINT_FILE = Path("checkpoints") / "last.pt"


@dataclass
class LoadedRun:
    """A run folder opened for inference: the restorer is in eval mode on ``device``."""

    root: Path
    experiment: Experiment
    restorer: nn.Module
    degradation: Degradation
    context: RestorerContext
    device: torch.device
    step: int


def build_degradation(experiment: Experiment) -> Degradation:
    """The experiment's degradation, built from its validated parameters."""
    return experiment.degradation.record.component(experiment.degradation.params)


def build_restorer(experiment: Experiment, context: RestorerContext) -> nn.Module:
    """The experiment's restorer network (untrained), or a config error naming the fix."""
    try:
        return experiment.restorer.record.component(experiment.restorer.params, context)
    except ValueError as exc:
        raise ConfigError(
            f"restorer: {exc}. Adjust [restorer] or dataset.image_size."
        ) from None


def require_run_folder(root: Path | str) -> Path:
    """``root`` as a Path, or a :class:`ConfigError` if it holds no ``config.toml``."""
    root = Path(root)
    if not (root / CONFIG_FILE).is_file():
        raise ConfigError(
            f"{root} is not a coldkit run folder (no {CONFIG_FILE}). Pass the folder that "
            "`coldkit run` wrote, e.g. runs/mnist_blur."
        )
    return root


def read_context(root: Path) -> RestorerContext | None:
    """The restorer context recorded in ``run.json`` (None for a run that has not started)."""
    path = root / METADATA_FILE
    if not path.is_file():
        return None
    try:
        recorded = json.loads(path.read_text()).get("restorer_context")
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict):
        return None
    try:
        return RestorerContext(**recorded)
    except TypeError:  # a hand-edited run.json
        return None


def open_run(
    root: Path | str,
    registry: Registry | None = None,
    device: str | torch.device | None = None,
    config: dict[str, Any] | None = None,
) -> LoadedRun:
    """Load a run folder's config and the EMA weights (or raw weights) of its last checkpoint.

    ``device`` defaults to the run's own ``device`` setting (``auto``: CUDA, MPS, then CPU).
    ``config`` replaces the folder's ``config.toml`` data (e.g. with another ``[generate]``
    section); its model must be the one the checkpoint was trained with.
    """
    from coldkit.run import select_device  # run imports this module: import late

    root = require_run_folder(root)
    config_path = root / CONFIG_FILE
    registry = registry if registry is not None else Registry.discover()
    if config is None:
        experiment = load_experiment(config_path, registry)
    else:
        experiment = build_experiment(config, registry)
    checkpoint_path = root / CHECKPOINT_FILE
    if not checkpoint_path.is_file():
        raise CheckpointError(
            f"Run folder {root} has no checkpoint ({CHECKPOINT_FILE}) yet. Train it first with "
            f"`coldkit run {root}`."
        )
    state = load_checkpoint(checkpoint_path)
    degradation = build_degradation(experiment)
    context = read_context(root)
    if context is None:
        raise CheckpointError(
            f"{root}/{METADATA_FILE} does not record the model's input shape (restorer_context). "
            f"Run `coldkit run {root}` once with this version of coldkit to record it."
        )
    restorer = build_restorer(experiment, context)
    weights = state["ema"]["model"] if state.get("ema") else state["model"]
    try:
        restorer.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(
            f"Checkpoint {checkpoint_path} does not fit the model in {config_path} ({exc}). "
            "Restore the config the run was trained with."
        ) from None
    chosen = select_device(str(device) if device is not None else experiment.config.device)
    restorer = restorer.to(chosen).eval().requires_grad_(False)
    return LoadedRun(root, experiment, restorer, degradation, context, chosen, int(state["step"]))


__all__ = [
    "LoadedRun",
    "build_degradation",
    "build_restorer",
    "open_run",
    "read_context",
    "require_run_folder",
]
