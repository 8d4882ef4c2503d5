"""Fréchet distance between two feature sets, each summarised as a Gaussian (Heusel et al. 2017, FID).

For N(mu1, S1) and N(mu2, S2) the squared 2-Wasserstein (Fréchet) distance is (Dowson & Landau 1982)

    d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^{1/2} S2 S1^{1/2})^{1/2}).

The usual code computes ``scipy.linalg.sqrtm(S1 @ S2)``: a square root of a non-symmetric matrix, which
returns complex parts and NaNs for singular covariances (fewer samples than dimensions) and needs an ``eps``
retry. Here the trace term is computed from symmetric matrices only: ``S1^{1/2}`` by an eigen-decomposition
with negative round-off eigenvalues clipped to 0, then the eigenvalues of the symmetric PSD matrix
``S1^{1/2} S2 S1^{1/2}`` (the same as those of S1 S2), whose square roots sum to the trace term. Float64
throughout; the result is clipped at 0.
"""
from __future__ import annotations

import numpy as np

from openimagen.errors import InvalidArgumentError


def _matrix(x, name: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise InvalidArgumentError(f"{name} has NaN or infinite values")
    return a


def gaussian_stats(features) -> tuple:
    """``(mu (D,), sigma (D, D))`` of an (N, D) feature array: mean and unbiased covariance; N >= 2."""
    f = _matrix(features, "features")
    if f.ndim != 2 or f.shape[0] < 2:
        raise InvalidArgumentError(f"features must be (N, D) with N >= 2, got shape {f.shape}")
    return f.mean(0), np.atleast_2d(np.cov(f, rowvar=False))


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues < 0 clipped to 0)."""
    a = (a + a.T) / 2
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (the module docstring's d^2)."""
    mu1, mu2 = _matrix(mu1, "mu1").reshape(-1), _matrix(mu2, "mu2").reshape(-1)
    s1, s2 = np.atleast_2d(_matrix(sigma1, "sigma1")), np.atleast_2d(_matrix(sigma2, "sigma2"))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise InvalidArgumentError(f"shapes do not match: mu1 {mu1.shape}, sigma1 {s1.shape}, mu2 {mu2.shape}, "
                                   f"sigma2 {s2.shape}; expected (D,) and (D, D)")
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        if not np.allclose(s, s.T, rtol=1e-6, atol=1e-9 * max(1.0, np.abs(s).max())):
            raise InvalidArgumentError(f"{name} is not symmetric")
    r1 = sqrtm_psd(s1)
    m = r1 @ ((s2 + s2.T) / 2) @ r1                                          # (D, D) symmetric PSD
    trace_term = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    dist = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_term)
    return max(dist, 0.0)


def frechet_distance_features(features1, features2) -> float:
    """Squared Fréchet distance between the Gaussians fitted to two (N, D) feature sets."""
    return frechet_distance(*gaussian_stats(features1), *gaussian_stats(features2))
