"""Trajectory distillation plus an adversarial term on the student's own samples (issue 15, point 1).

Every loss of :mod:`openimagen.train.trajectory` regresses the student onto the teacher's trajectory one example
at a time; where the first step from pure noise cannot resolve which of several layouts the teacher would draw, a
regression pulls it toward their mean, and the Fréchet distance of the student's samples stays above the
teacher's. Adversarial Diffusion Distillation (Sauer et al. 2023, Sec. 3) adds a discriminator's loss on the
student's samples to the distillation loss; here the samples are the student's whole N-step DDIM rollouts from
the bank's starting noise (gradients through every step, thresholded as it samples) and the real images are the
teacher's samples in the bank (its trajectories' last states), so the discriminator judges the student's
distribution against the teacher's:

    generator   L_traj (per example) + weight * mean_patches(-D(x_S))     (on the first ``samples`` examples)
    D           mean relu(1 - D(x_T)) + mean relu(1 + D(x_S)) + r1_gamma / 2 E||grad D(x_T)||^2

with x_S the student's samples, x_T teacher samples drawn from the bank independently of them, D an unconditional
spectrally normalised patch discriminator (:class:`openimagen.train.adversarial.PatchDiscriminator` without the
low-res input). Each call first takes one Adam step of D on the detached samples, then returns the generator's
loss with D frozen; for the first ``warmup_steps`` calls only D learns. D and its optimiser go through the
trainer's checkpoints (``objective.safetensors``). One process only: D's gradients are not synchronised across
ranks.
"""
from __future__ import annotations

import torch

from openimagen.diffusion.cond import Cond
from openimagen.train.adversarial import DiscriminatorState, PatchDiscriminator
from openimagen.train.objective import TrainBatch
from openimagen.train.trajectory import TrajectoryDistillationObjective
from openimagen.train.step import _rand
from openimagen.samplers.noise import Generators


class AdversarialTrajectoryObjective(DiscriminatorState, TrajectoryDistillationObjective):
    """:class:`TrajectoryDistillationObjective` plus a discriminator's loss on the student's N-step samples (module
    docstring). ``weight`` > 0: the adversarial term's factor; ``samples`` >= 1: student rollouts per call (the
    first ``samples`` examples of the batch carry the term); ``warmup_steps``: calls in which only D learns;
    ``r1_gamma``, ``lr``, ``channels``: D's R1 penalty, Adam learning rate (betas 0, 0.99) and width. The other
    arguments are the parent's. Raises ValueError for a weight <= 0 or samples < 1."""

    def __init__(self, *args, weight: float = 0.05, samples: int = 4, warmup_steps: int = 0, r1_gamma: float = 1.0,
                 lr: float = 2e-4, channels: int = 32, device=None, **kwargs):
        super().__init__(*args, **kwargs)
        if not weight > 0 or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"weight must be > 0 and samples an integer >= 1, got {weight!r}, {samples!r}")
        self.weight, self.samples, self.warmup_steps = float(weight), samples, int(warmup_steps)
        self.r1_gamma, self.d_steps, self._metrics = float(r1_gamma), 0, {}
        self.disc = PatchDiscriminator(channels, lowres_cond=False).to(device)
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=lr, betas=(0.0, 0.99))

    def __call__(self, denoiser, batch: TrainBatch, generator: Generators) -> torch.Tensor:
        loss = super().__call__(denoiser, batch, generator)                                   # (B,)
        m, dev = min(self.samples, batch.batch_size), batch.image.device
        n = len(self.bank)
        b = batch.batch_size                                   # one draw per example's generator, the first m kept
        k = (_rand(b, generator, "cpu")[:m] * n).long().clamp(max=n - 1)                      # the student's starts
        k_real = (_rand(b, generator, "cpu")[:m] * n).long().clamp(max=n - 1)                 # other teacher samples
        cond = Cond(text=self.bank.text[k].to(dev, batch.text.dtype), mask=self.bank.mask[k].to(dev))
        training = torch.is_grad_enabled()                     # D steps (and counts) only when training
        warm = bool(self.warmup_steps) and self.d_steps + training <= self.warmup_steps       # D alone this call
        fake = self.rollout(denoiser, k, torch.full((m,), self.steps), cond, batch.image.dtype,
                            grad=training and not warm)            # the graph only where the term will use it
        real = self.bank.x[k_real, self.steps].to(dev, fake.dtype)
        if training:
            self.discriminator_step(real, fake.detach(), None)
            self.d_steps += 1
        if warm:
            self._metrics.update(g_adv=0.0)
            return loss
        self.disc.requires_grad_(False)
        try:
            g_adv = -self.disc(fake).flatten(1).mean(1)                                       # (m,)
        finally:
            self.disc.requires_grad_(True)
        self._metrics.update(g_adv=float(g_adv.detach().mean()))
        return torch.cat([loss[:m] + self.weight * g_adv, loss[m:]])

    def metrics(self) -> dict:
        """The bank's size and the last call's D scalars (d_loss, d_real, d_fake, g_adv)."""
        return {**TrajectoryDistillationObjective.metrics(self), **DiscriminatorState.metrics(self)}
