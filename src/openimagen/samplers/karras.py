"""Euler and Heun samplers of the probability-flow ODE (Karras et al. 2022, "EDM", Algorithm 1).

dx/ds = (x - D(x; s)) / s in the VE form. Both are written in the exponential-integrator view of the same
ODE (Lu et al. 2022, "DPM-Solver++"; see ``openimagen.samplers.exp_integrator``), with lambda = -ln s and
h = lambda' - lambda > 0 on a step s -> s' (computed as log1p((s - s')/s'), positive even for adjacent floats):

    Euler (predictor):    x_e = (s'/s) x + (1 - s'/s) d,                                  d  = D(x; s)
    Heun (corrector):     x'  = (s'/s) x + (1 - e^{-h}) d + (d' - d) (h - 1 + e^{-h}) / h,  d' = D(x_e; s')
                              = x_e + w(h) (d' - d),   w(h) = 1 + expm1(-h)/h   (series for small h)

Euler is EDM's Euler step x + (s' - s)(x - d)/s rewritten. Heun is EDM Algorithm 1 (Euler predictor,
trapezoidal corrector, no correction on the last step to s' = 0, 2N - 1 evaluations for N steps), with the
trapezoidal rule applied to D taken linear in lambda instead of to the slope (x - D)/s taken linear in s.
For small h the two agree to second order (weights h/2 on d and d'). EDM's slope form adds
0.5 (1 - s/s') (d - d') to the Euler step, which is unbounded in s/s': on a uniform-time grid of a full-range
schedule the first step goes from s ~ 1e4 to s' ~ 10 and multiplies the denoiser difference by ~800, so
the sample becomes noise. Here the weight w(h) on d' - d lies in [0, 1) for every h and tends to 1 for long steps.
"""
from __future__ import annotations

import torch

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import DenoiserFn
from openimagen.samplers.exp_integrator import first_order_step, log_step, trapezoid_weight
from openimagen.samplers.noise import Generators


def sample_euler(denoiser: DenoiserFn, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Cond,
                 generator: Generators = None, callback=None) -> torch.Tensor:
    """Euler's method on the probability-flow ODE, one evaluation per step (EDM Alg. 1 without lines 6-8)."""
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = denoiser(x, s, cond)
        if callback is not None:
            callback(i, s, x, d)
        x = first_order_step(x, d, s, s_next)
    return x


def sample_heun(denoiser: DenoiserFn, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Cond,
                generator: Generators = None, callback=None) -> torch.Tensor:
    """Heun's method (EDM Alg. 1) in exponential-integrator form: Euler predictor, trapezoidal corrector."""
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = denoiser(x, s, cond)
        if callback is not None:
            callback(i, s, x, d)
        x_euler = first_order_step(x, d, s, s_next)
        if s_next == 0:                                         # last step: x_euler = d, no correction
            x = x_euler
            continue
        d_next = denoiser(x_euler, s_next, cond)
        x = x_euler + trapezoid_weight(log_step(s, s_next)) * (d_next - d)
    return x
