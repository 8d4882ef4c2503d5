"""One training objective for every cascade stage.

Base stages learn p(x | text); super-resolution stages learn p(x | text, lowres) where lowres is the
antialiased downsample of the real target, noise-augmented to a random level that the network sees
(Imagen Sec. 2.5: "noise conditioning augmentation"). Text is dropped with probability ``text_drop_prob``
so the same network is also the unconditional model of classifier-free guidance (Ho & Salimans 2022).

``generator`` is one ``torch.Generator`` for the whole batch, or a sequence of them, one per example. With one
per example, example k's text drop, augmentation level, noise level and noises come from its own generator only,
so a batch split across micro-batches or data-parallel ranks draws exactly the randomness of the unsplit batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import append_dims
from openimagen.diffusion.loss import diffusion_loss
from openimagen.samplers.noise import Generators, randn


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


def stage_loss(stage, images: torch.Tensor, text: torch.Tensor, mask: torch.Tensor,
               generator: Generators, *, text_drop_prob: float = 0.1, weighting: str = "native",
               min_snr_gamma: float = 5.0, aug_max: float = 0.5) -> torch.Tensor:
    """Per-example loss of ``stage`` (a ``Stage``) on ``images`` (B, C, R, R) in [-1, 1] at the stage's resolution.

    ``aug_max``: SR training draws the augmentation level t_aug ~ U[0, aug_max] in schedule time.
    """
    b, dev = images.shape[0], images.device
    drop = _rand(b, generator, dev) < text_drop_prob
    lowres = aug_sigma = None
    if stage.config.is_super_resolution:
        lowres = downsample(images, stage.config.lowres_resolution)
        t_aug = _rand(b, generator, dev) * aug_max
        aug_sigma = stage.schedule.noise_level(t_aug)
        noise = randn(lowres.shape, generator, dev, lowres.dtype)
        lowres = lowres + append_dims(aug_sigma, lowres.ndim) * noise
    cond = Cond(text=text, mask=mask, drop=drop, lowres=lowres, aug_sigma=aug_sigma)
    sigma = noise = None
    if not (generator is None or isinstance(generator, torch.Generator)):  # per example: draw what the loss would
        sigma = stage.schedule.noise_level(_rand(b, generator, dev))
        noise = randn(images.shape, generator, dev, images.dtype)
    return diffusion_loss(stage.denoiser, images, cond, generator, stage.schedule, weighting, min_snr_gamma,
                          sigma=sigma, noise=noise)
