"""The generation stage of a run folder: prior, samples, pictures, the judge's report, FID.

Shared by ``coldkit run`` (a ``[generate]`` section) and ``coldkit generate RUN_FOLDER``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from rich.console import Console
from torch import Tensor, nn

from coldkit.config import GenerateSection, ResolvedPlugin, apply_overrides, read_toml
from coldkit.progress import batch_progress
from coldkit.generate import (
    bind_sampler,
    cached_or_fitted_prior,
    generate_samples,
    write_samples,
)
from coldkit.plugins import PluginRecord, Registry
from coldkit.protocols import Degradation, ImageSet


@dataclass
class GenerationResult:
    """What one generation wrote and measured."""

    samples: Tensor
    files: dict[str, Path]
    #: What generation.json holds: prior, sampler, seed, the judge's report (or why none), FID.
    summary: dict[str, Any]


def generate_for_run(
    run_root: Path,
    out_dir: Path,
    settings: GenerateSection,
    resolved_prior: ResolvedPlugin,
    sampler_record: PluginRecord,
    restorer: nn.Module,
    degradation: Degradation,
    train_set: Callable[[], ImageSet],
    real_images: Callable[[], Tensor],
    seed: int,
    device: torch.device,
    console: Console,
    notify: Callable[[str], None],
    fid_weights: str | None = None,
) -> GenerationResult:
    """The whole generation stage of a run folder: prior (cached in ``run_root/priors``), samples
    with a progress bar, ``generated.png`` and ``samples.pt`` in ``out_dir``, and the judge's report
    (``generation.json``, ``generation.md``) when the training split has labels."""
    cache: dict[str, ImageSet] = {}

    def training() -> ImageSet:
        if "train" not in cache:
            cache["train"] = train_set()
        return cache["train"]

    fitted = cached_or_fitted_prior(
        run_root, resolved_prior, degradation, lambda: training().images, seed, device, notify
    )
    generator = torch.Generator().manual_seed(seed + 1)  # per-step noise: apart from the prior's
    sampler = bind_sampler(
        sampler_record.component, sampler_record.name, settings.step_noise, generator
    )
    count = settings.num_samples
    with batch_progress(console, "generating") as progress:
        task = progress.add_task("generate", total=count)
        samples = generate_samples(
            restorer, degradation, fitted.prior, sampler, count, seed=seed,
            batch_size=settings.batch_size, device=device,
            on_batch=lambda done: progress.update(task, completed=done),
        )
    files = write_samples(samples, out_dir, settings.grid_size)
    notify(f"generated {count} images with prior {fitted.name} and sampler "
           f"{sampler_record.name}: {files['grid']}")
    report, note = None, None
    if settings.judge:
        report, note = judge_for_run(
            samples, settings, run_root, training, real_images, seed, device, notify
        )
        if report is not None:
            files["markdown"] = out_dir / "generation.md"
            files["markdown"].write_text(report.markdown() + "\n")
    fid_value, fid_note = _generation_fid(samples, real_images, fid_weights)
    summary = {
        "prior": {"name": fitted.name, "params": fitted.params},
        "fid": fid_value,
        "fid_note": fid_note,
        "sampler": sampler_record.name,
        "step_noise": settings.step_noise,
        "seed": seed,
        "num_samples": count,
        "report": report.to_dict() if report is not None else None,
        "note": note,
    }
    files["json"] = out_dir / "generation.json"
    files["json"].write_text(json.dumps(summary, indent=2) + "\n")
    return GenerationResult(samples, files, summary)


def _generation_fid(
    samples: Tensor, real_images: Callable[[], Tensor], weights: str | None
) -> tuple[float | None, str | None]:
    """Inception FID of the samples against the held-out images, when weights are configured."""
    from coldkit.evaluate import fid, fid_unavailable_reason

    reason = fid_unavailable_reason(weights)
    if reason is not None:
        return None, reason
    assert weights is not None
    return fid(real_images(), samples, weights_path=Path(weights).expanduser()), None


def judge_for_run(
    samples: Tensor,
    settings: GenerateSection,
    run_root: Path,
    training: Callable[[], ImageSet],
    real_images: Callable[[], Tensor],
    seed: int,
    device: torch.device,
    notify: Callable[[str], None],
) -> tuple[Any, str | None]:
    """Judge samples with the user's classifier, or one trained on the labelled training split
    (cached in ``run_root/judge/classifier.pt``). Returns the report, or None and why not."""
    from coldkit.judge import judge_generation, load_classifier, load_or_train_classifier

    if settings.classifier is not None:
        path = Path(settings.classifier).expanduser()
        classifier = load_classifier(path)
        notify(f"judge: classifier loaded from {path}")
    else:
        train = training()
        if train.labels is None:
            note = (
                "not judged: the training split has no labels. Set generate.classifier to a "
                "saved coldkit classifier, or use a labelled dataset."
            )
            notify(f"judge: {note}")
            return None, note
        path = run_root / "judge" / "classifier.pt"
        classifier, accuracy, cached = load_or_train_classifier(
            path, train.images, train.labels, seed=seed, device=device
        )
        if cached:
            notify(f"judge: classifier loaded from {path}")
        else:
            notify(f"judge: classifier trained on the training split ({accuracy:.1%} on its "
                   f"held-back tenth), saved to {path}")
    report = judge_generation(
        samples, real_images(), classifier, blank_threshold=settings.blank_threshold, seed=seed
    )
    notify(
        f"judge: {report.classes_present}/{report.num_classes} classes, largest "
        f"{report.largest_class_share:.1%}, blank {report.blank_share:.1%}, Fréchet "
        f"{report.frechet:.3g} = {report.frechet_ratio:.2f}x the floor {report.frechet_floor:.3g}"
    )
    if min(len(samples), report.real_count // 2) < 200:
        notify(
            "judge: the Fréchet distances compare sets of fewer than 200 images, where both the "
            "distance and its floor are dominated by sampling noise; judge 1,000 samples (-n 1000) "
            "against a few hundred held-out images or more for a number to compare"
        )
    return report, None


def generate_from_run_folder(
    run_dir: Path,
    *,
    registry: Registry,
    console: Console,
    count: int | None = None,
    prior: str | None = None,
    seed: int | None = None,
    out: Path | None = None,
    batch_size: int | None = None,
    sampler: str | None = None,
    step_noise: float | None = None,
    judge: bool | None = None,
    overrides: list[str] = (),  # type: ignore[assignment]
) -> GenerationResult:
    """``coldkit generate``: the run's ``[generate]`` settings (or defaults), changed by the options.

    Writes into ``out`` (default ``RUN_DIR/generated/<prior>-seed<S>-n<N>``); the fitted prior and
    the judge's classifier are cached in the run folder and reused.
    """
    from coldkit.run import RunLog, build_dataset, load_split, prepare_sampling  # run imports us
    from coldkit.streaming import training_image_set
    from coldkit.runfolder import CONFIG_FILE, open_run, require_run_folder

    data = read_toml(require_run_folder(run_dir) / CONFIG_FILE)
    section = dict(data.get("generate") or {"num_samples": 64})
    if prior is not None and dict(section.get("prior") or {}).get("name") != prior:
        section["prior"] = {"name": prior}  # another prior: its own default parameters
    chosen = {
        "num_samples": count, "seed": seed, "batch_size": batch_size, "sampler": sampler,
        "step_noise": step_noise, "judge": judge,
    }
    section.update({key: value for key, value in chosen.items() if value is not None})
    data["generate"] = section
    run = open_run(run_dir, registry, config=apply_overrides(data, list(overrides)))
    experiment = run.experiment
    settings = experiment.config.generate
    assert settings is not None and experiment.prior is not None
    assert experiment.generate_sampler is not None
    seed = settings.seed if settings.seed is not None else experiment.config.seed
    if out is None:
        name = f"{experiment.prior.record.name}-seed{seed}-n{settings.num_samples}"
        out = run_dir / "generated" / name
    size, channels = run.context.image_size, run.context.channels
    evaluation_dataset = experiment.evaluate_dataset or experiment.dataset
    log = RunLog(run_dir / "log.txt", console)
    log(f"generate: {settings.num_samples} images into {out} (model at step {run.step})")
    prepare_sampling(run.restorer, experiment, run.device, log)
    return generate_for_run(
        run_dir,
        out,
        settings,
        experiment.prior,
        experiment.generate_sampler,
        run.restorer,
        run.degradation,
        lambda: training_image_set(
            build_dataset(experiment.dataset), size, experiment.config.dataset.max_memory_gb,
            lambda: load_split(experiment.dataset, "train", size), experiment.config.seed,
        ),
        lambda: load_split(
            evaluation_dataset, experiment.config.evaluate.split, size, channels
        ).images,
        seed,
        run.device,
        console,
        log,
        experiment.config.evaluate.inception_weights,
    )


__all__ = ["GenerationResult", "generate_for_run", "generate_from_run_folder", "judge_for_run"]
