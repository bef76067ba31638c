"""Generation's sampling: seeded draws from a fitted prior restored in batches by a sampler, the
generation path figure's intermediate images, and the files the samples are written to.

* :func:`bind_sampler` — the sampler with the run's generator (and per-step noise, for a sampler
  that declares ``takes_noise``) bound;
* :func:`generate_samples` — seeded draws from the prior, restored in batches by a sampler, each
  batch with its own x_T's parameters at every sampler step;
* :func:`generation_path` — a few draws through the sampler's intermediate levels (its per-step
  ``callback``);
* :func:`write_samples` — ``generated.png`` (a grid) and ``samples.pt`` (the tensor).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from coldkit.data.imaging import save_tiles
from coldkit.errors import ConfigError
from coldkit.generation.draws import draw_from_prior
from coldkit.protocols import Degradation, Prior, Sampler, StepInfo
from coldkit.runs.checkpoint import save_atomic
from coldkit.runs.cost import available_memory
from coldkit.runs.folder import GENERATED_GRID, SAMPLES_FILE

#: x_T drawn from a prior at a time while generating (independent of the sampling batch size).
PRIOR_CHUNK = 1024


def bind_sampler(
    sampler: Sampler, name: str, step_noise: float, generator: torch.Generator
) -> Sampler:
    """The sampler with the run's ``generator`` bound, and its per-step noise if it declares
    ``takes_noise`` (the sampler protocol, :class:`coldkit.protocols.Sampler`).

    Asking for ``step_noise`` from a sampler that adds no noise is a config error, not a silent
    no-op.
    """
    options: dict[str, Any] = {"generator": generator}
    if getattr(sampler, "takes_noise", False):
        options["noise"] = step_noise
    elif step_noise > 0:
        raise ConfigError(
            f"generate.step_noise = {step_noise} needs a sampler that adds noise per step, but "
            f"sampler {name!r} takes no noise. Set generate.sampler = \"stochastic\", or "
            "step_noise = 0."
        )
    return functools.partial(sampler, **options)


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
    inputs: dict[int, Tensor] = {}  # the image each step restored, by level

    def heard(step: StepInfo) -> None:
        inputs.setdefault(step["i"], step["x"].detach().float().cpu())

    t = torch.full((count,), degradation.steps, dtype=torch.long, device=x_T.device)
    result = sampler(restorer, degradation, x_T, t, params, callback=heard).float().clamp(0, 1)
    result = result.cpu()
    visited = sorted(inputs, reverse=True)[1:]  # below T, highest first
    chosen = [visited[round(i * (len(visited) - 1) / max(1, columns - 1))]
              for i in range(min(columns, len(visited)))]
    chosen = list(dict.fromkeys(chosen))
    images = [x_T.float().cpu(), *(inputs[level] for level in chosen), result]
    labels = [f"x_T (t={degradation.steps})", *(f"t={level}" for level in chosen), "x_0"]
    return images, labels


def write_samples(samples: Tensor, folder: Path, grid_size: int = 100) -> dict[str, Path]:
    """``generated.png`` (the first ``grid_size`` samples, 10 per row) and ``samples.pt``."""
    folder.mkdir(parents=True, exist_ok=True)
    grid = save_tiles(samples[:grid_size], folder / GENERATED_GRID)
    tensor_path = folder / SAMPLES_FILE
    save_atomic(samples, tensor_path)
    return {"grid": grid, "samples": tensor_path}


