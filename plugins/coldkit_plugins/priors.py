"""Built-in priors over fully degraded images ``x_T``: where generation starts (paper §5).

* ``gmm`` — the paper's prior: a Gaussian mixture over the per-channel means of ``D(x0, T)``, drawn
  as a flat image plus a little Gaussian noise that breaks the symmetry. Right for degradations
  that end in a flat image; where ``D(x0, T)`` still carries shape (the paper's MNIST blur keeps
  its lowest Fourier modes at a few per cent) it throws that shape away, and the restorer maps
  nearly every draw to the same few digits.
* ``pca-gmm`` — keeps the shape: a Gaussian mixture over the leading principal components of
  ``D(x0, T)`` (those above rounding noise, at most ``dims``), mapped back to images by the same
  linear basis (the least-squares map from the code to the image). For a linear degradation such as blur the principal directions lie in the
  range of ``D(., T)``, so a draw is a valid ``x_T``.

Mixtures are fitted with scikit-learn and stored as tensors (weights, means, Cholesky factors);
sampling is done in torch with the caller's generator, so it is seeded and needs no pickle.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from pydantic import BaseModel
from torch import Tensor

from coldkit_plugins.entries.priors import MixtureParams, GmmParams, PcaGmmParams, GMM, PCA_GMM


def fit_mixture(features: np.ndarray, params: MixtureParams, seed: int) -> dict[str, Tensor]:
    """Fit a Gaussian mixture to ``features`` ``(N, D)``; return it as tensors.

    Features are standardised first, so scikit-learn's covariance regulariser is small next to
    every direction, however faint (the low Fourier modes left by blur are ~1e-2).
    """
    from sklearn.mixture import GaussianMixture

    features = np.asarray(features, dtype=np.float64)
    centre = features.mean(axis=0)
    scale = features.std(axis=0) + 1e-12
    components = min(params.components, len(features))
    mixture = GaussianMixture(
        n_components=components,
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


def sample_mixture(state: dict[str, Tensor], count: int, generator: torch.Generator) -> Tensor:
    """Draw ``count`` points ``(count, D)`` (float64) from a mixture stored by :func:`fit_mixture`."""
    component = torch.multinomial(state["weights"], count, replacement=True, generator=generator)
    z = torch.randn(count, state["means"].shape[1], 1, generator=generator, dtype=torch.float64)
    return state["means"][component] + (state["cholesky"][component] @ z)[..., 0]


class _MixturePrior:
    """What both mixture priors share: fitted state as tensors, noise on the drawn images."""

    params: MixtureParams

    def __init__(self) -> None:
        self.state: dict[str, Tensor] = {}

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self.state)

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        missing = {"weights", "means", "cholesky", "shape"} - set(state)
        if missing:
            raise ValueError(f"prior state lacks {', '.join(sorted(missing))}")
        self.state = dict(state)

    def _shape(self) -> tuple[int, int, int]:
        if not self.state:
            raise RuntimeError(f"prior {type(self).__name__} is not fitted: call fit() first")
        return tuple(int(v) for v in self.state["shape"])  # type: ignore[return-value]

    def _with_noise(self, images: Tensor, generator: torch.Generator) -> Tensor:
        if self.params.noise > 0:
            noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
            images = images + self.params.noise * noise
        return images


class Gmm(_MixturePrior):
    """The paper's prior: a mixture over per-channel means of ``D(x0, T)``, drawn flat plus noise."""

    name: ClassVar[str] = GMM.name
    description: ClassVar[str] = GMM.description
    Params: ClassVar[type[BaseModel]] = GmmParams

    def __init__(self, params: GmmParams | None = None) -> None:
        super().__init__()
        self.params = params or GmmParams()

    def fit(self, x_T: Tensor, seed: int = 0) -> None:
        means = x_T.double().mean(dim=(2, 3)).numpy()
        self.state = fit_mixture(means, self.params, seed)
        self.state["shape"] = torch.tensor(x_T.shape[1:])

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        channels, height, width = self._shape()
        means = sample_mixture(self.state, count, generator).float()
        flat = means.view(count, channels, 1, 1).expand(count, channels, height, width)
        return self._with_noise(flat.contiguous(), generator)


class PcaGmm(_MixturePrior):
    """A mixture over the leading principal components of ``D(x0, T)``: keeps its shape."""

    name: ClassVar[str] = PCA_GMM.name
    description: ClassVar[str] = PCA_GMM.description
    Params: ClassVar[type[BaseModel]] = PcaGmmParams

    def __init__(self, params: PcaGmmParams | None = None) -> None:
        super().__init__()
        self.params = params or PcaGmmParams()

    def fit(self, x_T: Tensor, seed: int = 0) -> None:
        flat = x_T.double().reshape(len(x_T), -1)
        centre = flat.mean(dim=0)
        # Principal directions from an SVD of the centred data: rows of `basis` are orthonormal.
        _, singular, right = torch.linalg.svd(flat - centre, full_matrices=False)
        # Blur to T leaves a handful of real directions (its lowest Fourier modes) and float
        # rounding in all the others; a mixture over the rounding only dilutes the real ones.
        significant = int((singular > self.params.rank_tolerance * singular[0]).sum())
        dims = max(1, min(self.params.dims, significant, len(flat) - 1))
        basis = right[:dims]
        codes = (flat - centre) @ basis.T
        self.state = fit_mixture(codes.numpy(), self.params, seed)
        self.state.update(
            centre=centre,
            basis=basis,
            shape=torch.tensor(x_T.shape[1:]),
            explained=(singular[:dims] ** 2).sum() / (singular**2).sum().clamp_min(1e-30),
        )

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if not {"centre", "basis"} <= set(state):
            raise ValueError("prior state lacks centre or basis")
        super().load_state_dict(state)

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        shape = self._shape()
        codes = sample_mixture(self.state, count, generator)
        images = (self.state["centre"] + codes @ self.state["basis"]).float()
        return self._with_noise(images.view(count, *shape), generator)
