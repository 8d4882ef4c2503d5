"""Classifier-free guidance (Ho & Salimans 2022) and Imagen's thresholding (Saharia et al. 2022, Sec. 2.3).

Both are wrappers around the denoiser contract, so every sampler gets them for free.

Guidance: x0_tilde = x0_u + w (x0_c - x0_u), i.e. Imagen's eps_tilde = w eps_c + (1 - w) eps_u carried
to x0 (the map eps -> x0 = x - s eps is affine, so the weights, summing to 1, carry over). Cond and uncond
run in ONE batched forward pass; w = 1 skips the unconditional half. The "uncond" branch is the learned null
text, or a negative prompt where the cond carries one (``Cond.unconditional``): guidance then moves toward
the prompt and away from the negative prompt.

Thresholding is applied to x0_hat in exactly one place (``Thresholded``):
  static:  clip x0_hat to [-1, 1];
  dynamic: s = percentile p of |x0_hat| per sample; if s > 1, clip to [-s, s] and divide by s.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from openimagen.diffusion.cond import Cond
from openimagen.diffusion.denoiser import DenoiserFn, append_dims, as_batch_sigma
from openimagen.errors import InvalidArgumentError, check_choice


def guidance_branches(denoiser: DenoiserFn, x: torch.Tensor, sigma, cond: Cond) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0_c, x0_u), each (B, C, H, W): the conditional and the unconditional (or negative-prompt) estimates of
    classifier-free guidance, from ONE batched forward pass of 2B."""
    b = x.shape[0]
    s = as_batch_sigma(sigma, x)
    both = Cond.cat([cond.conditional(), cond.unconditional()])
    x0 = denoiser(torch.cat([x, x]), torch.cat([s, s]), both)   # (2B, C, H, W)
    return x0[:b], x0[b:]


class ClassifierFreeGuidance:
    def __init__(self, denoiser: DenoiserFn, scale: float):
        if not scale >= 0:
            raise InvalidArgumentError(f"guidance must be >= 0, got {scale}")
        self.denoiser, self.scale = denoiser, float(scale)

    def __call__(self, x: torch.Tensor, sigma, cond: Cond) -> torch.Tensor:
        if self.scale == 1.0:
            return self.denoiser(x, sigma, cond)
        x0_c, x0_u = guidance_branches(self.denoiser, x, sigma, cond)
        return x0_u + self.scale * (x0_c - x0_u)


class EmbeddedGuidance:
    """Guidance of a guidance-distilled student (Meng et al. 2023, Sec. 3.1): ONE forward pass with the weight w
    as the network's input (``Cond.guidance``), in place of the teacher's cond + uncond pair. With negative
    prompts the student runs at w = 1 (its conditional estimate) in both branches and classifier-free guidance
    combines them as for a teacher, since the student never saw negative prompts in distillation."""

    def __init__(self, denoiser: DenoiserFn, scale: float):
        if not scale >= 0:
            raise InvalidArgumentError(f"guidance must be >= 0, got {scale}")
        self.denoiser, self.scale = denoiser, float(scale)

    def __call__(self, x: torch.Tensor, sigma, cond: Cond) -> torch.Tensor:
        if cond.neg_text is not None:
            return ClassifierFreeGuidance(EmbeddedGuidance(self.denoiser, 1.0), self.scale)(x, sigma, cond)
        w = torch.full((x.shape[0],), self.scale, dtype=torch.float32, device=x.device)
        return self.denoiser(x, sigma, replace(cond, guidance=w))


def static_threshold(x0: torch.Tensor) -> torch.Tensor:
    return x0.clamp(-1.0, 1.0)


def dynamic_threshold(x0: torch.Tensor, percentile: float = 0.995) -> torch.Tensor:
    """Imagen's dynamic thresholding: per-sample s = quantile(|x0|, p), s >= 1; clip to [-s, s], divide by s."""
    if not 0.0 < percentile <= 1.0:
        raise InvalidArgumentError(f"threshold percentile must be in (0, 1], got {percentile}")
    s = torch.quantile(x0.detach().flatten(1).abs().float(), percentile, dim=1).clamp(min=1.0)  # (B,)
    s = append_dims(s.to(x0.dtype), x0.ndim)
    return torch.maximum(torch.minimum(x0, s), -s) / s


THRESHOLDS = ("none", "static", "dynamic")


class Thresholded:
    def __init__(self, denoiser: DenoiserFn, mode: str = "dynamic", percentile: float = 0.995):
        self.denoiser, self.mode, self.percentile = denoiser, check_choice("threshold", mode, THRESHOLDS), percentile

    def __call__(self, x: torch.Tensor, sigma, cond: Cond) -> torch.Tensor:
        x0 = self.denoiser(x, sigma, cond)
        if self.mode == "static":
            return static_threshold(x0)
        if self.mode == "dynamic":
            return dynamic_threshold(x0, self.percentile)
        return x0


def guided(denoiser: DenoiserFn, guidance: float = 1.0, threshold: str = "dynamic",
           percentile: float = 0.995, embedded: bool = False) -> DenoiserFn:
    """The denoiser a sampler should run: guidance first (``embedded``: a guidance-distilled student's single
    pass, :class:`EmbeddedGuidance`), then thresholding of the guided x0."""
    inner = EmbeddedGuidance(denoiser, guidance) if embedded else ClassifierFreeGuidance(denoiser, guidance)
    return Thresholded(inner, threshold, percentile)
