"""``coldkit run``: config -> data, degradation, restorer -> training -> evaluation -> run folder.

A run folder holds everything: ``config.toml`` (resolved), ``run.json`` (metadata),
``log.txt``, ``checkpoints/last.pt``, ``metrics.json``, ``table.md``, ``figure.png`` and
``loss_curve.png``. Pointing ``coldkit run`` at an existing run folder resumes it.
"""

from __future__ import annotations

import json
import platform
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from coldkit import __version__
from coldkit import acceleration
from coldkit.config import (
    Experiment,
    ResolvedPlugin,
    load_experiment,
    read_toml,
    write_toml,
)
from coldkit.data import resize_images
from coldkit.distributed import SINGLE_PROCESS, Cluster
from coldkit.errors import ColdkitError, ConfigError, DataError
from coldkit.evaluate import evaluate
from coldkit.plugins import Registry
from coldkit.progress import batch_progress
from coldkit.generation_stage import generate_for_run
from coldkit.protocols import Dataset, Degradation, ImageSet, RestorerContext
from coldkit.report import (
    metrics_dict,
    rich_table,
    write_figure,
    write_loss_curve,
    write_metrics_json,
    write_table_markdown,
)
from coldkit import tensorboard as tensorboard_log
from coldkit.runfolder import CONFIG_FILE, METADATA_FILE, build_degradation, build_restorer
from coldkit.runlock import run_folder_lock
from coldkit.streaming import choose_training_data
from coldkit.train import StepReport, Trainer

#: Keys that may change when a run is resumed: the budget and the evaluation, not the model.
RESUMABLE_CHANGES = (
    "train.steps",
    "train.max_minutes",
    "train.checkpoint_every",
    "train.log_every",
    "evaluate.",
    "generate",
    "log",  # no dot: a folder from before [log] existed has no such section
    # The speed switches change how the restorer runs, not what it is (nor the checkpoint).
    "train.compile",
    "train.channels_last",
    "train.autocast",
    "sampling",
)


