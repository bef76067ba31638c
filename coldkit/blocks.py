"""Building blocks for prior plugins: the pieces coldkit's own priors are made of.

* :func:`fit_mixture` / :func:`sample_mixture` -- a Gaussian mixture over feature vectors,
  fitted with scikit-learn and kept as tensors (weights, means, Cholesky factors), drawn in torch
  with the caller's generator (seeded, no pickle);
* :class:`PcaMixturePrior` -- a complete prior over ``x_T``: a mixture over the leading principal
  components of ``D(x0, T)``, mapped back to images (the built-in ``pca-gmm`` is this class with a
  name); its keys are :class:`coldkit.params.PcaMixtureParams`;
* :class:`PriorWithDrawnParams` -- the adapter for a degradation with random parameters: any
  prior over ``x_T`` plus ``degradation.sample_params``, so generation has the parameters to
  hand to every sampler step.

Datasets have theirs in :mod:`coldkit.data` (:func:`coldkit.data.take_split`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from coldkit.params import MixtureParams, PcaMixtureParams
from coldkit.protocols import Degradation, DegradationParams, Prior


def fit_mixture(features: Any, params: MixtureParams, seed: int = 0) -> dict[str, Tensor]:
    """Fit a Gaussian mixture to ``features`` ``(N, D)``; return it as float64 tensors
    (``weights``, ``means``, ``cholesky``).

    Features are standardised first, so scikit-learn's covariance regulariser is small next to
    every direction, however faint (the low Fourier modes left by blur are ~1e-2).
    """
    from sklearn.mixture import GaussianMixture  # scikit-learn costs a second: only when fitting

    features = np.asarray(features, dtype=np.float64)
    centre = features.mean(axis=0)
    scale = features.std(axis=0) + 1e-12
    mixture = GaussianMixture(
        n_components=min(params.components, len(features)),
        covariance_type=params.covariance,
        random_state=seed,
        reg_covar=1e-4,
        n_init=2,
    ).fit((features - centre) / scale)
    if params.covariance == "full":
        cholesky = np.linalg.cholesky(mixture.covariances_)
    else:
        cholesky = np.stack([np.diag(np.sqrt(v)) for v in mixture.covariances_])
    # Undo the standardisation: x = centre + scale * (mean + L z).
    return {
        "weights": torch.as_tensor(mixture.weights_, dtype=torch.float64),
        "means": torch.as_tensor(centre + scale * mixture.means_, dtype=torch.float64),
        "cholesky": torch.as_tensor(scale[None, :, None] * cholesky, dtype=torch.float64),
    }


def sample_mixture(
    state: dict[str, Tensor], count: int, generator: torch.Generator, temperature: float = 1.0
) -> Tensor:
    """Draw ``count`` points ``(count, D)`` (float64) from a mixture stored by :func:`fit_mixture`.

    ``temperature`` scales each component's spread (its Cholesky factor): 1 draws from the
    fitted mixture; below 1 keeps draws nearer the component means, which the restorer maps to
    cleaner images where the data lie on a thinner set than the mixture's ellipsoids
    (docs/generation.md). The same generator state gives the same components at any temperature.
    """
    component = torch.multinomial(state["weights"], count, replacement=True, generator=generator)
    z = torch.randn(count, state["means"].shape[1], 1, generator=generator, dtype=torch.float64)
    return state["means"][component] + temperature * (state["cholesky"][component] @ z)[..., 0]


class PcaMixturePrior:
    """A prior over ``x_T``: a mixture over the leading principal components of ``D(x0, T)``
    (those above ``rank_tolerance`` of the largest, at most ``dims``), mapped back to images by
    the same basis, plus Gaussian noise of std ``noise``; ``temperature`` below 1 narrows each
    component when drawing. Follows :class:`coldkit.Prior`.

    Use it as it is, subclass it with your ``name``, ``description`` and ``Params`` (a subclass
    of :class:`~coldkit.params.PcaMixtureParams`), or wrap it in :class:`PriorWithDrawnParams`.
    """

    name = "pca-mixture"
    description = "Gaussian mixture over the leading principal components of D(x0, T)"

    def __init__(self, params: PcaMixtureParams | None = None) -> None:
        self.params = params or PcaMixtureParams()
        self.state: dict[str, Tensor] = {}

    def fit(self, x_T: Tensor, seed: int = 0) -> None:
        flat = x_T.double().reshape(len(x_T), -1).cpu()
        centre = flat.mean(dim=0)
        # Principal directions from an SVD of the centred data: rows of `basis` are orthonormal.
        _, singular, right = torch.linalg.svd(flat - centre, full_matrices=False)
        # Blur to T leaves a handful of real directions (its lowest Fourier modes) and float
        # rounding in all the others; a mixture over the rounding only dilutes the real ones.
        significant = int((singular > self.params.rank_tolerance * singular[0]).sum())
        dims = max(1, min(self.params.dims, significant, len(flat) - 1))
        basis = right[:dims]
        self.state = fit_mixture(((flat - centre) @ basis.T).numpy(), self.params, seed)
        self.state.update(
            centre=centre,
            basis=basis,
            shape=torch.tensor(x_T.shape[1:]),
            explained=(singular[:dims] ** 2).sum() / (singular**2).sum().clamp_min(1e-30),
        )

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        if not self.state:
            raise RuntimeError(f"prior {self.name!r} is not fitted: call fit() first")
        shape = tuple(int(v) for v in self.state["shape"])
        codes = sample_mixture(self.state, count, generator, self.params.temperature)
        images = (self.state["centre"] + codes @ self.state["basis"]).float().view(count, *shape)
        if self.params.noise > 0:
            noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
            images = images + self.params.noise * noise
        return images

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self.state)

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        missing = {"weights", "means", "cholesky", "shape", "centre", "basis"} - set(state)
        if missing:
            raise ValueError(f"prior state lacks {', '.join(sorted(missing))}")
        self.state = dict(state)


class PriorWithDrawnParams:
    """Any prior over ``x_T`` plus ``degradation.sample_params``: a
    :class:`coldkit.PriorWithParams` for a degradation with random parameters.

    ``sample_with_params`` draws x_T from ``prior`` and then the parameters the sampler steps
    use from the degradation, with the same generator. Right where what the parameters change
    is not visible in x_T beyond what the restorer copes with (a codec's quality jitter, a noise
    draw at a level that hides it); where x_T shows its parameters (a mask's position), write a
    prior that returns the parameters x_T was degraded with instead (``fit(x_T, seed,
    params=...)``, docs/plugins.md). In a plugin, take the degradation from the build context::

        class MyPrior(PriorWithDrawnParams):
            name, description, Params = "my-prior", "...", PcaMixtureParams

            def __init__(self, params, *, context):
                super().__init__(PcaMixturePrior(params), context.degradation)
    """

    name = "with-drawn-params"
    description = "a prior over x_T plus the degradation's own parameter draw"

    def __init__(self, prior: Prior, degradation: Degradation | None) -> None:
        if degradation is None:
            raise ValueError(
                "PriorWithDrawnParams needs the run's degradation: build it with the build "
                "context's degradation (context.degradation), which a prior is given"
            )
        self.prior, self.degradation = prior, degradation

    def fit(self, x_T: Tensor, seed: int = 0) -> None:
        self.prior.fit(x_T, seed=seed)

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        return self.prior.sample(count, generator)

    def sample_with_params(
        self, count: int, generator: torch.Generator
    ) -> tuple[Tensor, DegradationParams]:
        x_T = self.prior.sample(count, generator)
        return x_T, self.degradation.sample_params(x_T, generator)

    def state_dict(self) -> dict[str, Tensor]:
        return self.prior.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.prior.load_state_dict(state)


__all__ = [
    "PcaMixturePrior",
    "PriorWithDrawnParams",
    "fit_mixture",
    "sample_mixture",
]
