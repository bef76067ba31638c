"""Generation (paper §5), its priors: fit a prior on D(x0, T), save it, load it.

The generation engine is three modules, put together by :mod:`coldkit.generation.stage` for
``coldkit run`` (its ``[generate]`` section) and ``coldkit generate``: this one (priors and their
files), :mod:`coldkit.generation.draws` (x_T and their degradation parameters) and
:mod:`coldkit.generation.sampling` (sampling, the path figure, the sample files).

* :func:`degrade_fully` — ``D(x0, T)`` of the training images, with the degradation's own
  ``sample_params`` draws (:func:`degrade_fully_with_params` returns the draws too);
* :func:`fit_prior` / :func:`save_prior` / :func:`load_prior` — a prior file holds plain data and
  tensors only (``torch.load(weights_only=True)`` loads it; nothing is unpickled);
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from coldkit.runs.checkpoint import load_error_reason, save_atomic
from coldkit.config import ResolvedPlugin
from coldkit.errors import CheckpointError, ColdkitError
from coldkit.path_noise import mean_path
from coldkit.plugins import PluginRecord, Registry
from coldkit.plugins.compat import fit_takes_params
from coldkit.protocols import (
    BuildContext,
    Degradation,
    DegradationParams,
    Prior,
)
from coldkit.runs.folder import RunPaths

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


def fit_prior(
    resolved: ResolvedPlugin,
    degradation: Degradation,
    train_images: Tensor,
    seed: int,
    device: torch.device | str = "cpu",
    context: BuildContext | None = None,
) -> FittedPrior:
    """Build the prior plugin (with the run's ``context``) and fit it on ``D(x0, T)`` of the
    training images (and the parameters drawn for them, if its ``fit`` takes ``params``).

    On a noisy path the prior is fitted on the end of the mean path, ``D(x0, T)`` without the
    path noise, which generation adds to every draw
    (:func:`coldkit.generation.draws.draw_from_prior`).
    """
    degradation = mean_path(degradation)
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
    root: Path,
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
    ``root`` (the folder caches go to) has none of its own.

    ``train_images`` is called only when the prior has to be fitted; ``context`` is the build
    context of the prior (the split it serves: the evaluation split).
    """
    path = saved = RunPaths(root).prior(resolved.record.name)
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


__all__ = [
    "FittedPrior",
    "cached_or_fitted_prior",
    "degrade_fully",
    "degrade_fully_with_params",
    "fit_takes_params",
    "fit_prior",
    "load_prior",
    "save_prior",
    "save_prior_tensors",
]
