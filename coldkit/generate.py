"""Generation (paper §5): fit a prior on D(x0, T), draw x_T from it, run a sampler back to t = 0.

Stages, each a function of its own so ``coldkit run`` (its ``[generate]`` section) and
``coldkit generate`` share them:

* :func:`degrade_fully` — ``D(x0, T)`` of the training images, with the degradation's own
  ``sample_params`` draws;
* :func:`fit_prior` / :func:`save_prior` / :func:`load_prior` — a prior file holds plain data and
  tensors only (``torch.load(weights_only=True)`` loads it; nothing is unpickled);
* :func:`generate_samples` — seeded draws from the prior, restored in batches by a sampler;
* :func:`write_samples` — ``generated.png`` (a grid) and ``samples.pt`` (the tensor).
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import Tensor, nn

from coldkit.config import GenerateSection, ResolvedPlugin, apply_overrides, read_toml
from coldkit.errors import CheckpointError, ConfigError
from coldkit.imaging import save_tiles
from coldkit.plugins import PluginRecord, Registry
from coldkit.protocols import Degradation, ImageSet, Prior, Sampler

PRIOR_FORMAT = "coldkit-prior"
PRIOR_VERSION = 1


@dataclass
class FittedPrior:
    """A fitted prior and the plugin name and parameters it was built from."""

    prior: Prior
    name: str
    params: dict[str, Any]


@torch.no_grad()
def degrade_fully(
    degradation: Degradation,
    images: Tensor,
    seed: int,
    device: torch.device | str = "cpu",
    batch_size: int = 500,
) -> Tensor:
    """``D(x0, T)`` for every image (CPU float32), drawing the degradation's random parameters."""
    generator = torch.Generator().manual_seed(seed)
    parts = []
    for start in range(0, len(images), batch_size):
        x0 = images[start : start + batch_size].to(device)
        params = degradation.sample_params(x0, generator)
        t = torch.full((len(x0),), degradation.steps, dtype=torch.long, device=x0.device)
        parts.append(degradation.degrade(x0, t, params).float().cpu())
    return torch.cat(parts)


def fit_prior(
    resolved: ResolvedPlugin,
    degradation: Degradation,
    train_images: Tensor,
    seed: int,
    device: torch.device | str = "cpu",
) -> FittedPrior:
    """Build the prior plugin and fit it on ``D(x0, T)`` of the training images."""
    prior = resolved.record.component(resolved.params)
    x_T = degrade_fully(degradation, train_images, seed, device)
    prior.fit(x_T, seed=seed)
    return FittedPrior(prior, resolved.record.name, resolved.params.model_dump(mode="json"))


