"""RePaint's resampling jumps around any sampler (Lugmayr et al. 2022, Sec. 4.2 and Alg. 1).

Inpainting that only imposes the known pixels at each noise level (openimagen.edit.inpaint) can leave the new
content inconsistent with the old: the known region enters the sampler late and the masked region had no chance
to react. RePaint fixes it by going back: after descending ``jump_length`` steps of the grid, the sample is
noised back up to where the segment started (the forward process, here x <- x + sqrt(s_hi^2 - s_lo^2) n in the VE
form x = x0 + s n) and the segment is sampled again, ``jumps`` times in all, before moving on. RePaint uses
jump length 10 and 10 resamplings at 250 steps; the cost is ``jumps`` times the sampler's network evaluations.

:func:`with_resampling` turns a sampler (the registry's contract: ``sample(denoiser, x, sigmas, *, cond,
generator, callback) -> x``) into one with the same contract; ``jumps = 1`` is the sampler itself, exactly. The
fresh noise of each jump comes from the per-image generators, so a seed gives the same image in any batch.
"""
from __future__ import annotations

from typing import Callable

import torch

from openimagen.errors import InvalidArgumentError
from openimagen.samplers.noise import randn


def resampling_segments(steps: int, jump_length: int) -> list[tuple[int, int]]:
    """The grid's steps cut into consecutive segments of ``jump_length`` (the last may be shorter): (start, end)
    indices into the sigma grid, end exclusive of nothing (sigmas[start] down to sigmas[end])."""
    return [(i, min(i + jump_length, steps)) for i in range(0, steps, jump_length)]


def check_resampling(jump_length, jumps) -> None:
    """InvalidArgumentError (naming ``jump_length`` or ``jumps``) unless both are integers >= 1."""
    for name, value in (("jump_length", jump_length), ("jumps", jumps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgumentError(f"{name} must be an integer >= 1, got {value!r}")


def with_resampling(sampler: Callable, jump_length: int, jumps: int) -> Callable:
    """``sampler`` with RePaint's resampling: each segment of ``jump_length`` steps is sampled ``jumps`` times,
    noised back up to its first noise level between tries (module docstring). Raises InvalidArgumentError for a
    jump_length or jumps below 1."""
    check_resampling(jump_length, jumps)
    if jumps == 1:
        return sampler

    def sample(denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, cond, generator=None, callback=None):
        steps = len(sigmas) - 1
        for start, end in resampling_segments(steps, jump_length):
            segment = sigmas[start:end + 1]
            for attempt in range(jumps):
                x = sampler(denoiser, x, segment, cond=cond, generator=generator, callback=callback)
                if attempt < jumps - 1:
                    hi, lo = segment[0].to(x.dtype), segment[-1].to(x.dtype)
                    x = x + (hi * hi - lo * lo).clamp(min=0).sqrt() * randn(x.shape, generator, x.device, x.dtype)
        return x

    sample.__name__ = f"{getattr(sampler, '__name__', 'sampler')}_resampled_{jump_length}x{jumps}"
    return sample
