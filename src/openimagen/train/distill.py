"""Guidance distillation (Meng et al. 2023, "On Distillation of Guided Diffusion Models", Sec. 3.1, stage one):
a student that takes the guidance weight w as an input and matches the teacher's guided estimate in ONE forward
pass per step, where the teacher needs two (conditional and unconditional).

Per example, in this draw order (the per-example generators of :mod:`openimagen.train.data`): w ~ U[w_min, w_max],
the SR stage's augmentation (as :class:`~openimagen.train.step.DiffusionObjective`), t ~ U[0, 1) giving sigma, and
the noise n; x = x0 + sigma n. The target is the frozen teacher's classifier-free-guided estimate

    x0_w = x0_u + w (x0_c - x0_u)        (Ho & Salimans 2022, in x0 form; guidance.py)

and the loss the student's x0 error against it with the ``snr+1`` weighting, (sigma^-2 + 1) |x0_student - x0_w|^2
(equal to a v-MSE, as the stages are trained). No text dropout: the student always sees the prompt, and w = 0
asks it for the unconditional estimate. Thresholding stays outside (applied at sampling, after guidance, as for
the teacher). The student is the teacher's network plus a zero-initialised guidance embedding
(``UNetConfig.guidance_cond``), so training starts from the teacher's conditional estimate.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import Denoiser, append_dims
from openimagen.diffusion.guidance import guidance_branches
from openimagen.samplers.noise import Generators, randn
from openimagen.train.objective import TrainBatch
from openimagen.train.step import DiffusionObjective, _rand


class GuidanceDistillationObjective:
    """``objective(student, batch, generator) -> (B,)`` against the frozen ``teacher`` Denoiser (module docstring)."""

    def __init__(self, teacher: Denoiser, diffusion: DiffusionObjective, guidance_min: float = 0.0,
                 guidance_max: float = 8.0):
        if not 0 <= guidance_min <= guidance_max:
            raise ValueError(f"need 0 <= guidance_min <= guidance_max, got {guidance_min}, {guidance_max}")
        self.teacher = teacher.eval().requires_grad_(False)
        self.diffusion, self.w_min, self.w_max = diffusion, float(guidance_min), float(guidance_max)

    def __call__(self, denoiser: Denoiser, batch: TrainBatch, generator: Generators) -> torch.Tensor:
        x0, b, dev = batch.image, batch.batch_size, batch.image.device
        w = self.w_min + (self.w_max - self.w_min) * _rand(b, generator, dev)            # (B,)
        lowres, aug_sigma = self.diffusion._augmented_lowres(x0, generator)
        cond = Cond(text=batch.text, mask=batch.mask, lowres=lowres, aug_sigma=aug_sigma)
        sigma = self.diffusion.schedule.noise_level(_rand(b, generator, dev))           # (B,)
        x = x0 + append_dims(sigma, x0.ndim) * randn(x0.shape, generator, dev, x0.dtype)
        with torch.no_grad():
            x0_c, x0_u = guidance_branches(self.teacher, x, sigma, cond)
            target = x0_u + append_dims(w, x0.ndim) * (x0_c - x0_u)
        student = denoiser(x, sigma, replace(cond, guidance=w))
        err = (student.float() - target.float()).pow(2).flatten(1).mean(1)              # (B,)
        return err * (sigma.float().pow(-2) + 1)
