"""Open a finished (or checkpointed) run folder: its experiment, trained restorer and degradation.

``coldkit generate`` and ``coldkit restore`` start here, and so does Python code that wants a
trained model back::

    from coldkit.runs.folder import open_run
    run = open_run("runs/mnist_blur")
    x0_hat = run.restorer(x_t, t)
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from coldkit.runs import exported
from coldkit.runs.checkpoint import check_trained_for, load_checkpoint
from coldkit.runs.cost import build_restorer, check_before_writing
from coldkit.runs.opened import LoadedRun
from coldkit.runtime.acceleration import prepare_sampling
from coldkit.config import Experiment, build_experiment, read_toml
from coldkit.data.splits import dataset_reader, serving_split
from coldkit.runtime.device import select_device
from coldkit.runtime.files import write_json_atomic
from coldkit.errors import CheckpointError, ConfigError
from coldkit.plugins import Registry
from coldkit.protocols import BuildContext, Degradation

CONFIG_FILE = "config.toml"
METADATA_FILE = "run.json"
CHECKPOINT_FILE = Path("checkpoints") / "last.pt"
#: The last checkpoint known healthy: a sane loss followed it (docs/run-folder-guarantees.md).
HEALTHY_CHECKPOINT_FILE = Path("checkpoints") / "healthy.pt"
#: Where ``coldkit run RUN --from-step N`` moves the checkpoints it rewinds past.
DISCARDED_CHECKPOINT_FILE = Path("checkpoints") / "discarded.pt"
DISCARDED_HEALTHY_FILE = Path("checkpoints") / "discarded-healthy.pt"
LOG_FILE = "log.txt"
METRICS_FILE = "metrics.json"
TABLE_FILE = "table.md"
FIGURE_FILE = "figure.png"
LOSS_CURVE_FILE = "loss_curve.png"
LOCK_FILE = ".lock"
PRIORS_FOLDER = "priors"
JUDGE_CLASSIFIER = Path("judge") / "classifier.pt"
GENERATED_FOLDER = "generated"
RESTORED_FOLDER = "restored"
TENSORBOARD_FOLDER = "tensorboard"
#: What a generation writes into its output folder (the run folder for ``coldkit run``).
GENERATION_JSON = "generation.json"
GENERATION_MARKDOWN = "generation.md"
GENERATED_GRID = "generated.png"
SAMPLES_FILE = "samples.pt"
#: Figure 3 of generation: x_T, intermediate levels, the sample (generation_path.png).
GENERATION_PATH = "generation_path.png"


@dataclass(frozen=True)
class RunPaths:
    """Where each artefact of a run lives: the one description of the run-folder layout."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def metadata(self) -> Path:
        return self.root / METADATA_FILE

    @property
    def log(self) -> Path:
        return self.root / LOG_FILE

    @property
    def checkpoint(self) -> Path:
        return self.root / CHECKPOINT_FILE

    @property
    def healthy_checkpoint(self) -> Path:
        """A hard link to (or copy of) the last checkpoint a sane loss followed."""
        return self.root / HEALTHY_CHECKPOINT_FILE

    @property
    def discarded_checkpoint(self) -> Path:
        """The checkpoint ``--from-step`` rewound past, kept rather than deleted."""
        return self.root / DISCARDED_CHECKPOINT_FILE

    @property
    def discarded_healthy_checkpoint(self) -> Path:
        """The healthy checkpoint ``--from-step 0`` (starting over) moved aside."""
        return self.root / DISCARDED_HEALTHY_FILE

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def table(self) -> Path:
        return self.root / TABLE_FILE

    @property
    def figure(self) -> Path:
        return self.root / FIGURE_FILE

    @property
    def loss_curve(self) -> Path:
        return self.root / LOSS_CURVE_FILE

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def generation(self) -> Path:
        """``generation.json`` of the run's own ``[generate]`` stage."""
        return self.root / GENERATION_JSON

    @property
    def judge_classifier(self) -> Path:
        return self.root / JUDGE_CLASSIFIER

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD_FOLDER

    @property
    def restored(self) -> Path:
        """Default output folder of ``coldkit restore``."""
        return self.root / RESTORED_FOLDER

    def links(self) -> list[Path]:
        """The entries coldkit writes that are symbolic links (a folder received from someone
        else could point them anywhere); empty for a folder made by coldkit."""
        entries = (
            self.config, self.metadata, self.log, self.checkpoint.parent, self.checkpoint,
            self.healthy_checkpoint, self.discarded_checkpoint, self.discarded_healthy_checkpoint,
            self.metrics, self.table, self.figure, self.loss_curve, self.lock,
            self.root / PRIORS_FOLDER, self.judge_classifier.parent, self.judge_classifier,
            self.tensorboard, self.root / GENERATED_FOLDER, self.restored, self.generation,
            self.root / GENERATION_MARKDOWN, self.root / GENERATED_GRID, self.root / SAMPLES_FILE,
        )
        return [entry for entry in entries if entry.is_symlink()]

    def prior(self, name: str) -> Path:
        """The fitted prior ``name``, cached for later generations."""
        return self.root / PRIORS_FOLDER / f"{name}.pt"

    def generated(self, name: str) -> Path:
        """Default output folder of one ``coldkit generate``."""
        return self.root / GENERATED_FOLDER / name


