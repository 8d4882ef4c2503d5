"""The training loss as a standalone function: ``(denoiser, x0, cond, generator) -> per-example loss``.

Following Karras et al. 2022 (eq. 8) and k-diffusion, the loss is an MSE on the network output F
against its effective target (x0 - c_skip x) / c_out, so every parameterization trains on its own
native target (eps-MSE for eps, v-MSE for v, EDM's for edm) without cancellation at low noise.
Since x0_hat - x0 = c_out (F - target), other weightings of the x0 error are a factor c_out^2 w(snr) away:

    "native"   w = 1 on the F-target MSE (Ho et al. 2020 "simple" loss for eps; v-MSE for v)
    "min_snr"  w(snr) = min(snr, gamma) on the x0 error (Hang et al. 2023, "Min-SNR weighting")
    "snr+1"    w(snr) = snr + 1 on the x0 error (equal to v-MSE for any parameterization)

Noise levels are drawn by sampling t ~ U[0, 1] and mapping through the schedule (continuous-time
training, Kingma et al. 2021); ``t_range`` restricts it.
"""
from __future__ import annotations

import torch

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import Denoiser, append_dims
from openimagen.diffusion.schedules import Schedule
from openimagen.errors import check_choice

WEIGHTINGS = ("native", "min_snr", "snr+1")


def sample_noise_levels(schedule: Schedule, batch: int, generator: torch.Generator | None,
                        device=None) -> torch.Tensor:
    t = torch.rand(batch, generator=generator, device=device)
    return schedule.noise_level(t)


def diffusion_loss(denoiser: Denoiser, x0: torch.Tensor, cond: Cond, generator: torch.Generator | None,
                   schedule: Schedule, weighting: str = "native", min_snr_gamma: float = 5.0,
                   sigma: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Per-example weighted denoising loss, shape (B,). ``sigma``/``noise`` may be given (tests)."""
    return denoising_terms(denoiser, x0, cond, generator, schedule, weighting, min_snr_gamma, sigma, noise)[0]


def denoising_terms(denoiser: Denoiser, x0: torch.Tensor, cond: Cond, generator: torch.Generator | None,
                    schedule: Schedule, weighting: str = "native", min_snr_gamma: float = 5.0,
                    sigma: torch.Tensor | None = None, noise: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`diffusion_loss` and the denoiser's estimate it was computed from: (loss (B,), x0_hat (B, C, H, W)),
    x0_hat = c_skip x + c_out F in the input's dtype, differentiable (for losses on the estimate itself, e.g. an
    adversarial one)."""
    check_choice("loss weighting", weighting, WEIGHTINGS)
    b = x0.shape[0]
    if sigma is None:
        sigma = sample_noise_levels(schedule, b, generator, x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    s = append_dims(sigma, x0.ndim)                                   # (B, 1, 1, 1)
    x = x0 + s * noise                                                # VE-form noisy sample
    f, c = denoiser.net_output(x, sigma, cond)
    x0_hat = denoiser.x0_estimate(x, f, c, cond)
    target = denoiser.f_target(x0, x, c, cond)
    mse = (f.float() - target.float()).pow(2).flatten(1).mean(1)      # (B,)
    if weighting == "native":
        return mse, x0_hat
    snr = sigma.float().pow(-2)
    w = torch.clamp(snr, max=min_snr_gamma) if weighting == "min_snr" else snr + 1
    return mse * w * c.c_out.reshape(-1).float().pow(2), x0_hat
