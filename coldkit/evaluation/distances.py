"""Distances between two sets of features: the Fréchet distance (FID's formula) and the kernel
inception distance (KID: an unbiased estimate of the squared maximum mean discrepancy under a
cubic polynomial kernel, averaged over random subsets).

Both work on any ``(N, d)`` features; :mod:`coldkit.evaluation.fid` feeds them Inception pool
features, :mod:`coldkit.evaluation.judge` its classifier's features.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor


def _mean_cov(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(
        features.detach().cpu().double().numpy() if isinstance(features, Tensor) else features,
        dtype=np.float64,
    )
    if array.ndim != 2 or len(array) < 2:
        raise ValueError(
            f"The Fréchet distance needs (N, d) features with N >= 2; got shape {array.shape}."
        )
    if not np.isfinite(array).all():
        raise ValueError("The features contain NaN or infinite values.")
    return array.mean(axis=0), np.atleast_2d(np.cov(array, rowvar=False))


def frechet_distance(features_a: Tensor | np.ndarray, features_b: Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two ``(N, d)`` feature sets, in float64.

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))`` (FID's formula; covariances
    with ``N - 1``). The trace term is computed as ``tr((R S_b R)^(1/2))`` with ``R = S_a^(1/2)``,
    which has the same eigenvalues as ``S_a S_b`` but is symmetric: symmetric eigen-decompositions
    give real results (no imaginary parts to discard) and stay exact for singular or near-singular
    covariances (dead ReLU features, fewer samples than dimensions), where ``sqrtm`` of the
    non-symmetric product is fragile. Tiny negative eigenvalues from rounding are clipped to 0.
    """
    mean_a, cov_a = _mean_cov(features_a)
    mean_b, cov_b = _mean_cov(features_b)
    if mean_a.shape != mean_b.shape:
        raise ValueError(
            f"Feature dimensions differ: {mean_a.shape[0]} and {mean_b.shape[0]}."
        )
    values, vectors = np.linalg.eigh((cov_a + cov_a.T) / 2)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    middle = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    distance = float(
        np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root
    )
    return max(distance, 0.0)


#: KID as clean-fid and torchmetrics compute it: 100 subsets of (at most) 1,000 images each.
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def kernel_inception_distance(
    features_a: Tensor | np.ndarray,
    features_b: Tensor | np.ndarray,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> tuple[float, float]:
    """KID between two ``(N, d)`` feature sets: mean and standard deviation over ``subsets``
    random subsets (``subset_size``, or half the smaller set, drawn without replacement, seeded)
    of the unbiased MMD² with kernel ``k(x, y) = (x·y / d + 1)³`` (Bińkowski et al. 2018).

    Unlike FID it has no bias from the number of images, so small sets are comparable; it is
    symmetric and can come out slightly negative for two draws of one distribution.
    """
    a = _array(features_a)
    b = _array(features_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"Feature dimensions differ: {a.shape[1]} and {b.shape[1]}.")
    # Subsets of the whole smaller set would all give the same value (std 0): below
    # 2 * subset_size images, subsets hold half of it. The mean is unbiased at any subset size.
    size = min(subset_size, max(2, min(len(a), len(b)) // 2))
    generator = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = a[generator.choice(len(a), size, replace=False)]
        y = b[generator.choice(len(b), size, replace=False)]
        values.append(_mmd2_unbiased(x, y))
    return float(np.mean(values)), float(np.std(values))


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    dimension, n = x.shape[1], len(x)
    k_xx = (x @ x.T / dimension + 1.0) ** 3
    k_yy = (y @ y.T / dimension + 1.0) ** 3
    k_xy = (x @ y.T / dimension + 1.0) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within - 2.0 * k_xy.mean())


def _array(features: Tensor | np.ndarray) -> np.ndarray:
    array = np.asarray(
        features.detach().cpu().double().numpy() if isinstance(features, Tensor) else features,
        dtype=np.float64,
    )
    if array.ndim != 2 or len(array) < 2:
        raise ValueError(f"KID needs (N, d) features with N >= 2; got shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError("The features contain NaN or infinite values.")
    return array


__all__ = ["KID_SUBSETS", "KID_SUBSET_SIZE", "frechet_distance", "kernel_inception_distance"]
