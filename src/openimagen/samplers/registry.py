"""Samplers by name. Every sampler is a pure function

    sample(denoiser, x_T, sigmas, *, cond, generator=None, callback=None) -> x0

where x_T is unit noise times sigmas[0] and sigmas is a strictly decreasing 1-D grid ending in exactly 0
(``sampling_sigmas``: float64 on the CPU; x keeps its own dtype). A new sampler is one function and one
line here.
"""
from __future__ import annotations

from typing import Callable

from openimagen.errors import check_choice
from openimagen.samplers.ddim import sample_ddim, sample_ddpm
from openimagen.samplers.dpm_solver import sample_dpmpp_2m
from openimagen.samplers.karras import sample_euler, sample_heun

SAMPLERS: dict[str, Callable] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "dpmpp_2m": sample_dpmpp_2m,
    "euler": sample_euler,
    "heun": sample_heun,
}

# Network evaluations a sampler makes for a grid of `steps` steps (for reporting NFE).
def evaluations(name: str, steps: int) -> int:
    return 2 * steps - 1 if name == "heun" else steps


def get_sampler(name: str) -> Callable:
    return SAMPLERS[check_choice("sampler", name, SAMPLERS)]
