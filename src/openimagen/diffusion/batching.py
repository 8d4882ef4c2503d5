"""Run a denoiser one image at a time, so that results do not depend on the batch.

On CPU, oneDNN convolutions and small GEMMs pick different kernels for different batch sizes, so the
same image can differ in its last bits between a batch of 1 and a batch of 8. Evaluating each image on
its own (its cond and uncond halves still share one forward pass inside guidance) makes a seed reproduce
an image bit for bit whatever batch it is in, at some cost in throughput.
"""
from __future__ import annotations

import torch

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import DenoiserFn, as_batch_sigma


class PerSample:
    def __init__(self, denoiser: DenoiserFn):
        self.denoiser = denoiser

    def __call__(self, x: torch.Tensor, sigma, cond: Cond) -> torch.Tensor:
        s = as_batch_sigma(sigma, x)
        # clone(): each image's inputs get a fresh allocation, so a kernel's alignment-dependent path cannot differ
        # with the image's position in the batch
        one = lambda t, i: t[i:i + 1].clone()  # noqa: E731
        outs = [self.denoiser(one(x, i), one(s, i), cond.map(lambda t, i=i: one(t, i))) for i in range(x.shape[0])]
        return torch.cat(outs)
