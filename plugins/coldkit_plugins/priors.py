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

Both are made of :mod:`coldkit.blocks`, which a third-party prior reuses. Mixtures are fitted
with scikit-learn and stored as tensors (weights, means, Cholesky factors);
sampling is done in torch with the caller's generator, so it is seeded and needs no pickle.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import BaseModel
from torch import Tensor

from coldkit.blocks import PcaMixturePrior, fit_mixture, sample_mixture
from coldkit.params import MixtureParams
from coldkit_plugins.entries.priors import GmmParams, PcaGmmParams, GMM, PCA_GMM


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
        means = sample_mixture(self.state, count, generator, self.params.temperature).float()
        flat = means.view(count, channels, 1, 1).expand(count, channels, height, width)
        return self._with_noise(flat.contiguous(), generator)


class PcaGmm(PcaMixturePrior):
    """A mixture over the leading principal components of ``D(x0, T)``: keeps its shape
    (coldkit's public :class:`coldkit.blocks.PcaMixturePrior`, registered under a name)."""

    name: ClassVar[str] = PCA_GMM.name
    description: ClassVar[str] = PCA_GMM.description
    Params: ClassVar[type[BaseModel]] = PcaGmmParams

    def __init__(self, params: PcaGmmParams | None = None) -> None:
        super().__init__(params or PcaGmmParams())
