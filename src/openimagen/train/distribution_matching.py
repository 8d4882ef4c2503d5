"""Trajectory distillation plus distribution matching on the student's own samples (issue 15, point 1).

Every loss of :mod:`openimagen.train.trajectory` regresses the student onto the teacher's trajectory one example at
a time; a student too small to follow every trajectory then lands between them, and its samples' distribution is
narrower than the teacher's (the emoji Fréchet distance stays above the teacher's while a discriminator on pixels
sees nothing, docs/EVALUATION.md). Distribution Matching Distillation (Yin et al. 2024, "One-step Diffusion with
Distribution Matching Distillation", CVPR, Sec. 3.2-3.3) adds to such a regression loss the gradient of the KL
divergence between the student's output distribution and the teacher's, both diffused to a noise level s:

    grad_x KL = E_{s, n} [ w (D_fake(x_s, s) - D_real(x_s, s)) ],   x_s = x + s n           (DMD eq. 7, x0 form)

with D_real the frozen teacher's classifier-free-guided x0 estimate (at the trajectories' guidance; no
thresholding, as in DMD) and D_fake a "fake" denoiser, initialised as the teacher and trained online with the
ordinary denoising loss on the student's samples, so that it tracks their distribution (DMD eq. 6). The weight
w = 1 / mean|x - D_real(x_s, s)| per sample (DMD eq. 8) normalises the step across noise levels; s is drawn as
s(t), t ~ U[0.02, 0.98] of the stage's schedule (DMD's range). The generator's term is the surrogate

    L_dm = 0.5 mean (x - sg(x - g))^2,   g = w (D_fake - D_real)        (its gradient in x is g / numel)

Here x are the student's whole N-step DDIM rollouts from the bank's starting noise (gradients through every step,
thresholded as it samples, the captions of those trajectories), on the first ``samples`` examples of each batch;
the bank's paired regression (DMD's L_reg, eq. 9, its noise-image pairs being the teacher's trajectories) stays
on every example:

    generator   L_traj (per example) + weight * L_dm (the first ``samples`` examples)
    fake        ``fake_steps`` Adam steps per call of (s^-2 + 1) |D_fake(x + s n, s) - x|^2 on the detached x,
                s from the schedule's t ~ U[0, 1) (the stages' own denoising loss)

Each call first updates D_fake on the detached samples, then returns the generator's loss with D_fake as updated;
during the first ``warmup_steps`` calls only D_fake learns. D_fake runs in eval mode (no dropout), like the
teacher. Its weights and optimiser go through the trainer's checkpoints (``objective.safetensors``). One process
only: D_fake's gradients are not synchronised across ranks.
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import DenoiserFn, append_dims
from openimagen.diffusion.guidance import ClassifierFreeGuidance
from openimagen.samplers.noise import Generators, randn
from openimagen.train.objective import TrainBatch
from openimagen.train.step import _rand
from openimagen.train.trajectory import TrajectoryDistillationObjective

T_RANGE = (0.02, 0.98)   # the noise levels of the distribution-matching gradient, as schedule times (DMD, Sec. 4)


def _first(generator: Generators, m: int) -> Generators:
    return generator if generator is None or isinstance(generator, torch.Generator) else list(generator)[:m]


def distribution_matching_grad(x: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor, real: DenoiserFn,
                               fake: DenoiserFn, cond: Cond) -> torch.Tensor:
    """g = w (D_fake(x_s, s) - D_real(x_s, s)) at x_s = x + s n, w = 1 / mean|x - D_real(x_s, s)| per sample (DMD,
    eq. 7-8; module docstring): the direction in which the samples ``x`` (B, C, H, W) should move AGAINST to
    approach the real distribution. ``sigma`` (B,) noise levels, ``noise`` (B, C, H, W). No gradient; (B, C, H,
    W) float32. The per-sample mean absolute error is clamped at 1e-5 so a sample the teacher reproduces exactly
    gives a finite g."""
    with torch.no_grad():
        x = x.detach().float()
        x_s = x + append_dims(sigma, x.ndim) * noise
        p_real, p_fake = real(x_s, sigma, cond).float(), fake(x_s, sigma, cond).float()
        w = 1.0 / (x - p_real).abs().flatten(1).mean(1).clamp(min=1e-5)
        return append_dims(w, x.ndim) * (p_fake - p_real)


class DistributionMatchingTrajectoryObjective(TrajectoryDistillationObjective):
    """:class:`TrajectoryDistillationObjective` plus DMD's distribution-matching term on the student's N-step
    samples (module docstring). ``real``: the teacher's guided x0 estimate (a DenoiserFn, frozen); ``fake``: the
    fake denoiser to train (an nn.Module with the denoiser contract, usually a copy of the teacher's Denoiser).
    ``weight`` > 0: the term's factor; ``samples`` >= 1: student rollouts per call;
    ``warmup_steps``: calls in which only the fake denoiser learns; ``lr``: its Adam learning rate (betas 0.9,
    0.999); ``fake_steps`` >= 1: its updates per call. The other arguments are the parent's.

    Raises ValueError for a weight <= 0, samples or fake_steps < 1."""

    def __init__(self, *args, real: DenoiserFn, fake: nn.Module, weight: float = 1.0, samples: int = 4,
                 warmup_steps: int = 0, lr: float = 1e-4, fake_steps: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        if not weight > 0 or not isinstance(samples, int) or samples < 1 or not isinstance(fake_steps, int) \
                or fake_steps < 1:
            raise ValueError(f"weight must be > 0, samples and fake_steps integers >= 1, got {weight!r}, "
                             f"{samples!r}, {fake_steps!r}")
        self.real, self.fake = real, fake.eval().requires_grad_(True)
        self.weight, self.samples, self.warmup_steps = float(weight), samples, int(warmup_steps)
        self.fake_steps, self.fake_updates, self._metrics = fake_steps, 0, {}
        self.opt = torch.optim.Adam([p for p in self.fake.parameters() if p.requires_grad], lr=lr)

    @classmethod
    def from_run_config(cls, args: tuple, distill, teacher: nn.Module) -> "DistributionMatchingTrajectoryObjective":
        """The objective a run config's ``distill`` section (openimagen.train.config.DistillSection) asks for:
        ``args`` the parent's positional arguments, ``teacher`` the teacher's Denoiser, guided at
        ``dm_guidance`` (default ``teacher_guidance``) as D_real and copied as the fake denoiser's start."""
        guidance = distill.teacher_guidance if distill.dm_guidance is None else distill.dm_guidance
        return cls(*args, real=ClassifierFreeGuidance(teacher, guidance), fake=copy.deepcopy(teacher),
                   weight=distill.dm_weight, samples=distill.dm_samples, warmup_steps=distill.dm_warmup_steps,
                   lr=distill.dm_lr, fake_steps=distill.dm_fake_steps)

    def fake_step(self, x: torch.Tensor, cond: Cond, generator: Generators) -> float:
        """One Adam step of the fake denoiser's loss (s^-2 + 1) |D_fake(x + s n, s) - x|^2 on the detached
        samples ``x`` (B, C, H, W), s from t ~ U[0, 1); returns the loss."""
        b, dev = x.shape[0], x.device
        sigma = self.schedule.noise_level(_rand(b, generator, dev)).float()
        x_s = x + append_dims(sigma, x.ndim) * randn(x.shape, generator, dev, x.dtype)
        err = (self.fake(x_s, sigma, cond).float() - x).pow(2).flatten(1).mean(1)
        loss = (err * (sigma.pow(-2) + 1)).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.fake_updates += 1
        return float(loss.detach())

    def __call__(self, denoiser, batch: TrainBatch, generator: Generators) -> torch.Tensor:
        loss = super().__call__(denoiser, batch, generator)                                   # (B,)
        m, b, dev, n = min(self.samples, batch.batch_size), batch.batch_size, batch.image.device, len(self.bank)
        k = (_rand(b, generator, "cpu")[:m] * n).long().clamp(max=n - 1)           # the student's starts
        cond = Cond(text=self.bank.text[k].to(dev, batch.text.dtype), mask=self.bank.mask[k].to(dev))
        training = torch.is_grad_enabled()                  # the fake denoiser learns (and counts) only in training
        warm = bool(self.warmup_steps) and self.fake_updates // self.fake_steps + training <= self.warmup_steps
        x = self.rollout(denoiser, k, torch.full((m,), self.steps), cond, batch.image.dtype,
                         grad=training and not warm)
        sub = _first(generator, m)
        if training:
            for _ in range(self.fake_steps):
                self._metrics.update(fake_loss=self.fake_step(x.detach(), cond, sub))
        if warm:
            self._metrics.update(dm=0.0)
            return loss
        lo, hi = T_RANGE
        sigma = self.schedule.noise_level(lo + (hi - lo) * _rand(m, sub, dev)).float()
        g = distribution_matching_grad(x, sigma, randn(x.shape, sub, dev, x.dtype), self.real, self.fake, cond)
        dm = 0.5 * (x - (x - g).detach()).pow(2).flatten(1).mean(1)                           # (m,)
        self._metrics.update(dm=float(dm.detach().mean()), dm_grad=float(g.abs().mean()))
        return torch.cat([loss[:m] + self.weight * dm, loss[m:]])

    def metrics(self) -> dict:
        """The bank's size and the last call's scalars: fake_loss, dm (the surrogate's value), dm_grad (mean |g|)."""
        return {**super().metrics(), **self._metrics}

    # --- checkpoints ---------------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict]:
        """(tensors, JSON) of the fake denoiser and its optimiser, for the trainer's checkpoint."""
        from openimagen.train.checkpoint import module_state

        tensors, meta = module_state(self.fake, self.opt, "fake")
        return tensors, {**meta, "fake_updates": self.fake_updates}

    def load_state(self, tensors: dict, meta: Optional[dict]) -> None:
        from openimagen.train.checkpoint import load_module_state

        load_module_state(self.fake, self.opt, "fake", tensors, meta or {})
        self.fake_updates = int((meta or {}).get("fake_updates", 0))
