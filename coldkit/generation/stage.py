"""The generation stage of a run folder: prior, samples, pictures, the judge's report, FID.

Shared by ``coldkit run`` (a ``[generate]`` section), ``coldkit generate RUN_FOLDER`` and
:meth:`coldkit.api.Run.generate`; the last two start from a run folder opened once
(:func:`generation_config` is the change of its config that the ``[generate]`` options make).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from coldkit.config import Experiment, GenerateSection, apply_overrides
from coldkit.errors import ConfigError
from coldkit.path_noise import mean_path
from coldkit.evaluation.fid import NOT_COMPUTED
from coldkit.evaluation.stage import fid_extractor, held_out_reference
from coldkit.generation.priors import cached_or_fitted_prior
from coldkit.generation.sampling import (
    bind_sampler,
    generate_samples,
    generation_path,
    write_samples,
)
from coldkit.data.imaging import save_grid
from coldkit.evaluation.judge import judge_generation, load_classifier, load_or_train_classifier
from coldkit.runtime.progress import batch_progress
from coldkit.protocols import Degradation, ImageSet
from coldkit.plugins import Registry
from coldkit.runs.context import RunContext, output_context
from coldkit.runs.folder import GENERATION_JSON, GENERATION_MARKDOWN, GENERATION_PATH, RunPaths
from coldkit.runs.opened import LoadedRun, open_run
from coldkit.runtime.acceleration import sampling_note
from coldkit.runs.exported import is_exported, shipped_prior
from coldkit.runtime.files import write_json_atomic, write_text_atomic
from coldkit.runtime.log import Notify, quiet
from coldkit.data.served import data_params
from coldkit.data.splits import evaluation_split, training_split

#: The sections that make the model: a generation may not change them (the checkpoint is fixed).
MODEL_SECTIONS = ("dataset", "degradation", "restorer")


@dataclass
class GenerationResult:
    """What one generation wrote and measured."""

    samples: Tensor
    files: dict[str, Path]
    #: What generation.json holds: prior, sampler, seed, the judge's report (or why none), FID.
    summary: dict[str, Any]


@dataclass
class TrainedModel:
    """A trained restorer and its degradation, with the data a generation reads (on demand)."""

    restorer: nn.Module
    degradation: Degradation
    training: Callable[[], ImageSet]
    held_out: Callable[[], Tensor]
    #: The model's channel count, told to the prior's build context.
    channels: int | None = None
    #: An exported model's folder: the priors its manifest lists are used (never written).
    model_folder: Path | None = None


@dataclass(frozen=True)
class GenerateOptions:
    """``coldkit generate``'s options: each replaces the run's ``[generate]`` value when set."""

    count: int | None = None
    prior: str | None = None
    seed: int | None = None
    batch_size: int | None = None
    sampler: str | None = None
    step_noise: float | None = None
    judge: bool | None = None
    overrides: Sequence[str] = ()


def generate_for_run(run: RunContext, model: TrainedModel, out_dir: Path) -> GenerationResult:
    """The whole generation stage: prior (cached in the run folder's ``priors/``), samples with a
    progress bar, ``generated.png`` and ``samples.pt`` in ``out_dir``, and the judge's report
    (``generation.json``, ``generation.md``) when the training split has labels."""
    settings = run.config.generate
    assert settings is not None and run.experiment.prior is not None
    assert run.experiment.generate_sampler is not None
    seed = settings.seed if settings.seed is not None else run.seed
    training = _once(model.training)
    # The prior is fitted on D(x0, T) of training data only: a degradation that reads data reads
    # its training split here (built lazily, so a cached prior reads nothing).
    fitted = cached_or_fitted_prior(
        run.paths.root, run.experiment.prior, run.degradation("train", model.channels),
        lambda: training().images, seed, run.device, run.notify,
        replace(
            run.build_context(run.serving_split, model.channels, model.degradation.steps),
            degradation=mean_path(model.degradation),  # a noisy path's prior models its mean
        ),
        shipped_prior(model.model_folder, run.experiment.prior.record.name),
    )
    samples = _draw(run, model, fitted.prior, seed)
    files = write_samples(samples, out_dir, settings.grid_size)
    files["path"] = _write_path(run, model, fitted.prior, seed, out_dir)
    sampler_name = run.experiment.generate_sampler.name
    run.notify(f"generated {len(samples)} images with prior {fitted.name} and sampler "
               f"{sampler_name}: {files['grid']}")
    fid_fields = generation_fid(run, samples, model.held_out)
    report, note = None, None
    if settings.judge:
        report, note = judge_for_run(
            samples, settings, run.paths.root, training, model.held_out, seed, run.device,
            run.notify,
        )
    if report is not None or fid_fields["fid"] is not None:
        files["markdown"] = out_dir / GENERATION_MARKDOWN
        write_text_atomic(files["markdown"], _markdown(report, fid_fields))
    summary = {
        "prior": {"name": fitted.name, "params": fitted.params},
        **fid_fields,
        "sampler": sampler_name,
        "step_noise": settings.step_noise,
        "seed": seed,
        "num_samples": len(samples),
        "report": report.to_dict() if report is not None else None,
        "note": note,
    }
    files["json"] = out_dir / GENERATION_JSON
    write_json_atomic(files["json"], summary)
    return GenerationResult(samples, files, summary)


def _once(load: Callable[[], ImageSet]) -> Callable[[], ImageSet]:
    """``load``, called at most once (the prior and the judge share the training split)."""
    cache: list[ImageSet] = []

    def loaded() -> ImageSet:
        if not cache:
            cache.append(load())
        return cache[0]

    return loaded


def _draw(run: RunContext, model: TrainedModel, prior: Any, seed: int) -> Tensor:
    """The samples: x_T from the prior, restored by the sampler, with a progress bar."""
    settings = run.config.generate
    assert settings is not None and run.experiment.generate_sampler is not None
    generator = torch.Generator().manual_seed(seed + 1)  # per-step noise: apart from the prior's
    sampler = bind_sampler(
        run.experiment.generate_sampler.build(), run.experiment.generate_sampler.name,
        settings.step_noise, generator,
    )
    with batch_progress(run.console, "generating") as progress:
        task = progress.add_task("generate", total=settings.num_samples)
        return generate_samples(
            model.restorer, model.degradation, prior, sampler, settings.num_samples, seed=seed,
            batch_size=settings.batch_size, device=run.device,
            on_batch=lambda done: progress.update(task, completed=done),
        )


def _write_path(
    run: RunContext, model: TrainedModel, prior: Any, seed: int, out_dir: Path
) -> Path:
    """``generation_path.png``: ten draws from x_T through intermediate levels to x_0."""
    assert run.experiment.generate_sampler is not None and run.config.generate is not None
    sampler = bind_sampler(
        run.experiment.generate_sampler.build(), run.experiment.generate_sampler.name,
        run.config.generate.step_noise, torch.Generator().manual_seed(seed + 1),
    )
    columns, labels = generation_path(
        model.restorer, model.degradation, prior, sampler, 10, seed=seed, device=run.device
    )
    return save_grid(columns, labels, out_dir / GENERATION_PATH)


def generation_fid(
    run: RunContext, samples: Tensor, real_images: Callable[[], Tensor]
) -> dict[str, Any]:
    """FID and KID of the first ``evaluate.fid_images`` samples against as many held-out images
    (the reference features cached as the evaluation's), or why they were not computed."""
    extractor, note = fid_extractor(run)
    if extractor is None:
        return {**NOT_COMPUTED, "fid_note": note}
    reference = held_out_reference(run, extractor, real_images())
    scored = reference.score(samples[: reference.count].clamp(0.0, 1.0), "generated")
    return {**scored.to_dict(), "fid_note": None}


def _markdown(report: Any, fid_fields: dict[str, Any]) -> str:
    """generation.md: the judge's table (when there is one), then the Inception FID and KID."""
    parts = [] if report is None else [report.markdown(), ""]
    if fid_fields["fid"] is not None:
        parts.append(
            f"Inception FID {fid_fields['fid']:.2f}, KID {fid_fields['kid']:.4f} ± "
            f"{fid_fields['kid_std']:.4f}: {fid_fields['fid_images']} samples against "
            f"{fid_fields['fid_reference_images']} held-out images (FID depends on the count; "
            "see docs/metrics.md)."
        )
    return "\n".join(parts) + "\n"


def judge_for_run(
    samples: Tensor,
    settings: GenerateSection,
    root: Path,
    training: Callable[[], ImageSet],
    real_images: Callable[[], Tensor],
    seed: int,
    device: torch.device,
    notify: Notify,
) -> tuple[Any, str | None]:
    """Judge samples with the user's classifier, or one trained on the labelled training split
    (cached in ``root/judge/classifier.pt``). Returns the report, or None and why not."""
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
        path = RunPaths(root).judge_classifier
        classifier, accuracy, cached = load_or_train_classifier(
            path, train.images, train.labels, seed=seed, device=device
        )
        if cached:
            notify(f"judge: classifier loaded from {path}")
        else:
            where = f"saved to {path}" if path.is_file() else f"not cached ({path} not writable)"
            notify(f"judge: classifier trained on the training split ({accuracy:.1%} on its "
                   f"held-back tenth), {where}")
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


# ------------------------------------------------------------------ from an opened run folder
def generation_config(
    options: GenerateOptions, root: Path | str
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The change ``options`` make to the config data of the run at ``root``: its ``[generate]``
    section (or defaults) changed; what :func:`coldkit.runs.opened.open_run` builds the run's
    one experiment from (``open_run(root, config=generation_config(options, root))``).

    ``--set`` may change the generation, sampling and evaluation settings, not the model: the
    checkpoint fixes the dataset, the degradation and the restorer.
    """

    def change(data: dict[str, Any]) -> dict[str, Any]:
        fixed = {key: copy.deepcopy(data.get(key)) for key in MODEL_SECTIONS}
        section = dict(data.get("generate") or {"num_samples": 64})
        prior = dict(section.get("prior") or {}).get("name")
        if options.prior is not None and prior != options.prior:
            section["prior"] = {"name": options.prior}  # another prior: its own default parameters
        chosen = {
            "num_samples": options.count, "seed": options.seed, "batch_size": options.batch_size,
            "sampler": options.sampler, "step_noise": options.step_noise, "judge": options.judge,
        }
        section.update({key: value for key, value in chosen.items() if value is not None})
        data["generate"] = section
        data = apply_overrides(data, list(options.overrides))
        changed = [key for key in MODEL_SECTIONS if data.get(key) != fixed[key]]
        if changed:
            raise ConfigError(
                f"--set changes [{'], ['.join(changed)}], which the checkpoint of {root} fixes. "
                "Generation may change [generate], [sampling] and [evaluate] only; train a new "
                "run for another model."
            )
        return data

    return change


def check_generation_offered(experiment: Experiment) -> None:
    """Refuse generation, before anything trains, for a degradation whose parameters come from
    the data (``paired``): there is no prior over its degraded images to start from."""
    degradation = experiment.degradation
    if experiment.prior is None or not data_params(degradation.record.component):
        return
    raise ConfigError(
        f"Generation is not offered for degradation {degradation.record.name!r}: it learns from "
        f"pairs, and its degraded images ({', '.join(data_params(degradation.record.component))}) "
        "come from the data, so there is no prior to draw them from. Remove the [generate] "
        "section; to restore degraded files use `coldkit restore RUN FILE...` (docs/paired.md)."
    )


def generate_from_folder(
    root: Path | str,
    options: GenerateOptions,
    registry: Registry,
    console: Any,
    out: Path | None = None,
    notify: Notify | None = None,
) -> GenerationResult:
    """``coldkit generate``: open the run (or exported model) folder at ``root`` once, its config
    changed by ``options`` (:func:`generation_config`), and generate into ``out``; ``notify``
    hears how the run's ``[sampling]`` switches were applied."""
    opened = open_run(
        root, registry, config=generation_config(options, root), notify=notify or quiet
    )
    return generate_from_run(opened, opened.experiment, console, out)


def generate_from_run(
    loaded: LoadedRun, experiment: Experiment, console: Any, out: Path | None = None
) -> GenerationResult:
    """Generate with an opened run (its restorer already on its device) and ``experiment`` (the
    run's own, with the changes of :func:`generation_config`) into ``out`` (default
    ``RUN/generated/PRIOR-seedS-nN``)."""
    check_generation_offered(experiment)
    settings = experiment.config.generate
    assert settings is not None and experiment.prior is not None
    seed = settings.seed if settings.seed is not None else experiment.config.seed
    name = f"{experiment.prior.record.name}-seed{seed}-n{settings.num_samples}"
    run, out = output_context(loaded, experiment, console, out, lambda paths: paths.generated(name))
    with run:
        run.notify(
            f"generate: {settings.num_samples} images into {out} (model at step {loaded.step})"
        )
        return generate_for_run(run, _trained_model(run, loaded, experiment), out)


def _trained_model(run: RunContext, loaded: LoadedRun, experiment: Experiment) -> TrainedModel:
    """The opened run as the generation stage takes it: its restorer as it samples, its
    degradation, and its data read at the model's size on demand."""
    size, channels = loaded.context.image_size, loaded.context.channels
    return TrainedModel(
        _sampling_model(run, loaded),
        loaded.degradation,
        lambda: training_split(experiment, size),
        lambda: evaluation_split(experiment, size, channels).images,
        channels,
        loaded.root if is_exported(loaded.root) else None,
    )


def _sampling_model(run: RunContext, loaded: LoadedRun) -> nn.Module:
    """The opened run's restorer as it samples: its ``[sampling]`` switches were applied when it
    was opened; only a ``--set sampling.*`` of this generation applies them again."""
    if run.config.sampling == loaded.experiment.config.sampling:
        note = sampling_note(loaded.restorer)
        if note is not None:
            run.notify(note, show=False)
        return loaded.restorer
    return run.sampling_model(loaded.restorer)


__all__ = [
    "check_generation_offered",
    "GenerateOptions",
    "GenerationResult",
    "TrainedModel",
    "generate_for_run",
    "generate_from_folder",
    "generate_from_run",
    "generation_config",
    "judge_for_run",
]
