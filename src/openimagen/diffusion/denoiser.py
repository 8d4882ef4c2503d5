"""The one contract every cascade stage honours: ``denoise(x, sigma, cond) -> x0_hat``.

``Denoiser`` wraps a raw network F (the U-Net) with a parameterization's preconditioning
(Karras et al. 2022, eq. 7): D(x; s) = c_skip x + c_out F(c_in x, c_noise; cond). Samplers, guidance and
losses only ever see this contract; the network only ever sees scaled inputs.

For super-resolution stages ``cond.lowres`` is the noise-augmented low-res image in the VE form
(lowres + aug_sigma * n, Imagen Sec. 2.5); it is scaled by 1/sqrt(1 + aug_sigma^2) to the VP sample
the network was trained on, and its level enters as c_aug = ln(aug_sigma)/4. A ``residual`` parameterization
(:mod:`openimagen.diffusion.parameterization`) adds the bicubic-upsampled low-res input u around the network:
D(x; s) = u + c_skip (x - u) + c_out F(c_in (x - u), ...).
"""
from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.parameterization import Coefficients, ParamConfig, coefficients, noise_input


class DenoiserFn(Protocol):
    """Anything samplers can call: a Denoiser, a guided one, a thresholded one."""

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, cond: Cond) -> torch.Tensor: ...


def append_dims(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) with ``ndim`` dims in all."""
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))


def as_batch_sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a float or 0-d/(B,) tensor noise level to shape (B,) on x's device, float32."""
    sigma = torch.as_tensor(sigma, device=x.device, dtype=torch.float32)
    return sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma


class Denoiser(nn.Module):
    """D(x; s) = c_skip x + c_out F(c_in x, c_noise; cond) around a raw network F.

    Precision (as in EDM and k-diffusion): ``x``, ``sigma``, the coefficients and the returned x0_hat are float32
    (the sampler's state); only F runs in the network's dtype (``self.dtype``: float32, float16 or bfloat16), its
    inputs cast to it and its output cast back. ``device``/``dtype`` are recorded here, taken from the network
    when built and updated by ``.to()``/``.half()``/... (``_apply``), so nothing reads them off the weights:
    a quantized or adapter-wrapped network works the same.
    """

    def __init__(self, net: nn.Module, param: ParamConfig):
        super().__init__()
        self.net = net
        self.param = param
        first = next(net.parameters(), None)
        self.device = first.device if first is not None else torch.device("cpu")
        self.dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        probe = fn(torch.empty(0, device=self.device, dtype=self.dtype))   # where .to()/.half()/... sends floats
        self.device, self.dtype = probe.device, probe.dtype
        return self

    def lowres_mean(self, x: torch.Tensor, cond: Cond):
        """Residual SR stages: u, the low-res input ``cond.lowres`` (VE form, as augmented) bicubic-upsampled to
        x's (B, C, H, W), float32 like x; None for every other stage."""
        if not self.param.residual or cond.lowres is None:
            return None
        return F.interpolate(cond.lowres.to(x.dtype), size=tuple(x.shape[-2:]), mode="bicubic", align_corners=False)

    def x0_estimate(self, x: torch.Tensor, f: torch.Tensor, c: Coefficients, cond: Cond) -> torch.Tensor:
        """x0_hat = c_skip x + c_out F (or u + c_skip (x - u) + c_out F, residual), in x's dtype."""
        u = self.lowres_mean(x, cond)
        if u is None:
            return c.c_skip * x + c.c_out * f.to(x.dtype)
        return u + c.c_skip * (x - u) + c.c_out * f.to(x.dtype)

    def f_target(self, x0: torch.Tensor, x: torch.Tensor, c: Coefficients, cond: Cond) -> torch.Tensor:
        """The network output that would make x0_hat equal x0: (x0 - c_skip x) / c_out (residual: of x0 - u and
        x - u), the loss's target (Karras et al. 2022, eq. 8)."""
        u = self.lowres_mean(x, cond)
        if u is None:
            return (x0 - c.c_skip * x) / c.c_out
        return (x0 - u - c.c_skip * (x - u)) / c.c_out

    def net_output(self, x: torch.Tensor, sigma, cond: Cond) -> tuple[torch.Tensor, Coefficients]:
        """The raw network output F and the coefficients used (for the loss, which targets F)."""
        s = as_batch_sigma(sigma, x)                                      # (B,)
        c = coefficients(self.param, append_dims(s, x.ndim))              # each (B, 1, 1, 1)
        lowres = c_aug = None
        if cond.lowres is not None:
            aug = cond.aug_sigma if cond.aug_sigma is not None else torch.zeros_like(s)
            aug = aug.to(s.dtype)
            lowres = (cond.lowres.to(x.dtype) * append_dims((1 + aug * aug).rsqrt(), cond.lowres.ndim)).to(self.dtype)
            c_aug = noise_input(aug).to(self.dtype)
        extra = {} if cond.guidance is None else {"guidance": cond.guidance.to(self.dtype)}
        u = self.lowres_mean(x, cond)
        x_in = x if u is None else x - u
        f = self.net((c.c_in * x_in).to(self.dtype), c.c_noise.reshape(-1).to(self.dtype), cond.text.to(self.dtype),
                     cond.mask, text_drop=cond.drop, lowres=lowres, c_aug=c_aug, **extra)
        return f, c

    def forward(self, x: torch.Tensor, sigma, cond: Cond) -> torch.Tensor:
        f, c = self.net_output(x, sigma, cond)
        return self.x0_estimate(x, f, c, cond)