@dataclass(frozen=True)
class RunPaths:
    """Where each artefact of a run lives."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def metadata(self) -> Path:
        return self.root / METADATA_FILE

    @property
    def log(self) -> Path:
        return self.root / "log.txt"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def table(self) -> Path:
        return self.root / "table.md"

    @property
    def figure(self) -> Path:
        return self.root / "figure.png"

    @property
    def loss_curve(self) -> Path:
        return self.root / "loss_curve.png"


class RunLog:
    """Messages to the console and, with a timestamp, to the run's log.txt.

    Under torchrun only rank 0 logs (``enabled`` is False on the other ranks).
    """

    def __init__(self, path: Path, console: Console, enabled: bool = True) -> None:
        self.path, self.console, self.enabled = path, console, enabled

    def __call__(self, message: str, show: bool = True) -> None:
        if not self.enabled:
            return
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        with open(self.path, "a") as handle:
            handle.write(f"{stamp} {message}\n")
        if show:  # plain text: "[degradation]" in a message is not rich markup
            self.console.print(message, markup=False, highlight=False)


class RankStopped(ColdkitError):
    """Raised on ranks other than 0 when rank 0 could not start the run (it says why)."""


@contextmanager
def claimed_run(
    target: Path,
    out: Path | None,
    overrides: list[str],
    registry: Registry,
    cluster: Cluster = SINGLE_PROCESS,
) -> Iterator[tuple[Experiment, RunPaths]]:
    """Resolve the experiment and its run folder and claim the folder until the block ends.

    ``target`` is a TOML file, or an existing run folder to resume. Two configs are never mixed
    in one folder, and the folder's lock is held throughout: a second ``coldkit run`` on the same
    folder stops before it changes anything. Under torchrun only rank 0 claims and writes; the
    other ranks wait for its word and raise :class:`RankStopped` if it could not start.
    """
    if not cluster.is_main:
        if not cluster.agree(True):
            raise RankStopped(f"rank {cluster.rank}: rank 0 could not start the run (see its error)")
        yield _resolve_target(target, out, overrides, registry)
        return
    claimed = False
    try:
        experiment, paths = _resolve_target(target, out, overrides, registry)
        _make_folder(paths)
        with run_folder_lock(paths.root):
            _write_config(experiment, paths)
            claimed = cluster.agree(True)
            yield experiment, paths
    finally:
        if not claimed:
            cluster.agree(False)


def _resolve_target(
    target: Path, out: Path | None, overrides: list[str], registry: Registry
) -> tuple[Experiment, RunPaths]:
    if target.is_dir():
        if out is not None and out.resolve() != target.resolve():
            raise ConfigError(
                f"{target} is a run folder, which is resumed in place; drop --out, or pass the "
                "TOML config to start a new run in another folder."
            )
        if not (target / CONFIG_FILE).is_file():
            raise ConfigError(
                f"{target} is a folder without {CONFIG_FILE}, so it is not a coldkit run folder. "
                "Pass a TOML experiment file, or the folder of an earlier run to resume it."
            )
        experiment = load_experiment(target / CONFIG_FILE, registry, overrides)
        return experiment, RunPaths(target)
    experiment = load_experiment(target, registry, overrides)
    return experiment, RunPaths(out if out is not None else Path("runs") / experiment.config.name)


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
        saved = read_toml(paths.config)
        differences = _differences(saved, json.loads(json.dumps(resolved)))
        fixed = [key for key in differences if not key.startswith(RESUMABLE_CHANGES)]
        if fixed:
            raise ConfigError(
                f"Run folder {paths.root} already holds a run with a different config "
                f"(differs in: {', '.join(fixed)}). Nothing was changed. Use --out NEW_FOLDER for "
                f"a new run, or `coldkit run {paths.root}` to resume the existing one as it was."
            )
        if not differences:
            return
    try:
        write_toml(paths.config, resolved)  # new, or e.g. more steps: train on from the checkpoint
    except OSError as exc:
        raise ConfigError(
            f"Cannot write {paths.config} ({exc.strerror or exc}). Pass --out with a folder you "
            "can write to."
        ) from None


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


def select_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: unknown device {name!r}; use auto, cpu, cuda or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for, but CUDA is not available; use cpu or auto.")
    return device


def build_dataset(resolved: ResolvedPlugin) -> Dataset:
    return resolved.record.component(resolved.params)


def load_split(
    resolved: ResolvedPlugin, split: str, image_size: int, channels: int | None = None
) -> ImageSet:
    """Load one split, resized; check it is not empty and (optionally) its channel count."""
    image_set = build_dataset(resolved).load(split)
    if len(image_set.images) == 0:
        raise DataError(
            f"The {split} split of dataset {resolved.record.name!r} is empty. Raise its "
            f"{'val_fraction' if split == 'val' else 'test_fraction'} or use more images."
        )
    images = resize_images(image_set.images, image_size)
    if channels is not None and images.shape[1] != channels:
        raise DataError(
            f"The evaluation images have {images.shape[1]} channels but the model was trained on "
            f"{channels}; set evaluate.dataset.channels (or pick a matching dataset)."
        )
    return replace(image_set, images=images)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[rate]} it/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def execute(
    experiment: Experiment, paths: RunPaths, console: Console, cluster: Cluster = SINGLE_PROCESS
) -> dict[str, Any]:
    """Train (or resume), evaluate, and write every artefact; returns the metrics.

    Under torchrun every rank trains and evaluates its share; rank 0 alone writes the run folder,
    generates, and returns the metrics (the other ranks return an empty dict).
    """
    config = experiment.config
    log = RunLog(paths.log, console, enabled=cluster.is_main)
    if experiment.disabled_plugins:
        disabled = ", ".join(
            f"{plugin.describe()} (by {plugin.disabled_by})" for plugin in experiment.disabled_plugins
        )
        log(f"plugins disabled: {disabled}", show=False)
    device = cluster.device(select_device(config.device))
    torch.manual_seed(config.seed)
    image_size = config.dataset.image_size
    training = choose_training_data(
        build_dataset(experiment.dataset), image_size, config.dataset.max_memory_gb,
        lambda: load_split(experiment.dataset, "train", image_size), cluster, config.seed,
        device, config.dataset.workers,
    )
    train_source, channels = training.source, training.channels
    log(f"data: {len(training.batches)} training images — {train_source}")
    log(f"training data held {training.path_note}")
    degradation = build_degradation(experiment)
    context = RestorerContext(channels, image_size, degradation.steps)
    restorer = build_restorer(experiment, context)
    if cluster.is_main:
        _record_context(paths, context)
    parameters = sum(p.numel() for p in restorer.parameters())
    trainer = Trainer(
        restorer, degradation, training.batches, config.train, config.seed, device,
        paths.checkpoint, cluster,
    )
    if trainer.resume():
        log(f"resumed from {paths.checkpoint} at step {trainer.state.step}")
    for note in trainer.switches.notes:
        log(note)
    log(f"training switches: {trainer.switches.describe()}", show=trainer.switches.any)
    log(
        f"model: {experiment.restorer.record.name} with {parameters / 1e6:.2f}M parameters on "
        f"{device}; degradation {experiment.degradation.record.name} with T = {degradation.steps}"
    )
    if cluster.enabled:
        log(f"distributed: {cluster.world_size} processes ({cluster.backend}), "
            f"{config.train.batch_size // cluster.world_size} images per process of each global "
            f"batch of {config.train.batch_size}")
    if cluster.is_main:
        _train_with_progress(trainer, log, console, config.log.tensorboard)
    elif trainer.budget_left():
        trainer.fit()
    trainer.batches.close()  # streaming: stop the DataLoader workers before evaluating
    state = trainer.state
    log(f"training done: {state.step} steps in {state.elapsed_seconds:.0f} s; "
        f"{_limit_note(trainer)}")

    evaluation_dataset = experiment.evaluate_dataset or experiment.dataset
    test_set = load_split(
        evaluation_dataset, config.evaluate.split, image_size, channels=channels
    )
    test_source = test_set.source
    test_images = test_set.images[: config.evaluate.num_images]
    log(f"evaluating on {len(test_images)} images — {test_source}")
    inference_model = prepare_sampling(trainer.model_for_inference, experiment, device, log)
    size, count = config.evaluate.batch_size, len(test_images)
    mine = sum(  # images in this rank's batches
        min(size, count - start)
        for number, start in enumerate(range(0, count, size))
        if number % cluster.world_size == cluster.rank
    )
    with batch_progress(console, "evaluating") as progress:
        task = progress.add_task("evaluate", total=mine)
        evaluation = evaluate(
            inference_model,
            degradation,
            experiment.sampler.component,
            experiment.direct_sampler.component,
            test_images,
            device,
            batch_size=config.evaluate.batch_size,
            seed=config.seed,
            fid_weights=config.evaluate.inception_weights,
            cluster=cluster,
            on_batch=lambda done: progress.update(task, completed=done),
        )
    if evaluation is None:  # not rank 0: rank 0 scores and writes
        return {}
    steps_run = max(1, len(state.losses))
    info = {
        "train_steps": state.step,
        "train_seconds": state.elapsed_seconds,
        "seconds_per_train_step": state.elapsed_seconds / steps_run,
        "final_loss": state.losses[-1] if state.losses else None,
        "stopped_by": trainer.stopped_by(),
        "training_source": train_source,
        "evaluation_source": test_source,
        "parameters": parameters,
    }
    metrics = metrics_dict(evaluation, experiment.sampler.name, info)
    if experiment.prior is not None:
        metrics["generation"] = _generate(
            experiment, paths, inference_model, degradation, training.image_set,
            test_set.images, device, log, console,
        )
    title = f"{config.name}: Table 1 rows"
    write_metrics_json(metrics, paths.metrics)
    write_table_markdown(metrics, paths.table, title)
    write_figure(evaluation, config.evaluate.figure_rows, experiment.sampler.name, paths.figure)
    write_loss_curve(state.losses, paths.loss_curve, config.name)
    _write_metadata(
        experiment, paths, device, train_source, test_source, parameters, context, cluster,
        config.train.batch_size,
    )
    tensorboard_log.write_results(
        config.log.tensorboard, paths.root, metrics,
        {"figure": paths.figure, "loss_curve": paths.loss_curve}, log,
    )
    console.print(rich_table(metrics, title))
    if evaluation.fid_note:
        console.print(f"FID {evaluation.fid_note}.")
    log(f"results written to {paths.root}", show=True)
    return metrics


def prepare_sampling(
    restorer: torch.nn.Module, experiment: Experiment, device: torch.device, log
) -> torch.nn.Module:
    """The restorer with the ``[sampling]`` switches applied (in place), each note logged."""
    switches = acceleration.resolve(experiment.config.sampling, device, "sampling")
    for note in switches.notes:
        log(note)
    if switches.any:
        log(f"sampling switches: {switches.describe()}", show=False)
    return acceleration.prepare_model(restorer, switches)


def _generate(
    experiment: Experiment,
    paths: RunPaths,
    restorer: torch.nn.Module,
    degradation: Degradation,
    train_set: Callable[[], ImageSet],
    real_images: torch.Tensor,
    device: torch.device,
    log: RunLog,
    console: Console,
) -> dict[str, Any] | None:
    """The ``[generate]`` stage: prior, samples, generated.png and the judge's report."""
    settings = experiment.config.generate
    assert settings is not None and experiment.prior is not None
    assert experiment.generate_sampler is not None
    result = generate_for_run(
        paths.root, paths.root, settings, experiment.prior, experiment.generate_sampler,
        restorer, degradation, train_set, lambda: real_images,
        settings.seed if settings.seed is not None else experiment.config.seed, device, console,
        log, experiment.config.evaluate.inception_weights,
    )
    return result.summary


