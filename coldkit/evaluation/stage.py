"""The evaluation stage of ``coldkit run``: Table 1's rows on the held-out split, with a progress
bar; under torchrun each rank restores its share of the batches and rank 0 scores them, FID and
KID included (reference features of the held-out split cached, see :mod:`coldkit.evaluation.fid`)."""

from __future__ import annotations

from torch import Tensor, nn

from coldkit.evaluation.fid import Extractor, FidReference, reference, reference_key
from coldkit.evaluation.inception import check_network_file, load_network, unavailable_reason
from coldkit.evaluation.metrics import ROWS, Evaluation, evaluate
from coldkit.runtime.progress import batch_progress
from coldkit.protocols import Degradation, ImageSet
from coldkit.runs.context import RunContext
from coldkit.data.served import rows_of
from coldkit.data.splits import evaluation_split


def held_out(run: RunContext, channels: int) -> ImageSet:
    """The whole evaluation split (``evaluate.split`` of ``evaluate.dataset`` or the training
    dataset); Table 1 scores its first ``evaluate.num_images``."""
    split = evaluation_split(run.experiment, run.config.dataset.image_size, channels)
    count = min(len(split.images), run.config.evaluate.num_images)
    run.notify(f"evaluating on {count} images — {split.source}")
    return split


def evaluate_run(
    run: RunContext, model: nn.Module, degradation: Degradation, split: ImageSet
) -> Evaluation | None:
    """Degrade the first ``evaluate.num_images`` of ``split`` to T and restore them directly
    and with the run's sampler; rank 0 gets the :class:`Evaluation`, the other ranks None."""
    settings = run.config.evaluate
    images = split.images[: settings.num_images]
    with batch_progress(run.console, "evaluating") as progress:
        task = progress.add_task("evaluate", total=_images_of_rank(run, len(images)))

        def on_batch(done: int) -> None:
            run.follow_cores()
            progress.update(task, completed=done)

        evaluation = evaluate(
            model,
            degradation,
            run.experiment.sampler.build(),
            run.experiment.direct_sampler.build(),
            images,
            run.device,
            batch_size=settings.batch_size,
            seed=run.seed,
            cluster=run.cluster,
            on_batch=on_batch,
            quantize_inputs=settings.quantize_inputs,
            served=rows_of(split.params, slice(None, settings.num_images)),
        )
    if evaluation is not None:
        add_fid(run, evaluation)
    return evaluation


def fid_extractor(run: RunContext) -> tuple[Extractor | None, str | None]:
    """The run's FID feature extractor, or None and why FID is not computed (``fid_images = 0``,
    or the network not installed). A damaged network file raises
    :class:`~coldkit.evaluation.inception.FidNetworkError`."""
    settings = run.config.evaluate
    if settings.fid_images == 0:
        return None, "not computed: evaluate.fid_images = 0"
    reason = unavailable_reason(settings.inception_weights)
    if reason is not None:
        return None, reason
    network = load_network(settings.inception_weights, run.device)
    return Extractor(network, run.console, run.notify, settings.batch_size), None


def check_fid(run: RunContext) -> None:
    """Stop a run before it trains when its FID network file is missing or damaged (exit 2
    naming the file and the fix) rather than after the training time is spent."""
    if run.config.evaluate.fid_images > 0 and run.cluster.is_main:
        check_network_file(run.config.evaluate.inception_weights)


def held_out_reference(run: RunContext, extractor: Extractor, images: Tensor) -> FidReference:
    """The FID reference of the held-out ``images``: the first ``evaluate.fid_images`` of the
    ``evaluate.num_images`` Table 1 scores (the same for evaluation and generation), cached by
    dataset, parameters, split, image size, count, network and the images' digest."""
    count = min(len(images), run.config.evaluate.num_images, run.config.evaluate.fid_images)
    dataset = run.experiment.evaluate_dataset or run.experiment.dataset
    key = reference_key(
        dataset.record.name, dataset.params.model_dump(mode="json"), run.config.evaluate.split,
        images[:count], extractor.network.sha1,
    )
    return reference(extractor, lambda: images[:count], key, f"{count} held-out images")


def add_fid(run: RunContext, evaluation: Evaluation) -> None:
    """FID and KID of each row against the originals, into the rows' metrics (or the reason
    they are not computed into ``evaluation.fid_note``)."""
    extractor, evaluation.fid_note = fid_extractor(run)
    if extractor is None:
        return
    real = held_out_reference(run, extractor, evaluation.originals)
    for row in ROWS:
        images = evaluation.rows[row].images[: real.count].clamp(0.0, 1.0)
        evaluation.rows[row].metrics.update(real.score(images, row).to_dict())


def _images_of_rank(run: RunContext, count: int) -> int:
    """How many of ``count`` images this rank restores (batches are dealt out in turn)."""
    size, cluster = run.config.evaluate.batch_size, run.cluster
    return sum(
        min(size, count - start)
        for number, start in enumerate(range(0, count, size))
        if number % cluster.world_size == cluster.rank
    )


__all__ = ["add_fid", "check_fid", "evaluate_run", "fid_extractor", "held_out", "held_out_reference"]
