"""DDIM (Song et al. 2021, eq. 12) and DDPM ancestral sampling (Ho et al. 2020, Alg. 2).

Written in the VE form x = x0 + s n (see ``openimagen.diffusion.schedules``). With D = x0_hat and
eps_hat = (x - D)/s, one step from s to s' is

    x' = D + sqrt(s'^2 - c^2) eps_hat + c n,    c = eta s' sqrt(1 - s'^2/s^2),

which is DDIM's update divided by alpha_{t'}. eta = 0 is deterministic DDIM (identical to Euler in s);
eta = 1 samples the DDPM posterior q(x_{t'} | x_t, x0 = D) with the posterior variance beta_tilde,
i.e. ancestral DDPM sampling.
"""
from __future__ import annotations

import torch

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import DenoiserFn
from openimagen.samplers.noise import Generators, randn


def sample_ddim(denoiser: DenoiserFn, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Cond,
                generator: Generators = None, callback=None, eta: float = 0.0) -> torch.Tensor:
    """Run DDIM from ``x`` (noise already scaled by sigmas[0]) down the grid ``sigmas`` (ending in 0)."""
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = denoiser(x, s, cond)
        if callback is not None:
            callback(i, s, x, d)
        if s_next == 0:
            x = d
            continue
        c = eta * s_next * (1 - (s_next / s) ** 2).clamp(min=0).sqrt()
        eps = (x - d) / s
        x = d + (s_next ** 2 - c ** 2).clamp(min=0).sqrt() * eps
        if eta > 0:
            x = x + c * randn(x.shape, generator, x.device, x.dtype)
    return x


def sample_ddpm(denoiser: DenoiserFn, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Cond,
                generator: Generators = None, callback=None) -> torch.Tensor:
    """Ancestral DDPM sampling: DDIM with eta = 1 (the exact posterior step)."""
    return sample_ddim(denoiser, x, sigmas, cond=cond, generator=generator, callback=callback, eta=1.0)