def _limit_note(trainer: Trainer) -> str:
    """Which limit ended training, and the ``--set`` that lifts it."""
    settings = trainer.settings
    if trainer.stopped_by() == "max_minutes":
        return (
            f"stopped by train.max_minutes = {settings.max_minutes:g} at step "
            f"{trainer.state.step} of {settings.steps}; raise it with "
            f"--set train.max_minutes=N to train on"
        )
    return f"reached train.steps = {settings.steps}; raise it with --set train.steps=N to train on"


def _train_with_progress(
    trainer: Trainer, log: RunLog, console: Console, tensorboard: bool = False
) -> None:
    settings = trainer.settings
    if not trainer.budget_left():
        log(f"training already complete at step {trainer.state.step} ({_limit_note(trainer)}); "
            "evaluating")
        return
    began = time.perf_counter()
    first_step = trainer.state.step
    board = tensorboard_log.start_training_log(
        tensorboard, log.path.parent, log, first_step, began
    )
    with _progress(console) as progress:
        task = progress.add_task(
            "train", total=settings.steps, completed=first_step, loss="…", rate="…"
        )

        def on_step(report: StepReport) -> None:
            rate = (report.step - first_step) / max(1e-9, time.perf_counter() - began)
            progress.update(task, completed=report.step, rate=f"{rate:.2f}")
            if report.loss is None:  # read from the device only every log_every steps
                return
            progress.update(task, loss=f"{report.loss:.4f}")
            if report.step % settings.log_every == 0:
                log(f"step {report.step} loss {report.loss:.5f}", show=False)
                if board is not None:
                    learning_rate = trainer.optimizer.param_groups[0]["lr"]
                    board.step(report.step, report.loss, learning_rate, time.perf_counter())

        try:
            trainer.fit(on_step)
        finally:
            if board is not None:
                board.close()


