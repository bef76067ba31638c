"""Generation (paper §5): fit a prior on D(x0, T), draw x_T from it, run a sampler back to t = 0.

The building blocks; :mod:`coldkit.generation.stage` puts them together for ``coldkit run`` (its
``[generate]`` section) and ``coldkit generate``:

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from coldkit.runs.checkpoint import save_atomic
from coldkit.config import ResolvedPlugin
from coldkit.errors import CheckpointError, ConfigError
from coldkit.data.imaging import save_tiles
from coldkit.plugins import PluginRecord, Registry
from coldkit.protocols import Degradation, Prior, Sampler
from coldkit.runs.folder import GENERATED_GRID, SAMPLES_FILE, RunPaths

PRIOR_FORMAT = "coldkit-prior"
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
    prior = resolved.build()
    x_T = degrade_fully(degradation, train_images, seed, device)
    prior.fit(x_T, seed=seed)
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


def load_prior(path: Path, registry: Registry | PluginRecord) -> FittedPrior:
    """Load a prior file written by :func:`save_prior` or :func:`save_prior_tensors` (never
    unpickles arbitrary objects).

    ``registry`` looks the prior plugin up by the name stored in the file; a single
    :class:`PluginRecord` is used as it is, if its name matches.
    """
    try:
        payload = _read_payload(path)
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
    prior = record.build(params)
    try:
        prior.load_state_dict(payload["state"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"Prior file {path} does not fit prior {payload['name']!r} ({exc}). Delete it to fit "
            "the prior again."
        ) from None
    return FittedPrior(prior, payload["name"], params)


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
    path = saved = RunPaths(run_root).prior(resolved.record.name)
    if not path.is_file() and path.with_suffix(TENSORS_SUFFIX).is_file():  # an exported model
        path = path.with_suffix(TENSORS_SUFFIX)
    wanted = resolved.params.model_dump(mode="json")
    if path.is_file():
        fitted = load_prior(path, resolved.record)
        if fitted.params == wanted:
            notify(f"prior: {fitted.name} loaded from {path}")
            return fitted
        notify(f"prior: {resolved.record.name} parameters changed; fitting it again")
    fitted = fit_prior(resolved, degradation, train_images(), seed, device)
    save_prior(fitted, saved)
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
    grid = save_tiles(samples[:grid_size], folder / GENERATED_GRID)
    tensor_path = folder / SAMPLES_FILE
    save_atomic(samples, tensor_path)
    return {"grid": grid, "samples": tensor_path}


__all__ = [
    "FittedPrior",
    "bind_sampler",
    "cached_or_fitted_prior",
    "degrade_fully",
    "fit_prior",
    "generate_samples",
    "load_prior",
    "save_prior",
    "save_prior_tensors",
    "write_samples",
]
