"""Adversarial refinement of a super-resolution stage: the diffusion loss plus a discriminator's (issue 13, point 5).

A generator and a discriminator, as in the GAN literature, here on top of the denoising objective so that a
stage stays a diffusion stage (any sampler, any step count) while its x0 estimates become sharp enough to
sample in a few steps:

    generator loss   L_diff(x0_hat) + weight * mean_patches(-D(x0_hat | lowres))     (per example, shape (B,))
    discriminator    mean relu(1 - D(x0 | lowres)) + mean relu(1 + D(x0_hat | lowres)) + r1_gamma / 2 E||grad D(x0)||^2

x0_hat is the stage's estimate c_skip x + c_out F at the noise level the diffusion loss drew (EDM's D(x; sigma)),
``lowres`` the clean, antialiased low-res image the stage was conditioned on (before noise augmentation).

With ``judged="samples"`` the adversarial term judges, instead, the image the stage *samples*: ``sample_steps``
deterministic DDIM steps (x' = D + (s'/s)(x - D), gradients through every step) from the bicubic-upsampled
low-res image noised to schedule time ``start`` (the stage's ``sr_strength``), as Adversarial Diffusion
Distillation (Sauer et al. 2023, Sec. 3) puts its adversarial loss on the student's samples. The one-step
estimates at random noise levels are too close to real images for a discriminator to separate them, while what
costs the SR stage its quality (a coloured speckle along edges, docs/EVALUATION.md) appears along that sampling
path. The
hinge loss (Lim & Ye 2017), spectral normalisation (Miyato et al. 2018) and the R1 penalty (Mescheder et al.
2018) are the usual stabilisers; the loss mix follows Adversarial Diffusion Distillation (Sauer et al. 2023:
adversarial loss on the denoiser's x0 estimate) and Real-ESRGAN (Wang et al. 2021: a pixel loss plus a
patch discriminator's for super-resolution).

The discriminator, its optimiser and its step live on this objective, never in the trainer (see
:mod:`openimagen.train.objective`): each call first updates D on the detached estimate (one Adam step), then
returns the generator's loss with D frozen. ``state()`` / ``load_state()`` carry D and its optimiser through the
trainer's checkpoints (``objective.safetensors``), so a run resumes exactly; ``metrics()`` feeds the log.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.consistency import LowresConsistency
from openimagen.diffusion.denoiser import Denoiser
from openimagen.diffusion.schedules import sampling_sigmas
from openimagen.pipeline.stage import upsampled_lowres
from openimagen.samplers.ddim import sample_ddim
from openimagen.samplers.noise import Generators, randn
from openimagen.train.objective import TrainBatch
from openimagen.train.step import DiffusionObjective, downsample


class PatchDiscriminator(nn.Module):
    """Conditional patch discriminator (PatchGAN, Isola et al. 2017) with spectral norm on every convolution.

    Input: an image (B, C, R, R) in [-1, 1] and its low-res condition (B, C, r, r), upsampled bilinearly to R and
    concatenated (``lowres_cond=False``: the image alone, ``lowres`` None). Output: one logit per patch,
    (B, 1, R/8, R/8), float32. R must be a multiple of 8.
    """

    def __init__(self, channels: int = 32, image_channels: int = 3, spectral: bool = True, lowres_cond: bool = True):
        super().__init__()
        c, sn = channels, (spectral_norm if spectral else (lambda m: m))
        self.lowres_cond = lowres_cond
        layers, width = [], (2 if lowres_cond else 1) * image_channels
        for out in (c, 2 * c, 4 * c):
            layers += [sn(nn.Conv2d(width, out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            width = out
        layers.append(sn(nn.Conv2d(width, 1, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, lowres: Optional[torch.Tensor] = None) -> torch.Tensor:
        if not self.lowres_cond:
            return self.net(image).float()
        up = F.interpolate(lowres, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return self.net(torch.cat([image, up.to(image.dtype)], dim=1)).float()


class DiscriminatorState:
    """What an objective with a discriminator shares: ``self.disc`` (a :class:`PatchDiscriminator`), ``self.opt``
    (its Adam), ``self.r1_gamma``, ``self.d_steps`` and ``self._metrics``, set by the subclass; one D step, the
    log's scalars, and D's state through the trainer's checkpoints."""

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor, lowres: torch.Tensor) -> float:
        """One Adam step of D on hinge loss + R1 penalty; returns its loss. ``fake`` must be detached."""
        real = real.detach().requires_grad_(self.r1_gamma > 0)
        d_real, d_fake = self.disc(real, lowres), self.disc(fake, lowres)
        loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        if self.r1_gamma > 0:
            (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
            loss = loss + self.r1_gamma / 2 * grad.pow(2).flatten(1).sum(1).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self._metrics.update(d_loss=float(loss.detach()), d_real=float(d_real.detach().mean()),
                             d_fake=float(d_fake.detach().mean()))
        return float(loss.detach())

    def metrics(self) -> dict:
        """The last call's scalars: d_loss, d_real, d_fake (mean logits), g_adv, diffusion."""
        return dict(self._metrics)

    # --- checkpoints ---------------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict]:
        """(tensors, JSON) of the discriminator and its optimiser, name-keyed, for the trainer's checkpoint."""
        from openimagen.train.checkpoint import module_state

        tensors, meta = module_state(self.disc, self.opt, "disc")
        return tensors, {**meta, "d_steps": self.d_steps}

    def load_state(self, tensors: dict, meta: Optional[dict]) -> None:
        from openimagen.train.checkpoint import load_module_state

        load_module_state(self.disc, self.opt, "disc", tensors, meta or {})
        self.d_steps = int((meta or {}).get("d_steps", 0))


class AdversarialObjective(DiscriminatorState):
    """:class:`DiffusionObjective` plus a discriminator's loss on the x0 estimate (module docstring).

    ``weight``: the adversarial term's factor in the generator loss; ``r1_gamma``: the R1 penalty's;
    ``lr``: the discriminator's Adam learning rate (betas 0, 0.99 as in StyleGAN2). ``judged``, ``sample_steps``
    and ``start``: what D judges (module docstring). ``warmup_steps``: D's first updates, in which the returned
    loss is the diffusion loss alone (D learns against the unchanged stage first).
    """

    def __init__(self, diffusion: DiffusionObjective, *, weight: float = 0.1, r1_gamma: float = 1.0,
                 lr: float = 2e-4, channels: int = 32, spectral: bool = True, device=None,
                 judged: str = "estimate", sample_steps: int = 2, start: float = 1.0, warmup_steps: int = 0,
                 consistency: bool = False):
        if not diffusion.stage_config.is_super_resolution:
            raise ValueError("AdversarialObjective refines super-resolution stages")
        if judged not in ("estimate", "samples") or not isinstance(sample_steps, int) or sample_steps < 1 \
                or not 0 < start <= 1:
            raise ValueError(f"judged must be 'estimate' or 'samples', sample_steps >= 1 and start in (0, 1], got "
                             f"{judged!r}, {sample_steps!r}, {start!r}")
        self.diffusion, self.weight, self.r1_gamma = diffusion, float(weight), float(r1_gamma)
        self.judged, self.sample_steps, self.start = judged, sample_steps, float(start)
        self.consistency = bool(consistency)
        self.warmup_steps, self.d_steps = int(warmup_steps), 0     # D's updates so far (checkpointed)
        self.disc = PatchDiscriminator(channels, spectral=spectral).to(device)
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=lr, betas=(0.0, 0.99))
        self._metrics: dict = {}

    @classmethod
    def from_run_config(cls, cfg, stage_config, schedule, device=None) -> "AdversarialObjective":
        a = cfg.adversarial
        return cls(DiffusionObjective.from_run_config(cfg, stage_config, schedule), weight=a.weight,
                   r1_gamma=a.r1_gamma, lr=a.lr, channels=a.channels, spectral=a.spectral_norm, device=device,
                   judged=a.judged, sample_steps=a.sample_steps, start=stage_config.sampling.sr_strength,
                   warmup_steps=a.warmup_steps, consistency=stage_config.sampling.lowres_consistency)

    def __call__(self, denoiser: Denoiser, batch: TrainBatch, generator: Generators) -> torch.Tensor:
        loss, x0_hat, cond = self.diffusion.terms(denoiser, batch, generator)
        lowres = downsample(batch.image, self.diffusion.stage_config.lowres_resolution)    # (B, C, r, r), clean
        judged = x0_hat if self.judged == "estimate" else self.sample(denoiser, lowres, cond, generator)
        if torch.is_grad_enabled():
            self.discriminator_step(batch.image, judged.detach(), lowres)
            self.d_steps += 1
        if self.warmup_steps and self.d_steps <= self.warmup_steps:     # D's warm-up: the generator's term is off
            self._metrics.update(g_adv=0.0, diffusion=float(loss.detach().mean()))
            return loss
        self.disc.requires_grad_(False)
        try:
            g_adv = -self.disc(judged, lowres).flatten(1).mean(1)                          # (B,)
        finally:
            self.disc.requires_grad_(True)
        self._metrics.update(g_adv=float(g_adv.detach().mean()), diffusion=float(loss.detach().mean()))
        return loss + self.weight * g_adv

    def sample(self, denoiser: Denoiser, lowres: torch.Tensor, cond: Cond, generator: Generators) -> torch.Tensor:
        """The stage's DDIM sample (B, C, R, R), differentiable, from ``lowres`` (B, C, r, r) bicubic-upsampled
        and noised to schedule time ``start``: ``sample_steps`` steps on the "time" grid, text never dropped
        (the SR stage samples unguided), the low-res conditioning (with its augmentation) that of ``cond``; with
        ``consistency`` (the stage's ``sampling.lowres_consistency``) every estimate is projected onto ``lowres``
        as the stage samples (:mod:`openimagen.diffusion.consistency`), so D judges the detail the stage adds."""
        init = upsampled_lowres(lowres, self.diffusion.stage_config.resolution)
        sigmas = sampling_sigmas(self.diffusion.schedule, self.sample_steps, "time", t_max=self.start)
        x = init + float(sigmas[0]) * randn(init.shape, generator, init.device, init.dtype)
        den = LowresConsistency(denoiser, lowres) if self.consistency else denoiser
        return sample_ddim(den, x, sigmas, cond=replace(cond, drop=torch.zeros_like(cond.drop)))