def _record_context(paths: RunPaths, context: RestorerContext) -> None:
    """Record the model's input shape in run.json before training, so a checkpoint written by an
    interrupted run can already be opened by ``coldkit generate`` and ``coldkit restore``."""
    metadata = {}
    if paths.metadata.is_file():
        try:
            metadata = json.loads(paths.metadata.read_text())
        except ValueError:
            metadata = {}
    metadata["restorer_context"] = asdict(context)
    paths.metadata.write_text(json.dumps(metadata, indent=2) + "\n")


def _write_metadata(
    experiment: Experiment,
    paths: RunPaths,
    device: torch.device,
    train_source: str,
    test_source: str,
    parameters: int,
    context: RestorerContext,
    cluster: Cluster,
    batch_size: int,
) -> None:
    plugins = {
        kind: {
            "name": resolved.record.name,
            "plugin": resolved.record.plugin,
            "distribution": resolved.record.distribution,
            "version": resolved.record.version,
        }
        for kind, resolved in (
            ("dataset", experiment.dataset),
            ("degradation", experiment.degradation),
            ("restorer", experiment.restorer),
        )
    }
    metadata = {
        "coldkit_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "training_source": train_source,
        "evaluation_source": test_source,
        "parameters": parameters,
        "restorer_context": asdict(context),
        "plugins": plugins,
        "distributed": {
            "world_size": cluster.world_size,
            "backend": cluster.backend,
            "global_batch_size": batch_size,
            "per_process_batch_size": batch_size // cluster.world_size,
        },
    }
    paths.metadata.write_text(json.dumps(metadata, indent=2) + "\n")


__all__ = ["RunPaths", "claimed_run", "execute", "select_device"]
