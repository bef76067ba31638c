"""Generation (paper §5): fit a prior on D(x0, T), draw x_T from it, run a sampler back to t = 0.

The building blocks; :mod:`coldkit.generation.stage` puts them together for ``coldkit run`` (its
``[generate]`` section) and ``coldkit generate``:

* :func:`degrade_fully` — ``D(x0, T)`` of the training images, with the degradation's own
  ``sample_params`` draws (:func:`degrade_fully_with_params` returns the draws too);
* :func:`fit_prior` / :func:`save_prior` / :func:`load_prior` — a prior file holds plain data and
  tensors only (``torch.load(weights_only=True)`` loads it; nothing is unpickled);
* :func:`draw_from_prior` — x_T and the degradation parameters they were degraded with (from a
  prior that returns them, or none for a deterministic degradation; else a clear refusal);
* :func:`generate_samples` — seeded draws from the prior, restored in batches by a sampler, each
  batch with its own x_T's parameters at every sampler step;
* :func:`write_samples` — ``generated.png`` (a grid) and ``samples.pt`` (the tensor).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from coldkit.runs.checkpoint import load_error_reason, save_atomic
from coldkit.config import ResolvedPlugin
from coldkit.errors import CheckpointError, ColdkitError, ConfigError, ParamsError
from coldkit.data.imaging import save_tiles
from coldkit.plugins import PluginRecord, Registry
from coldkit.protocols import (
    BuildContext,
    Degradation,
    DegradationParams,
    Prior,
    PriorWithParams,
    Sampler,
)
from coldkit.runs.cost import available_memory
from coldkit.runs.folder import GENERATED_GRID, SAMPLES_FILE, RunPaths

PRIOR_FORMAT = "coldkit-prior"
#: x_T drawn from a prior at a time while generating (independent of the sampling batch size).
PRIOR_CHUNK = 1024
PRIOR_VERSION = 1
#: A prior file in the safetensors format (exported model folders hold this one).
TENSORS_SUFFIX = ".safetensors"


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
    return degrade_fully_with_params(degradation, images, seed, device, batch_size)[0]


@torch.no_grad()
def degrade_fully_with_params(
    degradation: Degradation,
    images: Tensor,
    seed: int,
    device: torch.device | str = "cpu",
    batch_size: int = 500,
) -> tuple[Tensor, DegradationParams]:
    """``D(x0, T)`` for every image and the parameters drawn for it (both on the CPU): the same
    draws as :func:`degrade_fully`, each params tensor joined over the batches."""
    generator = torch.Generator().manual_seed(seed)
    parts, drawn = [], []
    for start in range(0, len(images), batch_size):
        x0 = images[start : start + batch_size].to(device)
        params = degradation.sample_params(x0, generator)
        t = torch.full((len(x0),), degradation.steps, dtype=torch.long, device=x0.device)
        parts.append(degradation.degrade(x0, t, params).float().cpu())
        drawn.append({key: value.cpu() for key, value in (params or {}).items()})
    joined = {key: torch.cat([batch[key] for batch in drawn]) for key in (drawn[0] if drawn else {})}
    return torch.cat(parts), joined


def fit_takes_params(prior: Prior) -> bool:
    """Whether a prior's ``fit`` asks for the degradation's parameters (a ``params`` argument):
    a prior that draws x_T with its params learns from the pairs, not from x_T alone."""
    try:
        return "params" in inspect.signature(prior.fit).parameters
    except (TypeError, ValueError):
        return False


def fit_prior(
    resolved: ResolvedPlugin,
    degradation: Degradation,
    train_images: Tensor,
    seed: int,
    device: torch.device | str = "cpu",
    context: BuildContext | None = None,
) -> FittedPrior:
    """Build the prior plugin (with the run's ``context``) and fit it on ``D(x0, T)`` of the
    training images (and the parameters drawn for them, if its ``fit`` takes ``params``)."""
    prior = resolved.build(context)
    if fit_takes_params(prior):
        x_T, params = degrade_fully_with_params(degradation, train_images, seed, device)
        prior.fit(x_T, seed=seed, params=params)  # type: ignore[call-arg]
    else:
        prior.fit(degrade_fully(degradation, train_images, seed, device), seed=seed)
    return FittedPrior(prior, resolved.record.name, resolved.params.model_dump(mode="json"))


def save_prior(fitted: FittedPrior, path: Path) -> Path:
    """Write a fitted prior atomically: format tag, plugin name, parameters (JSON), tensors."""
    payload = {
        "format": PRIOR_FORMAT,
        "version": PRIOR_VERSION,
        "name": fitted.name,
        "params": json.dumps(fitted.params, sort_keys=True),
        "state": {key: value.detach().cpu() for key, value in fitted.prior.state_dict().items()},
    }
    save_atomic(payload, path)
    return path


def save_prior_tensors(fitted: FittedPrior, path: Path) -> Path:
    """Write a fitted prior as safetensors: its tensors, and the format tag, plugin name and
    parameters (JSON) in the file's metadata. :func:`load_prior` reads it back."""
    state = {
        key: value.detach().cpu().contiguous().clone()
        for key, value in fitted.prior.state_dict().items()
    }
    metadata = {
        "format": PRIOR_FORMAT,
        "version": str(PRIOR_VERSION),
        "name": fitted.name,
        "params": json.dumps(fitted.params, sort_keys=True),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)
    return path


def _read_payload(path: Path) -> Any:
    """A prior file's payload (format, name, params, state): ``torch.load(weights_only=True)``,
    or safetensors with the same keys in its metadata."""
    if path.suffix != TENSORS_SUFFIX:
        return torch.load(path, map_location="cpu", weights_only=True)
    with safe_open(str(path), framework="pt") as handle:
        payload: dict[str, Any] = dict(handle.metadata() or {})
        payload["state"] = {key: handle.get_tensor(key) for key in handle.keys()}
    return payload


def load_prior(
    path: Path, registry: Registry | PluginRecord, context: BuildContext | None = None
) -> FittedPrior:
    """Load a prior file written by :func:`save_prior` or :func:`save_prior_tensors` (never
    unpickles arbitrary objects).

    ``registry`` looks the prior plugin up by the name stored in the file; a single
    :class:`PluginRecord` is used as it is, if its name matches. ``context`` is the build
    context the prior gets (if it asks for one).
    """
    try:
        payload = _read_payload(path)
    except Exception as exc:
        raise CheckpointError(
            f"Prior file {path} cannot be read ({load_error_reason(exc)}). Delete it; it is "
            "fitted again from the training data the next time it is needed."
        ) from None
    problem = _malformed_prior(payload)
    if problem is not None:
        raise CheckpointError(
            f"{path} is not a coldkit prior file ({problem}). Delete it; it is fitted again "
            "from the training data the next time it is needed."
        )
    if isinstance(registry, PluginRecord):
        record = registry
        if record.name != payload["name"]:
            raise CheckpointError(
                f"Prior file {path} holds prior {payload['name']!r}, not {record.name!r}. "
                "Delete it to fit the prior again."
            )
    else:
        try:
            record = registry.get("prior", payload["name"])
        except ColdkitError as exc:
            raise CheckpointError(f"Prior file {path}: {exc}") from None
    try:
        params = json.loads(payload["params"])
        prior = record.build(params, context)
        prior.load_state_dict(payload["state"])
    except (ColdkitError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"Prior file {path} does not fit prior {payload['name']!r} ({reason}). Delete it to "
            "fit the prior again."
        ) from None
    return FittedPrior(prior, payload["name"], params)


def _malformed_prior(payload: Any) -> str | None:
    """What is wrong with a loaded prior file's structure, or None."""
    if not isinstance(payload, dict) or payload.get("format") != PRIOR_FORMAT:
        return "no coldkit-prior format tag"
    if not isinstance(payload.get("name"), str) or not payload["name"]:
        return "no prior name"
    if not isinstance(payload.get("params"), str):
        return "its params are not JSON text"
    if not isinstance(payload.get("state"), dict):
        return "its state is not a table of tensors"
    return None


def cached_or_fitted_prior(
    run_root: Path,
    resolved: ResolvedPlugin,
    degradation: Degradation,
    train_images: Callable[[], Tensor],
    seed: int,
    device: torch.device | str,
    notify: Callable[[str], None] = lambda message: None,
    context: BuildContext | None = None,
    shipped: Path | None = None,
) -> FittedPrior:
    """The run's saved prior if it was fitted with the same parameters, else fit and save it.

    ``shipped`` is the prior an exported model folder ships (listed in its manifest), used when
    ``run_root`` (the folder caches go to) has none of its own.

    ``train_images`` is called only when the prior has to be fitted; ``context`` is the build
    context of the prior (the split it serves: the evaluation split).
    """
    path = saved = RunPaths(run_root).prior(resolved.record.name)
    if not path.is_file() and shipped is not None:  # an exported model's own (listed) prior
        path = shipped
    wanted = resolved.params.model_dump(mode="json")
    if path.is_file():
        fitted = load_prior(path, resolved.record, context)
        if fitted.params == wanted:
            notify(f"prior: {fitted.name} loaded from {path}")
            return fitted
        notify(f"prior: {resolved.record.name} parameters changed; fitting it again")
    fitted = fit_prior(resolved, degradation, train_images(), seed, device, context)
    try:
        save_prior(fitted, saved)
    except CheckpointError as exc:  # e.g. a read-only run folder: use it now, fit again later
        notify(f"prior: {fitted.name} fitted on D(x0, T) of the training split, not cached ({exc})")
        return fitted
    notify(f"prior: {fitted.name} fitted on D(x0, T) of the training split, saved to {saved}")
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


def draw_from_prior(
    prior: Prior, degradation: Degradation, count: int, generator: torch.Generator
) -> tuple[Tensor, DegradationParams]:
    """``count`` x_T from ``prior`` with the degradation parameters they were degraded with.

    A prior with ``sample_with_params`` returns them; for a deterministic degradation (empty
    ``sample_params``) there are none. A degradation with random parameters and a prior that
    does not return them is refused with :class:`ParamsError`: fresh params unrelated to x_T
    would make every Algorithm 2 step subtract the wrong ``D(x̂0, s; params)``.
    """
    if isinstance(prior, PriorWithParams):
        x_T, params = prior.sample_with_params(count, generator)
        _check_prior_params(prior, degradation, x_T, params)
        return x_T, params
    x_T = prior.sample(count, generator)
    probe = degradation.sample_params(x_T[:1], torch.Generator().manual_seed(0))
    if probe:
        raise ParamsError(
            f"degradation {degradation.name!r} draws random parameters "
            f"({', '.join(sorted(probe))}) for every image, and prior "
            f"{getattr(prior, 'name', type(prior).__name__)!r} draws x_T without them: generation "
            "cannot know which draw degraded x_T, and fresh draws would make every sampler step "
            "undo a degradation x_T never had. Use a prior that returns its parameters "
            "(sample_with_params; e.g. morph's 'morph-target'), or a deterministic setting of "
            "the degradation (mask: centre = \"fixed\"); see docs/generation.md."
        )
    return x_T, {}


def params_of_degraded_images(degradation: Degradation, x_t: Tensor) -> DegradationParams:
    """The degradation parameters of images that arrive degraded (``coldkit restore``,
    :meth:`coldkit.api.Run.restore` without ``params``): none for a deterministic degradation.

    For a degradation with random parameters the draw that degraded a file cannot be read back
    from it, and a fresh draw would restore against the wrong mask, snow or target image: that is
    refused with :class:`ParamsError`.
    """
    probe = degradation.sample_params(x_t[:1], torch.Generator().manual_seed(0))
    if probe:
        raise ParamsError(
            f"degradation {degradation.name!r} draws random parameters "
            f"({', '.join(sorted(probe))}) for every image, and they cannot be known from a "
            "degraded image: restoring with a fresh draw would undo a degradation the image never "
            "had. Restore the tensors with the params Run.degrade returned "
            "(Run.restore(x_t, t, params=params)), or train with a deterministic setting "
            "(mask: centre = \"fixed\")."
        )
    return {}


def _check_prior_params(
    prior: Prior, degradation: Degradation, x_T: Tensor, params: DegradationParams
) -> None:
    """The prior's params have the degradation's keys and one entry per x_T."""
    expected = set(degradation.sample_params(x_T[:1], torch.Generator().manual_seed(0)))
    label = getattr(prior, "name", type(prior).__name__)
    if set(params) != expected or any(len(value) != len(x_T) for value in params.values()):
        raise ParamsError(
            f"prior {label!r} returned parameters {sorted(params)} for {len(x_T)} images, but "
            f"degradation {degradation.name!r} takes {sorted(expected)}, one per image: pick the "
            "prior made for this degradation, or make the two agree (same target dataset, ...)."
        )


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

    Deterministic for a seed: the prior's draws come from one CPU generator, in chunks of
    :data:`PRIOR_CHUNK` (so memory stays bounded for any ``count``) that do not depend on
    ``batch_size``. The degradation parameters of each x_T (from the prior, see
    :func:`draw_from_prior`) are handed to every sampler step. ``sampler`` is a plain sampler, or
    one bound by :func:`bind_sampler` (whose generator should be seeded from the same ``seed``).
    Returns CPU float32 images, clamped to [0, 1]; ``on_batch`` receives the number of images
    finished after each batch.
    """
    restorer.eval()
    generator = torch.Generator().manual_seed(seed)
    pending, pending_params = draw_from_prior(
        prior, degradation, min(count, PRIOR_CHUNK), generator
    )
    drawn = len(pending)
    outputs = _output_tensor(count, pending)
    for start in range(0, count, batch_size):
        wanted = min(batch_size, count - start)
        while len(pending) < wanted:
            chunk, chunk_params = draw_from_prior(
                prior, degradation, min(count - drawn, PRIOR_CHUNK), generator
            )
            pending, drawn = torch.cat([pending, chunk]), drawn + len(chunk)
            pending_params = {
                key: torch.cat([value, chunk_params[key]]) for key, value in pending_params.items()
            }
        x_T, pending = pending[:wanted].to(device), pending[wanted:]
        params = {key: value[:wanted].to(device) for key, value in pending_params.items()}
        pending_params = {key: value[wanted:] for key, value in pending_params.items()}
        t = torch.full((len(x_T),), degradation.steps, dtype=torch.long, device=x_T.device)
        restored = sampler(restorer, degradation, x_T, t, params).float().clamp(0, 1).cpu()
        outputs[start : start + wanted] = restored
        if on_batch is not None:
            on_batch(start + wanted)
    return outputs


def _output_tensor(count: int, first: Tensor) -> Tensor:
    """The ``(count, C, H, W)`` float32 result, allocated once, or a :class:`ConfigError` with
    the largest count that fits where the machine cannot hold it."""
    per_image = first[0].numel() * 4
    available = available_memory(torch.device("cpu"))
    if available is not None and count * per_image > available:
        raise ConfigError(
            f"{count:,} generated images take {count * per_image / 1024**3:.1f} GiB as float32 "
            f"and {available / 1024**3:.1f} GiB of memory is available; they are kept together "
            f"for samples.pt and the judge. Generate at most about "
            f"{int(available // per_image):,} at once (-n / generate.num_samples), and run "
            "again with another --seed for more."
        )
    return torch.empty((count, *first.shape[1:]), dtype=torch.float32)


class _RecordingRestorer(nn.Module):
    """Passes calls to a restorer and keeps each call's input ``x_s`` by level: a sampler calls
    ``R(x_s, s)`` at every level it visits, so these are its intermediate images."""

    def __init__(self, restorer: nn.Module) -> None:
        super().__init__()
        self.restorer = restorer
        self.inputs: dict[int, Tensor] = {}

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        self.inputs.setdefault(int(t.max()), x_t.detach().float().cpu())
        return self.restorer(x_t, t)


@torch.no_grad()
def generation_path(
    restorer: nn.Module,
    degradation: Degradation,
    prior: Prior,
    sampler: Sampler,
    count: int = 8,
    *,
    columns: int = 4,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[list[Tensor], list[str]]:
    """Figure 3 of generation: ``count`` draws x_T, the sampler's images at ``columns``
    intermediate levels, and the result (the columns of :func:`coldkit.data.imaging.save_grid`,
    and their labels). The draws are the first ``count`` of :func:`generate_samples` with this
    seed where the prior's draws do not depend on ``count``."""
    generator = torch.Generator().manual_seed(seed)
    x_T, params = draw_from_prior(prior, degradation, count, generator)
    x_T = x_T.to(device)
    params = {key: value.to(device) for key, value in params.items()}
    recording = _RecordingRestorer(restorer)
    t = torch.full((count,), degradation.steps, dtype=torch.long, device=x_T.device)
    result = sampler(recording, degradation, x_T, t, params).float().clamp(0, 1).cpu()
    visited = sorted(recording.inputs, reverse=True)[1:]  # below T, highest first
    chosen = [visited[round(i * (len(visited) - 1) / max(1, columns - 1))]
              for i in range(min(columns, len(visited)))]
    chosen = list(dict.fromkeys(chosen))
    images = [x_T.float().cpu(), *(recording.inputs[level] for level in chosen), result]
    labels = [f"x_T (t={degradation.steps})", *(f"t={level}" for level in chosen), "x_0"]
    return images, labels


def write_samples(samples: Tensor, folder: Path, grid_size: int = 100) -> dict[str, Path]:
    """``generated.png`` (the first ``grid_size`` samples, 10 per row) and ``samples.pt``."""
    folder.mkdir(parents=True, exist_ok=True)
    grid = save_tiles(samples[:grid_size], folder / GENERATED_GRID)
    tensor_path = folder / SAMPLES_FILE
    save_atomic(samples, tensor_path)
    return {"grid": grid, "samples": tensor_path}


__all__ = [
    "FittedPrior",
    "bind_sampler",
    "cached_or_fitted_prior",
    "degrade_fully",
    "degrade_fully_with_params",
    "fit_takes_params",
    "draw_from_prior",
    "params_of_degraded_images",
    "fit_prior",
    "generate_samples",
    "generation_path",
    "load_prior",
    "save_prior",
    "save_prior_tensors",
    "write_samples",
]
