"""The denoising objective of every cascade stage, as an :class:`~openimagen.train.objective.Objective`.

Base stages learn p(x | text); super-resolution stages learn p(x | text, lowres) where lowres is the
antialiased downsample of the real target, noise-augmented to a random level that the network sees
(Imagen Sec. 2.5: "noise conditioning augmentation"). Text is dropped with probability ``text_drop_prob``
so the same network is also the unconditional model of classifier-free guidance (Ho & Salimans 2022).
The loss itself, per parameterization and weighting, is :func:`~openimagen.diffusion.loss.diffusion_loss`.

``generator`` is one ``torch.Generator`` for the whole batch, or a sequence of them, one per example. The draws,
in this order: text drop u (B,); SR only: t_aug (B,) and the augmentation noise (B, C, r, r); then the noise
level t (B,) and the noise (B, C, R, R). With one generator per example, example k's draws come from its own
generator only, so a batch split across micro-batches or data-parallel ranks draws exactly the randomness of
the unsplit batch.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import Denoiser, append_dims
from openimagen.diffusion.loss import denoising_terms
from openimagen.samplers.noise import Generators, randn
from openimagen.train.objective import TrainBatch

if TYPE_CHECKING:
    from openimagen.diffusion.schedules import Schedule
    from openimagen.pipeline import StageConfig
    from openimagen.train.config import RunConfig


def _rand(b: int, generator: Generators, device) -> torch.Tensor:
    """U[0, 1) of shape (b,), one draw per example's generator when given a sequence."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.rand(b, generator=generator, device=device)
    if len(generator) != b:
        raise ValueError(f"got {len(generator)} generators for a batch of {b}")
    return torch.cat([torch.rand(1, generator=g, device=g.device) for g in generator]).to(device)


def downsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear downsample to ``size`` (the SR stage's low-res input at training time)."""
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def crop_stage_config(stage_config: StageConfig, crop_size: int | None) -> StageConfig:
    """The stage config an SR stage trains on with random crops: resolution c, lowres c * r / R (Imagen 1024px)."""
    if crop_size is None:
        return stage_config
    lowres = crop_size * stage_config.lowres_resolution // stage_config.resolution
    return replace(stage_config, resolution=crop_size, lowres_resolution=lowres)


@dataclass(frozen=True)
class DiffusionObjective:
    """The denoising loss of one cascade stage: ``objective(denoiser, batch, generator) -> (B,)``."""

    stage_config: StageConfig     # the config trained on (an SR stage on crops: the crop's sides)
    schedule: Schedule            # noise levels: t ~ U[0, 1) -> sigma(t), also the augmentation levels
    text_drop_prob: float = 0.1   # classifier-free guidance: drop the text this often
    weighting: str = "native"     # native | min_snr | snr+1 (see openimagen.diffusion.loss)
    min_snr_gamma: float = 5.0    # gamma of "min_snr"
    aug_max: float = 0.5          # SR: augmentation level t_aug ~ U[0, aug_max) in schedule time

    @classmethod
    def from_run_config(cls, cfg: RunConfig, stage_config: StageConfig, schedule: Schedule) -> "DiffusionObjective":
        """The objective of a training run: ``cfg.train``'s settings, on crops if ``cfg.data.crop_size``."""
        t = cfg.train
        return cls(crop_stage_config(stage_config, cfg.data.crop_size), schedule, t.text_drop_prob, t.weighting,
                   t.min_snr_gamma, t.aug_max)

    def __call__(self, denoiser: Denoiser, batch: TrainBatch, generator: Generators) -> torch.Tensor:
        """Per-example loss (B,) of ``denoiser`` on ``batch`` (draw order in the module docstring)."""
        return self.terms(denoiser, batch, generator)[0]

    def terms(self, denoiser: Denoiser, batch: TrainBatch, generator: Generators):
        """(loss (B,), x0_hat (B, C, R, R) differentiable, cond): ``__call__`` with the estimate and the
        conditioning it was made from, for objectives that add a loss on the estimate (adversarial SR)."""
        x0, b, dev = batch.image, batch.batch_size, batch.image.device           # x0: (B, C, R, R)
        drop = _rand(b, generator, dev) < self.text_drop_prob                    # (B,) bool
        lowres, aug_sigma = self._augmented_lowres(x0, generator)                # (B, C, r, r), (B,) or None
        cond = Cond(text=batch.text, mask=batch.mask, drop=drop, lowres=lowres, aug_sigma=aug_sigma)
        sigma = self.schedule.noise_level(_rand(b, generator, dev))              # (B,)
        noise = randn(x0.shape, generator, dev, x0.dtype)                        # (B, C, R, R)
        loss, x0_hat = denoising_terms(denoiser, x0, cond, generator, self.schedule, self.weighting,
                                       self.min_snr_gamma, sigma=sigma, noise=noise)
        return loss, x0_hat, cond

    def _augmented_lowres(self, x0: torch.Tensor, generator: Generators):
        """SR stages: (downsample(x0) + sigma_aug n, sigma_aug), t_aug ~ U[0, aug_max) (Imagen Sec. 2.5).

        Shapes (B, C, r, r) and (B,); (None, None) for a base stage.
        """
        if not self.stage_config.is_super_resolution:
            return None, None
        lowres = downsample(x0, self.stage_config.lowres_resolution)             # (B, C, r, r)
        aug_sigma = self.schedule.noise_level(_rand(x0.shape[0], generator, x0.device) * self.aug_max)  # (B,)
        noise = randn(lowres.shape, generator, x0.device, lowres.dtype)
        return lowres + append_dims(aug_sigma, lowres.ndim) * noise, aug_sigma


def stage_loss(stage, images: torch.Tensor, text: torch.Tensor, mask: torch.Tensor,
               generator: Generators, *, text_drop_prob: float = 0.1, weighting: str = "native",
               min_snr_gamma: float = 5.0, aug_max: float = 0.5) -> torch.Tensor:
    """Per-example loss (B,) of ``stage`` (a ``Stage``: config, schedule, denoiser) on ``images`` (B, C, R, R).

    A shorthand for scripts that hold a Stage: :class:`DiffusionObjective` on the stage's own config.
    """
    objective = DiffusionObjective(stage.config, stage.schedule, text_drop_prob, weighting, min_snr_gamma, aug_max)
    return objective(stage.denoiser, TrainBatch(images, text, mask), generator)