def save_prior(fitted: FittedPrior, path: Path) -> Path:
    """Write a fitted prior atomically: format tag, plugin name, parameters (JSON), tensors."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": PRIOR_FORMAT,
        "version": PRIOR_VERSION,
        "name": fitted.name,
        "params": json.dumps(fitted.params, sort_keys=True),
        "state": {key: value.detach().cpu() for key, value in fitted.prior.state_dict().items()},
    }
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)
    return path


def load_prior(path: Path, registry: Registry | PluginRecord) -> FittedPrior:
    """Load a prior file written by :func:`save_prior` (never unpickles arbitrary objects).

    ``registry`` looks the prior plugin up by the name stored in the file; a single
    :class:`PluginRecord` is used as it is, if its name matches.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"Prior file {path} cannot be read ({type(exc).__name__}: {exc}). Delete it; it is "
            "fitted again from the training data the next time it is needed."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != PRIOR_FORMAT:
        raise CheckpointError(
            f"{path} is not a coldkit prior file. Delete it, or point at the priors/ folder of a "
            "coldkit run."
        )
    if isinstance(registry, PluginRecord):
        record = registry
        if record.name != payload["name"]:
            raise CheckpointError(
                f"Prior file {path} holds prior {payload['name']!r}, not {record.name!r}. "
                "Delete it to fit the prior again."
            )
    else:
        record = registry.get("prior", payload["name"])
    params = json.loads(payload["params"])
    prior = record.component(record.params_model.model_validate(params))
    try:
        prior.load_state_dict(payload["state"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"Prior file {path} does not fit prior {payload['name']!r} ({exc}). Delete it to fit "
            "the prior again."
        ) from None
    return FittedPrior(prior, payload["name"], params)


def prior_path(run_root: Path, name: str) -> Path:
    """Where a run keeps its fitted prior of plugin ``name``."""
    return run_root / "priors" / f"{name}.pt"


def cached_or_fitted_prior(
    run_root: Path,
    resolved: ResolvedPlugin,
    degradation: Degradation,
    train_images: Callable[[], Tensor],
    seed: int,
    device: torch.device | str,
    notify: Callable[[str], None] = lambda message: None,
) -> FittedPrior:
    """The run's saved prior if it was fitted with the same parameters, else fit and save it.

    ``train_images`` is called only when the prior has to be fitted.
    """
    path = prior_path(run_root, resolved.record.name)
    wanted = resolved.params.model_dump(mode="json")
    if path.is_file():
        fitted = load_prior(path, resolved.record)
        if fitted.params == wanted:
            notify(f"prior: {fitted.name} loaded from {path}")
            return fitted
        notify(f"prior: {resolved.record.name} parameters changed; fitting it again")
    fitted = fit_prior(resolved, degradation, train_images(), seed, device)
    save_prior(fitted, path)
    notify(f"prior: {fitted.name} fitted on D(x0, T) of the training split, saved to {path}")
    return fitted


def bind_sampler(
    sampler: Sampler, name: str, step_noise: float, generator: torch.Generator
) -> Sampler:
    """The sampler with its per-step noise and generator bound, if it takes them.

    Asking for ``step_noise`` from a sampler without a ``noise`` parameter is a config error,
    not a silent no-op.
    """
    accepted = inspect.signature(sampler).parameters
    options: dict[str, Any] = {}
    if "generator" in accepted:
        options["generator"] = generator
    if "noise" in accepted:
        options["noise"] = step_noise
    elif step_noise > 0:
        raise ConfigError(
            f"generate.step_noise = {step_noise} needs a sampler that adds noise per step, but "
            f"sampler {name!r} takes no noise. Set generate.sampler = \"stochastic\", or "
            "step_noise = 0."
        )

    def bound(restorer, degradation, x_t, t, params=None):  # type: ignore[no-untyped-def]
        return sampler(restorer, degradation, x_t, t, params, **options)

    return bound


@torch.no_grad()
def generate_samples(
    restorer: nn.Module,
    degradation: Degradation,
    prior: Prior,
    sampler: Sampler,
    count: int,
    *,
    seed: int = 0,
    batch_size: int = 250,
    device: torch.device | str = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> Tensor:
    """Draw ``count`` x_T from ``prior`` and restore them from level T with ``sampler``.

    Deterministic for a seed: the prior's draws and the degradation's parameters come from one
    CPU generator. The prior's draws do not depend on ``batch_size``; random degradation
    parameters and per-step noise are drawn batch by batch, so with those the samples depend on
    ``batch_size`` too. ``sampler`` is a plain sampler, or one bound by :func:`bind_sampler` (whose
    generator should be seeded from the same ``seed``). Returns CPU float32 images, clamped to
    [0, 1]; ``on_batch`` receives the number of images finished after each batch.
    """
    restorer.eval()
    generator = torch.Generator().manual_seed(seed)
    # All draws at once (the size of the output): the prior's samples do not depend on batch_size.
    all_x_T = prior.sample(count, generator)
    outputs = []
    for start in range(0, count, batch_size):
        x_T = all_x_T[start : start + batch_size].to(device)
        params = degradation.sample_params(x_T, generator)
        t = torch.full((len(x_T),), degradation.steps, dtype=torch.long, device=x_T.device)
        outputs.append(sampler(restorer, degradation, x_T, t, params).float().clamp(0, 1).cpu())
        if on_batch is not None:
            on_batch(start + len(x_T))
    return torch.cat(outputs)


def write_samples(samples: Tensor, folder: Path, grid_size: int = 100) -> dict[str, Path]:
    """``generated.png`` (the first ``grid_size`` samples, 10 per row) and ``samples.pt``."""
    folder.mkdir(parents=True, exist_ok=True)
    grid = save_tiles(samples[:grid_size], folder / "generated.png")
    tensor_path = folder / "samples.pt"
    temporary = tensor_path.with_name(tensor_path.name + ".tmp")
    torch.save(samples, temporary)
    os.replace(temporary, tensor_path)
    return {"grid": grid, "samples": tensor_path}


@dataclass
class GenerationResult:
    """What one generation wrote and measured."""

    samples: Tensor
    files: dict[str, Path]
    prior: str
    report: dict[str, Any] | None
    note: str | None = None


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
    with _sampling_progress(console) as progress:
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
    summary = {
        "prior": {"name": fitted.name, "params": fitted.params},
        "sampler": sampler_record.name,
        "step_noise": settings.step_noise,
        "seed": seed,
        "num_samples": count,
        "report": report.to_dict() if report is not None else None,
        "note": note,
    }
    files["json"] = out_dir / "generation.json"
    files["json"].write_text(json.dumps(summary, indent=2) + "\n")
    return GenerationResult(
        samples, files, fitted.name, report.to_dict() if report is not None else None, note
    )


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
    from coldkit.run import RunLog, load_split  # run imports this module: import late
    from coldkit.runfolder import CONFIG_FILE, open_run

    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(
            f"{run_dir} is not a coldkit run folder (no {CONFIG_FILE}). Pass the folder that "
            "`coldkit run` wrote, e.g. runs/mnist_blur."
        )
    data = read_toml(run_dir / CONFIG_FILE)
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
    return generate_for_run(
        run_dir,
        out,
        settings,
        experiment.prior,
        experiment.generate_sampler,
        run.restorer,
        run.degradation,
        lambda: load_split(experiment.dataset, "train", size),
        lambda: load_split(
            evaluation_dataset, experiment.config.evaluate.split, size, channels
        ).images,
        seed,
        run.device,
        console,
        log,
    )


def _sampling_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


__all__ = [
    "GenerationResult",
    "generate_for_run",
    "generate_from_run_folder",
    "FittedPrior",
    "bind_sampler",
    "cached_or_fitted_prior",
    "degrade_fully",
    "fit_prior",
    "generate_samples",
    "load_prior",
    "prior_path",
    "save_prior",
    "write_samples",
]
