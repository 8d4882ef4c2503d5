"""Euler and Heun samplers of the probability-flow ODE (Karras et al. 2022, "EDM", Algorithms 1 and 2).

dx/ds = (x - D(x; s)) / s in the VE form. Heun adds a trapezoidal correction on every step except the
last (to s = 0), costing 2 network evaluations per step.
"""
from __future__ import annotations

import torch

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import DenoiserFn
from openimagen.samplers.noise import Generators


def sample_euler(denoiser: DenoiserFn, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Cond,
                 generator: Generators = None, callback=None) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = denoiser(x, s, cond)
        if callback is not None:
            callback(i, s, x, d)
        x = x + (x - d) / s * (s_next - s)
    return x


def sample_heun(denoiser: DenoiserFn, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Cond,
                generator: Generators = None, callback=None) -> torch.Tensor:
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = denoiser(x, s, cond)
        if callback is not None:
            callback(i, s, x, d)
        slope = (x - d) / s
        x_euler = x + slope * (s_next - s)
        if s_next == 0:
            x = x_euler
            continue
        slope_next = (x_euler - denoiser(x_euler, s_next, cond)) / s_next
        x = x + 0.5 * (slope + slope_next) * (s_next - s)
    return x
