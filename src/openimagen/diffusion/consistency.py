"""Low-res consistency of a super-resolution stage: every x0 estimate is projected onto the images whose
downsample is the low-res input (range-null space decomposition, DDNM: Wang et al. 2023, "Zero-Shot Image
Restoration Using Denoising Diffusion Null-Space Model", Eq. 9-11; ILVR, Choi et al. 2021, does the same with a
low-pass filter).

With A the training-time downsampler (antialiased bilinear, ``F.interpolate(..., antialias=True)``, linear and
separable: ``A(x) = D x D^T`` per channel for a (r, R) matrix D) and D^+ its Moore-Penrose pseudo-inverse,

    x0_hat  <-  x0_hat + D^+ (y - D x0_hat D^T) D^+^T

keeps the estimate's null-space part (the detail the stage invents: ``(I - A^+ A) x0_hat``) and replaces its
range-space part by the low-res image's (``A^+ y``), so ``A(x0_hat) = y`` exactly (up to float rounding). The
stage then cannot shift colours or move edges of the image it enlarges; it only adds the band above the low-res
image's Nyquist frequency. A denoiser wrapper like guidance and thresholding (every sampler gets it, the U-Net
does not know), switched per stage by the sampling setting ``lowres_consistency``.
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from openimagen.errors import InvalidArgumentError


@lru_cache(maxsize=16)
def _resize_matrices(src: int, dst: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(D, D^+), float64 on CPU: D (dst, src) is the 1-D operator of the antialiased bilinear resize src -> dst,
    D^+ (src, dst) its pseudo-inverse."""
    # image n: row n all ones (the resize along the rows of a constant row is that constant, so the first output
    # column is D's column n); the same 2-D call as the training downsampler (a width-1 image takes another path)
    basis = torch.eye(src, dtype=torch.float64)[:, None, :, None].expand(src, 1, src, src)
    columns = F.interpolate(basis, size=(dst, dst), mode="bilinear", antialias=True, align_corners=False)
    d = columns[:, 0, :, 0].T.contiguous()                                     # (dst, src)
    return d, torch.linalg.pinv(d)


def resize_matrix(src: int, dst: int) -> torch.Tensor:
    """(dst, src) float64: the antialiased bilinear resize of a side of ``src`` pixels to ``dst`` as a matrix, so
    ``F.interpolate(x, (dst, dst), mode="bilinear", antialias=True) == D @ x @ D.T`` for x (..., src, src)."""
    return _resize_matrices(src, dst)[0].clone()


def project_to_lowres(x0: torch.Tensor, lowres: torch.Tensor) -> torch.Tensor:
    """The range-null space projection of ``x0`` (B, C, R, R) onto {x : A(x) = lowres}, ``lowres`` (B, C, r, r)
    with r < R (module docstring). Same shape and dtype as ``x0``; computed in float64 and per image (so an image's
    result does not depend on its batch). Raises :class:`InvalidArgumentError` on anything but floating-point
    tensors of those shapes."""
    if not (isinstance(x0, torch.Tensor) and isinstance(lowres, torch.Tensor)
            and x0.is_floating_point() and lowres.is_floating_point()):
        raise InvalidArgumentError(f"low-res consistency needs floating-point tensors, got "
                                   f"{getattr(x0, 'dtype', type(x0).__name__)} and "
                                   f"{getattr(lowres, 'dtype', type(lowres).__name__)}")
    if x0.ndim != 4 or lowres.ndim != 4 or x0.shape[:2] != lowres.shape[:2] \
            or x0.shape[-1] != x0.shape[-2] or lowres.shape[-1] != lowres.shape[-2] \
            or not 0 < lowres.shape[-1] < x0.shape[-1]:
        raise InvalidArgumentError(f"low-res consistency needs x0 (B, C, R, R) and lowres (B, C, r, r) with r < R, "
                                   f"got {tuple(x0.shape)} and {tuple(lowres.shape)}")
    d, d_pinv = (m.to(x0.device) for m in _resize_matrices(x0.shape[-1], lowres.shape[-1]))
    out = torch.empty_like(x0)
    for k in range(x0.shape[0]):
        x = x0[k].double()
        residual = lowres[k].double() - d @ x @ d.T                               # (C, r, r)
        out[k] = (x + d_pinv @ residual @ d_pinv.T).to(x0.dtype)
    return out


class LowresConsistency:
    """Denoiser wrapper: ``denoiser``'s x0 estimate projected by :func:`project_to_lowres` onto the images whose
    downsample is ``lowres`` (B, C, r, r) in [-1, 1] (the clean low-res input, before noise augmentation)."""

    def __init__(self, denoiser, lowres: torch.Tensor):
        self.denoiser, self.lowres = denoiser, lowres

    def __call__(self, x: torch.Tensor, sigma, cond) -> torch.Tensor:
        return project_to_lowres(self.denoiser(x, sigma, cond), self.lowres.to(x.device, x.dtype))
