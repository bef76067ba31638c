"""``coldkit run``: config -> data, degradation, restorer -> training -> evaluation -> run folder.

A run folder holds everything (its layout is :class:`coldkit.runs.folder.RunPaths`): the resolved
``config.toml``, ``run.json``, ``log.txt``, ``checkpoints/last.pt``, ``metrics.json``,
``table.md``, ``figure.png`` and ``loss_curve.png``. Pointing ``coldkit run`` at an existing run
folder resumes it. :func:`execute` is the list of stages; each stage lives with its subject.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console

from coldkit.evaluation import stage as evaluation_stage
from coldkit.training import stage as training_stage
from coldkit.evaluation.artefacts import write_results
from coldkit.config import (
    Experiment,
    apply_overrides,
    build_experiment,
    load_experiment,
    read_toml,
    write_toml,
)
from coldkit.runtime.distributed import SINGLE_PROCESS, Cluster
from coldkit.errors import ColdkitError, ConfigError
from coldkit.generation.stage import TrainedModel, check_generation_offered, generate_for_run
from coldkit.plugins import Registry
from coldkit.protocols import Degradation, ImageSet
from coldkit.evaluation.report import metrics_dict
from coldkit.runs.context import RunContext
from coldkit.runs.cost import check_before_writing
from coldkit.runs.exported import is_exported
from coldkit.runs.folder import LOCK_FILE, RunPaths
from coldkit.runs.lock import run_folder_lock
from coldkit.runs.recovery import rewind
from coldkit.runtime.files import check_writable_name, remove_temporaries
from coldkit.training.stage import Training, training_info

#: Keys that may change when a run is resumed: the budget, the step size and clipping (the fix
#: for a loss that became NaN), the cadence and the evaluation; not the model, the data or the
#: loss. A folder without a checkpoint holds no training yet: its whole config may change.
RESUMABLE_CHANGES = (
    "train.steps",
    "train.max_minutes",
    "train.checkpoint_every",
    "train.log_every",
    "train.lr",
    "train.grad_clip",
    "evaluate.",
    "generate",
    "log",  # no dot: a folder from before [log] existed has no such section
    # The speed switches change how the restorer runs, not what it is (nor the checkpoint).
    "train.compile",
    "train.channels_last",
    "train.autocast",
    "sampling",
    "threads",  # how many cores a run uses, not what it computes
)


class RankStopped(ColdkitError):
    """Raised on ranks other than 0 when rank 0 could not start the run (it says why)."""


@contextmanager
def claimed_run(
    target: Path | Experiment,
    out: Path | None,
    overrides: list[str],
    registry: Registry,
    cluster: Cluster = SINGLE_PROCESS,
    from_step: int | None = None,
) -> Iterator[tuple[Experiment, RunPaths]]:
    """Resolve the experiment and its run folder and claim the folder until the block ends.

    ``target`` is a TOML file, an existing run folder to resume, or a loaded :class:`Experiment`
    (its folder is ``out``, default ``runs/<name>``). Two configs are never mixed
    in one folder, and the folder's lock is held throughout: a second ``coldkit run`` on the same
    folder stops before it changes anything. Under torchrun only rank 0 claims and writes; the
    other ranks wait for its word and raise :class:`RankStopped` if it could not start.
    ``from_step`` first goes back to a kept checkpoint of that step (0: start over;
    :func:`coldkit.runs.recovery.rewind`), as after a run that diverged.
    """
    if not cluster.is_main:
        if not cluster.agree(True):
            raise RankStopped(
                f"rank {cluster.rank}: rank 0 could not start the run (see its error)"
            )
        yield _resolve_target(target, out, overrides, registry)
        return
    claimed = False
    try:
        experiment, paths = _resolve_target(target, out, overrides, registry)
        check_writable_name(paths.root, "The run folder")
        check_before_writing(experiment)
        _check_folder(paths)
        _make_folder(paths)
        with run_folder_lock(paths.root):
            # Left by a run killed mid-write (never read); only where `coldkit run` alone writes.
            remove_temporaries(paths.root, paths.checkpoint.parent)
            if from_step is not None:
                if from_step != 0:  # a config that cannot resume changes nothing
                    check_resumable(experiment, paths)
                rewind(paths, from_step)
            _write_config(experiment, paths)
            claimed = cluster.agree(True)
            yield experiment, paths
    finally:
        if not claimed:
            cluster.agree(False)


def _resolve_target(
    target: Path | Experiment, out: Path | None, overrides: list[str], registry: Registry
) -> tuple[Experiment, RunPaths]:
    if isinstance(target, Experiment):
        experiment = target
        if overrides:
            experiment = build_experiment(apply_overrides(target.to_dict(), overrides), registry)
        return experiment, RunPaths(out if out is not None else _default_folder(experiment))
    if target.is_dir():
        if is_exported(target):  # resuming would train a new model from scratch inside it
            raise ConfigError(
                f"{target} is an exported model (coldkit export), not a run folder: it cannot be "
                f"trained further. Start a run from its config: `coldkit run "
                f"{target / 'config.toml'} --out runs/NEW`."
            )
        if out is not None and out.resolve() != target.resolve():
            raise ConfigError(
                f"{target} is a run folder, which is resumed in place; drop --out, or pass the "
                "TOML config to start a new run in another folder."
            )
        paths = RunPaths(target)
        if not paths.config.is_file():
            raise ConfigError(
                f"{target} is a folder without {paths.config.name}, so it is not a coldkit run "
                "folder. Pass a TOML experiment file, or the folder of an earlier run to resume it."
            )
        experiment = load_experiment(paths.config, registry, overrides)
        return experiment, RunPaths(target)
    experiment = load_experiment(target, registry, overrides)
    return experiment, RunPaths(out if out is not None else _default_folder(experiment))


def _default_folder(experiment: Experiment) -> Path:
    return Path("runs") / experiment.config.name


def _check_folder(paths: RunPaths) -> None:
    """Refuse a folder that is not empty and not a run folder (its files would be overwritten),
    and a run folder whose entries are symbolic links (writes would land outside it)."""
    root = paths.root
    if is_exported(root):
        raise ConfigError(
            f"{root} is an exported model folder (coldkit export): a run would train inside a "
            "folder meant to be shared as it was exported, so nothing was written. Pass --out "
            "with a new folder."
        )
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} is a file, not a run folder. Pass --out with a new folder.")
    if root.is_dir() and not paths.config.exists():
        others = sorted(entry.name for entry in root.iterdir() if entry.name != LOCK_FILE)
        if others:
            shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            raise ConfigError(
                f"{root} is a folder that is not a coldkit run folder and is not empty "
                f"({shown}); a run would overwrite its files, so nothing was written. Pass "
                "--out with a new or empty folder, or change the config's name."
            )
    links = paths.links()
    if links:
        raise ConfigError(
            f"Run folder {root} holds symbolic links where coldkit writes "
            f"({', '.join(str(link) for link in links)}), so a run could overwrite files "
            "outside it; nothing was written. Remove the links, or copy the folder without them."
        )


def _make_folder(paths: RunPaths) -> None:
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the run folder {paths.root} ({exc.strerror or exc}). Pass --out "
            "with a folder you can write to."
        ) from None


def _write_config(experiment: Experiment, paths: RunPaths) -> None:
    """Write config.toml, or check it against the saved one (only the budget and the
    evaluation/generation/logging settings may change on resume)."""
    resolved = experiment.to_dict()
    if paths.config.is_file():
        check_resumable(experiment, paths)
        if not _differences(read_toml(paths.config), json.loads(json.dumps(resolved))):
            return
    try:
        write_toml(paths.config, resolved)  # new, or e.g. more steps: train on from the checkpoint
    except OSError as exc:
        raise ConfigError(
            f"Cannot write {paths.config} ({exc.strerror or exc}). Pass --out with a folder you "
            "can write to."
        ) from None


def check_resumable(experiment: Experiment, paths: RunPaths) -> None:
    """Raise a :class:`ConfigError` if ``paths`` holds a run whose config differs from
    ``experiment`` in more than :data:`RESUMABLE_CHANGES` (no config yet: nothing to check)."""
    if not paths.config.is_file():
        return
    resolved = json.loads(json.dumps(experiment.to_dict()))
    differences = _differences(read_toml(paths.config), resolved)
    fixed = [key for key in differences if not key.startswith(RESUMABLE_CHANGES)]
    # No checkpoint: nothing was trained with the old config (e.g. it failed at the first step),
    # so the corrected config replaces it.
    if fixed and paths.checkpoint.exists():
        raise ConfigError(
            f"Run folder {paths.root} already holds a run with a different config "
            f"(differs in: {', '.join(fixed)}). Nothing was changed. Use --out NEW_FOLDER for "
            f"a new run, or `coldkit run {paths.root}` to resume the existing one as it was."
        )


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    found = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}")
    return found


def execute(
    experiment: Experiment, paths: RunPaths, console: Console, cluster: Cluster = SINGLE_PROCESS
) -> dict[str, Any]:
    """Train (or resume), evaluate, generate if asked, and write every artefact; returns the
    metrics.

    Under torchrun every rank trains and evaluates its share; rank 0 alone writes the run folder,
    generates, and returns the metrics (the other ranks return an empty dict).
    """
    with RunContext.start(experiment, paths, console, cluster) as run:
        return _stages(run)


def _stages(run: RunContext) -> dict[str, Any]:
    """The stages of :func:`execute`, in order."""
    experiment = run.experiment
    _note_disabled_plugins(run)
    evaluation_stage.check_fid(run)
    check_generation_offered(experiment)
    training = training_stage.prepare(run)
    training_stage.train(run, training)
    held_out = evaluation_stage.held_out(run, training.context.channels)
    model = run.sampling_model(training.trainer.model_for_inference)
    # Evaluation and generation serve the held-out split (a degradation that reads data reads it).
    serving = run.degradation(run.serving_split, training.context.channels)
    evaluation = evaluation_stage.evaluate_run(run, model, serving, held_out)
    if evaluation is None:  # not rank 0: rank 0 scores and writes
        return {}
    info = training_info(training, held_out.source)
    metrics = metrics_dict(evaluation, experiment.sampler.name, info)
    if experiment.prior is not None:
        metrics["generation"] = _generate(run, model, serving, training, held_out)
    write_results(run, training, evaluation, metrics)
    return metrics


def _note_disabled_plugins(run: RunContext) -> None:
    if run.experiment.disabled_plugins:
        disabled = ", ".join(
            f"{plugin.describe()} (by {plugin.disabled_by})"
            for plugin in run.experiment.disabled_plugins
        )
        run.notify(f"plugins disabled: {disabled}", show=False)


def _generate(
    run: RunContext, model: Any, degradation: Degradation, training: Training, held_out: ImageSet
) -> dict[str, Any]:
    """The ``[generate]`` stage into the run folder itself; returns generation.json's summary."""
    trained = TrainedModel(
        model, degradation, training.data.image_set, lambda: held_out.images,
        training.context.channels,
    )
    return generate_for_run(run, trained, run.paths.root).summary


__all__ = ["RESUMABLE_CHANGES", "RankStopped", "check_resumable", "claimed_run", "execute"]