def build_degradation(experiment: Experiment, context: BuildContext | None = None) -> Degradation:
    """The experiment's degradation, built from its validated parameters and ``context``."""
    return experiment.degradation.build(context)


def trained_for(experiment: Experiment, context: BuildContext) -> dict[str, Any]:
    """What a checkpoint's weights were trained for, recorded in it and checked on loading: the
    degradation (with T) and restorer settings and the model's input shape."""
    data = experiment.to_dict()
    shape = context.model_shape()
    return {
        "T": shape["steps"],
        "channels": shape["channels"],
        "image_size": shape["image_size"],
        "degradation": data["degradation"],
        "restorer": data["restorer"],
    }


def require_run_folder(root: Path | str) -> Path:
    """``root`` as a Path, or a :class:`ConfigError` if it holds no ``config.toml``."""
    root = Path(root)
    if not (root / CONFIG_FILE).is_file():
        raise ConfigError(
            f"{root} is not a coldkit run folder (no {CONFIG_FILE}). Pass the folder that "
            "`coldkit run` wrote, e.g. runs/mnist_blur."
        )
    return root


def read_metadata(paths: RunPaths) -> dict[str, Any]:
    """``run.json`` as a dict (empty where it is missing or unreadable)."""
    try:
        metadata = json.loads(paths.metadata.read_text())
    except (OSError, ValueError):
        return {}
    return metadata if isinstance(metadata, dict) else {}


def write_metadata(paths: RunPaths, metadata: dict[str, Any]) -> None:
    """Write ``run.json``."""
    write_json_atomic(paths.metadata, metadata)


#: The key of ``run.json`` (and of an export's manifest) that records the model's input shape:
#: the name older versions wrote, kept so every run folder opens.
MODEL_SHAPE_KEY = "restorer_context"


def record_context(paths: RunPaths, context: BuildContext) -> None:
    """Record the model's input shape in run.json before training, so a checkpoint written by an
    interrupted run can already be opened by ``coldkit generate`` and ``coldkit restore``."""
    metadata = read_metadata(paths)
    metadata[MODEL_SHAPE_KEY] = context.model_shape()
    write_metadata(paths, metadata)


def context_of_shape(recorded: Any) -> BuildContext | None:
    """The build context a recorded model shape (``{channels, image_size, steps}``) describes;
    None for anything else (a hand-edited run.json)."""
    if not isinstance(recorded, dict) or set(recorded) != {"channels", "image_size", "steps"}:
        return None
    return BuildContext(
        image_size=recorded["image_size"], channels=recorded["channels"], steps=recorded["steps"]
    )


