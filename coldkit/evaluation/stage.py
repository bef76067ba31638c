"""The evaluation stage of ``coldkit run``: Table 1's rows on the held-out split, with a progress
bar; under torchrun each rank restores its share of the batches and rank 0 scores them."""

from __future__ import annotations

from torch import nn

from coldkit.evaluation.metrics import Evaluation, evaluate
from coldkit.runtime.progress import batch_progress
from coldkit.protocols import Degradation, ImageSet
from coldkit.runs.context import RunContext
from coldkit.data.splits import evaluation_split


def held_out(run: RunContext, channels: int) -> ImageSet:
    """The whole evaluation split (``evaluate.split`` of ``evaluate.dataset`` or the training
    dataset); Table 1 scores its first ``evaluate.num_images``."""
    test_set = evaluation_split(run.experiment, run.config.dataset.image_size, channels)
    count = min(len(test_set.images), run.config.evaluate.num_images)
    run.notify(f"evaluating on {count} images — {test_set.source}")
    return test_set


def evaluate_run(
    run: RunContext, model: nn.Module, degradation: Degradation, test_set: ImageSet
) -> Evaluation | None:
    """Degrade the first ``evaluate.num_images`` of ``test_set`` to T and restore them directly
    and with the run's sampler; rank 0 gets the :class:`Evaluation`, the other ranks None."""
    settings = run.config.evaluate
    images = test_set.images[: settings.num_images]
    with batch_progress(run.console, "evaluating") as progress:
        task = progress.add_task("evaluate", total=_images_of_rank(run, len(images)))

        def on_batch(done: int) -> None:
            run.follow_cores()
            progress.update(task, completed=done)

        return evaluate(
            model,
            degradation,
            run.experiment.sampler.build(),
            run.experiment.direct_sampler.build(),
            images,
            run.device,
            batch_size=settings.batch_size,
            seed=run.seed,
            fid_weights=settings.inception_weights,
            cluster=run.cluster,
            on_batch=on_batch,
            quantize_inputs=settings.quantize_inputs,
        )


def _images_of_rank(run: RunContext, count: int) -> int:
    """How many of ``count`` images this rank restores (batches are dealt out in turn)."""
    size, cluster = run.config.evaluate.batch_size, run.cluster
    return sum(
        min(size, count - start)
        for number, start in enumerate(range(0, count, size))
        if number % cluster.world_size == cluster.rank
    )


__all__ = ["evaluate_run", "held_out"]
