"""Debiasing a denoised image whose noise was clipped to the valid range (Foi 2009).

A noisy photo is stored clipped: y = clip(x + s n, -1, 1) with n ~ N(0, 1). Near white and black the clipping cuts
one tail of the noise off, so the noisy pixels are biased toward mid-grey: a white pixel (x = 1) is seen on average
as 1 - s / sqrt(2 pi) (0.92 for s = 0.2). A denoiser trained on unclipped Gaussian noise averages that bias in and
returns a grey background for a white one. Foi (2009, "Clipped noisy images: heteroskedastic modeling and practical
denoising", Signal Processing 89(12), Sec. 4) treats the denoised value as an estimate of the clipped mean
E[y | x] = m(x; s) and maps it back through the inverse of m, a monotone function that is the identity away from the
range's ends:

    m(x; s) = x + (1 - x) Q(a) - s phi(a) - (1 + x) Q(b) + s phi(b),   a = (1 - x) / s,  b = (1 + x) / s,

with phi the standard normal density and Q = 1 - Phi its tail (each side's term is E[min(X, 1)] - x, resp.
E[max(X, -1)] - x, for X ~ N(x, s^2); the two are exact together while the tails do not overlap, s << 1).
"""
from __future__ import annotations

import math

import torch

_ITERATIONS = 48        # bisection on [-1, 1]: 2 / 2^48 < 1e-14, below float64 image precision needs


def _phi(z: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def clipped_mean(x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """m(x; s) of the module docstring: the mean of clip(x + s n, -1, 1), n ~ N(0, 1).

    ``x``: any shape, values in [-1, 1]; ``sigma``: a float or a tensor broadcastable to x, >= 0, in [-1, 1] image
    units (noise of std 0.1 on a [0, 1] scale is 0.2). Returns x's shape, float64; m(x; 0) = x."""
    x = x.double()
    sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device)
    s = sigma.clamp(min=1e-300)
    a, b = (1 - x) / s, (1 + x) / s
    upper = (1 - x) * torch.special.ndtr(-a) - s * _phi(a)
    lower = (1 + x) * torch.special.ndtr(-b) - s * _phi(b)
    return torch.where(sigma > 0, x + upper - lower, x)


def debias_clipped(y: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """The x in [-1, 1] with m(x; s) = y: Foi's (2009) inverse of :func:`clipped_mean`, applied to a denoised
    image whose input noise of level ``sigma`` was clipped to [-1, 1].

    ``y``: (B, C, H, W) (or any shape) float in [-1, 1]; ``sigma``: float or a tensor broadcastable to y (e.g. (B, 1,
    1, 1) per image), >= 0. Values of y beyond what m can reach (above m(1; s) or below m(-1; s)) map to 1 and -1.
    Returns y's shape and dtype; the identity where y is more than about 4 s from -1 and 1, and for s = 0."""
    target = y.double().clamp(-1, 1)
    lo, hi = torch.full_like(target, -1.0), torch.full_like(target, 1.0)
    for _ in range(_ITERATIONS):        # m is increasing in x: bisection is exact and needs no derivative
        mid = (lo + hi) / 2
        below = clipped_mean(mid, sigma) < target
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    out = (lo + hi) / 2
    return torch.where(torch.as_tensor(sigma, device=y.device) > 0, out, target).to(y.dtype)
