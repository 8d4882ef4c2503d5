"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): a second-order multistep solver of the
diffusion ODE in data (x0) prediction, made for guided sampling in 15-20 steps.

In the VE form with lambda = -ln s (half the log-SNR) and h = lambda' - lambda, one step is

    x' = (s'/s) x - expm1(-h) D_hat,   D_hat = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1},  r = h_{i-1}/h_i,

first order on the first step and on the final step to s = 0 (where x' = D). h is computed as
log1p((s - s')/s') so that adjacent floating-point noise levels still give h > 0 and a finite r. The previous
x0 estimate is a local variable: the function has no state across calls. Thresholding (Imagen) is applied
to D by the ``Thresholded`` denoiser wrapper, which is where DPM-Solver++ applies it too.
"""
from __future__ import annotations

import torch

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import DenoiserFn
from openimagen.samplers.exp_integrator import log_step
from openimagen.samplers.noise import Generators


def sample_dpmpp_2m(denoiser: DenoiserFn, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Cond,
                    generator: Generators = None, callback=None) -> torch.Tensor:
    d_prev, h_prev = None, None
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = denoiser(x, s, cond)
        if callback is not None:
            callback(i, s, x, d)
        if s_next == 0:
            x = d
            break
        h = log_step(s, s_next)                                 # lambda' - lambda > 0
        d_hat = d
        if d_prev is not None:
            r = h_prev / h
            d_hat = (1 + 1 / (2 * r)) * d - (1 / (2 * r)) * d_prev
        x = (s_next / s) * x - torch.expm1(-h) * d_hat
        d_prev, h_prev = d, h
    return x