def read_context(root: Path) -> BuildContext | None:
    """The model's input shape recorded in ``run.json``, as a build context (None for a run that
    has not started): the one recorded place an opened run's image size comes from."""
    return context_of_shape(read_metadata(RunPaths(root)).get(MODEL_SHAPE_KEY))


Opened = TypeVar("Opened", bound=LoadedRun)
#: What :func:`open_run` builds the experiment from instead of the folder's own config: other
#: config data, or a change of the folder's (a function of a copy of its data).
ConfigChange = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


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
    if exported.is_exported(root):
        experiment, weights, step, context = _exported_model(root, registry, config, device)
        source = root / exported.WEIGHTS_FILE
    else:
        root = require_run_folder(root)
        paths = RunPaths(root)
        experiment, state = _run_folder_model(paths, registry, config)
        context: BuildContext | None = read_context(root)
        source = paths.checkpoint
        if context is not None:
            check_trained_for(paths.checkpoint, state, trained_for(experiment, context))
        weights = state["ema"]["model"] if state.get("ema") else state["model"]
        step = int(state["step"])
    if context is None:
        raise CheckpointError(
            f"{root}/{METADATA_FILE} does not record the model's input shape (restorer_context). "
            f"Run `coldkit run {root}` once with this version of coldkit to record it."
        )
    chosen = select_device(str(device) if device is not None else experiment.config.device)
    context = _serving_context(experiment, context, chosen)
    degradation = build_degradation(experiment, context)
    restorer = build_restorer(experiment, context)
    try:
        restorer.load_state_dict(weights)
    except RuntimeError as exc:  # torch lists every tensor: its first line says enough
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "RuntimeError"
        raise CheckpointError(
            f"{source} does not fit the model in {RunPaths(root).config} "
            f"({first_line.rstrip(':')}). Restore the config the model was trained with."
        ) from None
    restorer = restorer.to(chosen).eval().requires_grad_(False)
    if notify is not None:
        prepare_sampling(restorer, experiment.config.sampling, chosen, notify)
    return opened(
        root, experiment, restorer, degradation, context, chosen, step, registry,
        RunPaths(root).metrics,
    )


def _exported_model(
    root: Path, registry: Registry, config: ConfigChange | None, device: Any
) -> tuple[Experiment, dict[str, Any], int, BuildContext]:
    """An exported folder's experiment, weights, step and context, each checked before use: the
    manifest's schema and files, its plugins, its config as a config (with the same cost checks
    a run gets before its first allocation), and the manifest against the weights."""
    manifest = exported.read_manifest(root)
    exported.check_plugins(manifest, registry)
    experiment = build_experiment(_configured(manifest.config, config), registry)
    check_before_writing(experiment, str(device) if device is not None else None)
    context = context_of_shape(manifest.restorer_context)  # the schema checked its three keys
    assert context is not None
    expected = trained_for(experiment, context)
    exported.check_model(manifest, expected, experiment.config.dataset.image_size)
    return experiment, exported.load_weights(manifest), manifest.step, context


def _run_folder_model(
    paths: RunPaths, registry: Registry, config: ConfigChange | None
) -> tuple[Experiment, dict[str, Any]]:
    """A run folder's experiment and its last checkpoint (validated)."""
    if config is None or callable(config):
        experiment = build_experiment(_configured(read_toml(paths.config), config), registry)
    else:
        experiment = build_experiment(config, registry)
    if not paths.checkpoint.is_file():
        raise CheckpointError(
            f"Run folder {paths.root} has no checkpoint ({CHECKPOINT_FILE}) yet. Train it first "
            f"with `coldkit run {paths.root}`."
        )
    return experiment, load_checkpoint(paths.checkpoint)


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


__all__ = [
    "MODEL_SHAPE_KEY",
    "context_of_shape",
    "RunPaths",
    "record_context",
    "read_metadata",
    "write_metadata",
    "build_degradation",
    "build_restorer",
    "open_run",
    "read_context",
    "trained_for",
    "require_run_folder",
]
