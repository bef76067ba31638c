"""The training stage of ``coldkit run``: data, degradation and restorer built for the run, then
trained (or resumed) with a progress bar until ``train.steps`` or ``train.max_minutes``."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from coldkit.runs import tensorboard as tensorboard_log
from coldkit.protocols import BuildContext, Degradation
from coldkit.runs.context import RunContext
from coldkit.runs.folder import build_restorer, record_context, trained_for
from coldkit.data.splits import load_split
from coldkit.data.streaming import TrainingData, choose_training_data
from coldkit.training.trainer import StepReport, Trainer


@dataclass
class Training:
    """What the training stage built: the trainer (restorer, EMA, optimizer), the degradation,
    the training data and the build context the restorer was built with (the model's input
    shape: ``image_size``, ``channels``, ``steps``)."""

    trainer: Trainer
    degradation: Degradation
    data: TrainingData
    context: BuildContext
    parameters: int


def prepare(run: RunContext) -> Training:
    """Build the training data, degradation, restorer and trainer; resume from the checkpoint."""
    config, notify = run.config, run.notify
    torch.manual_seed(config.seed)
    image_size = config.dataset.image_size
    data = choose_training_data(
        run.experiment.dataset.build(run.build_context("train")), image_size,
        config.dataset.max_memory_gb,
        lambda: load_split(run.experiment.dataset, "train", image_size), run.cluster,
        config.seed, run.device, config.dataset.workers,
    )
    notify(f"data: {len(data.batches)} training images — {data.source}")
    notify(f"training data held {data.path_note}")
    degradation = run.degradation("train", data.channels)
    context = run.build_context("train", data.channels, degradation.steps)
    restorer = build_restorer(run.experiment, context)
    parameters = sum(p.numel() for p in restorer.parameters())
    trainer = Trainer(
        restorer, degradation, data.batches, config.train, config.seed, run.device,
        run.paths.checkpoint, run.cluster, trained_for(run.experiment, context),
        run.paths.healthy_checkpoint, run.notify,
    )
    resumed = trainer.resume()  # first: a checkpoint for another model is refused unchanged
    if run.cluster.is_main:
        record_context(run.paths, context)
    if resumed:
        notify(f"resumed from {run.paths.checkpoint} at step {trainer.state.step}")
    training = Training(trainer, degradation, data, context, parameters)
    _describe(run, training)
    return training


def _describe(run: RunContext, training: Training) -> None:
    """Log the speed switches, the model and, under torchrun, the processes."""
    trainer, notify, config = training.trainer, run.notify, run.config
    for note in trainer.switches.notes:
        notify(note)
    notify(f"training switches: {trainer.switches.describe()}", show=trainer.switches.any)
    notify(
        f"model: {run.experiment.restorer.record.name} with {training.parameters / 1e6:.2f}M "
        f"parameters on {run.device}; degradation {run.experiment.degradation.record.name} with "
        f"T = {training.degradation.steps}"
    )
    if run.cluster.enabled:
        notify(f"distributed: {run.cluster.world_size} processes ({run.cluster.backend}), "
               f"{config.train.batch_size // run.cluster.world_size} images per process of each "
               f"global batch of {config.train.batch_size}")


def train(run: RunContext, training: Training) -> None:
    """Train until the budget is spent (rank 0 shows the progress bar and writes the log)."""
    trainer = training.trainer
    if run.cluster.is_main:
        _train_with_progress(run, trainer)
    elif trainer.budget_left():
        trainer.fit()
    trainer.batches.close()  # streaming: stop the DataLoader workers before evaluating
    state = trainer.state
    run.notify(f"training done: {state.step} steps in {state.elapsed_seconds:.0f} s; "
               f"{limit_note(trainer)}")


def limit_note(trainer: Trainer) -> str:
    """Which limit ended training, and the ``--set`` that lifts it."""
    settings = trainer.settings
    if trainer.stopped_by() == "max_minutes":
        return (
            f"stopped by train.max_minutes = {settings.max_minutes:g} at step "
            f"{trainer.state.step} of {settings.steps}; raise it with "
            f"--set train.max_minutes=N to train on"
        )
    return f"reached train.steps = {settings.steps}; raise it with --set train.steps=N to train on"


def training_info(training: Training, evaluation_source: str) -> dict[str, object]:
    """What metrics.json records about training (and where the evaluation images came from)."""
    state, trainer = training.trainer.state, training.trainer
    return {
        "train_steps": state.step,
        "train_seconds": state.elapsed_seconds,
        "seconds_per_train_step": state.elapsed_seconds / max(1, len(state.losses)),
        "final_loss": state.losses[-1] if state.losses else None,
        "stopped_by": trainer.stopped_by(),
        "training_source": training.data.source,
        "evaluation_source": evaluation_source,
        "parameters": training.parameters,
    }


def _progress(run: RunContext) -> Progress:
    return Progress(
        TextColumn("[bold]training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[rate]} it/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=run.console,
        transient=False,
    )


def _train_with_progress(run: RunContext, trainer: Trainer) -> None:
    settings, notify = trainer.settings, run.notify
    if not trainer.budget_left():
        notify(f"training already complete at step {trainer.state.step} "
               f"({limit_note(trainer)}); evaluating")
        return
    began = time.perf_counter()
    first_step = trainer.state.step
    board = tensorboard_log.start_training_log(
        run.config.log.tensorboard, run.paths.tensorboard, notify, first_step, began
    )
    with _progress(run) as progress:
        task = progress.add_task(
            "train", total=settings.steps, completed=first_step, loss="…", rate="…"
        )

        def on_step(report: StepReport) -> None:
            run.follow_cores()
            rate = (report.step - first_step) / max(1e-9, time.perf_counter() - began)
            progress.update(task, completed=report.step, rate=f"{rate:.2f}")
            if report.loss is None:  # read from the device only every log_every steps
                return
            progress.update(task, loss=f"{report.loss:.4f}")
            if report.step % settings.log_every == 0:
                notify(f"step {report.step} loss {report.loss:.5f}", show=False)
                if board is not None:
                    learning_rate = trainer.optimizer.param_groups[0]["lr"]
                    board.step(report.step, report.loss, learning_rate, time.perf_counter())

        try:
            trainer.fit(on_step)
        finally:
            if board is not None:
                board.close()


__all__ = ["Training", "limit_note", "prepare", "train", "training_info"]
