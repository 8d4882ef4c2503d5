"""One training objective for every cascade stage.

Base stages learn p(x | text); super-resolution stages learn p(x | text, lowres) where lowres is the
antialiased downsample of the real target, noise-augmented to a random level that the network sees
(Imagen Sec. 2.5: "noise conditioning augmentation"). Text is dropped with probability ``text_drop_prob``
so the same network is also the unconditional model of classifier-free guidance (Ho & Salimans 2022).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import append_dims
from openimagen.diffusion.loss import diffusion_loss


def downsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear downsample to ``size`` (the SR stage's low-res input at training time)."""
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def stage_loss(stage, images: torch.Tensor, text: torch.Tensor, mask: torch.Tensor,
               generator: torch.Generator | None, *, text_drop_prob: float = 0.1, weighting: str = "native",
               min_snr_gamma: float = 5.0, aug_max: float = 0.5) -> torch.Tensor:
    """Per-example loss of ``stage`` (a ``Stage``) on ``images`` (B, C, R, R) in [-1, 1] at the stage's resolution.

    ``aug_max``: SR training draws the augmentation level t_aug ~ U[0, aug_max] in schedule time.
    """
    b, dev = images.shape[0], images.device
    drop = torch.rand(b, generator=generator, device=dev) < text_drop_prob
    lowres = aug_sigma = None
    if stage.config.is_super_resolution:
        lowres = downsample(images, stage.config.lowres_resolution)
        t_aug = torch.rand(b, generator=generator, device=dev) * aug_max
        aug_sigma = stage.schedule.noise_level(t_aug)
        noise = torch.randn(lowres.shape, generator=generator, device=dev, dtype=lowres.dtype)
        lowres = lowres + append_dims(aug_sigma, lowres.ndim) * noise
    cond = Cond(text=text, mask=mask, drop=drop, lowres=lowres, aug_sigma=aug_sigma)
    return diffusion_loss(stage.denoiser, images, cond, generator, stage.schedule, weighting, min_snr_gamma)
