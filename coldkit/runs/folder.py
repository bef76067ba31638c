"""The run folder: its layout (:class:`RunPaths`, every file name), ``run.json`` and the model
shape recorded in it, and what a checkpoint was trained for.

Opening a run folder (or an exported model folder) for inference is
:func:`coldkit.runs.opened.open_run`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coldkit.runs.cost import build_restorer
from coldkit.config import Experiment
from coldkit.runtime.files import write_json_atomic
from coldkit.errors import ConfigError
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


__all__ = [
    "MODEL_SHAPE_KEY",
    "context_of_shape",
    "RunPaths",
    "record_context",
    "read_metadata",
    "write_metadata",
    "build_degradation",
    "build_restorer",
    "read_context",
    "trained_for",
    "require_run_folder",
]
