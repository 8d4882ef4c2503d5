"""Restoration of a degraded user image (issue 13, point 4), built from the cascade's stages as denoisers, not a
new network. The image is restored at its own resolution by the stage that makes that resolution (the first stage
whose side is at least the image's; the image is resized to it), and the stages after it upsample as usual:

* ``denoise``: a photo with Gaussian noise of level s is already a point of the diffusion's forward process at
  noise level s (x_s = x0 + s n, the denoiser contract's VE form), so it is the sampler's start at s, with no noise
  added (Kadkhodaie & Simoncelli 2021 and DDRM, Kawar et al. 2022, use a denoiser the same way). s is estimated
  per image (:func:`estimate_noise_level`) or given as ``noise_level``; images of a batch with less noise than the
  batch's largest get the difference added, so all start at one level. A stored image's noise was clipped to the
  valid range, which biases near-white and near-black pixels toward grey; the restoring stage's output is mapped
  back through the inverse of the clipped mean (Foi 2009; :mod:`openimagen.edit.clipped_noise`) at each image's
  noise level (``debias_clipping``, on by default).
* ``deblur``, ``jpeg``: SDEdit (Meng et al. 2022) from the image at a small noise level (``START_LEVELS``: 0.05 and
  0.1, or ``noise_level``): the noise drowns the ringing and block edges and the stage's estimates replace them
  with what its training images look like; a small level keeps the content.
* ``scratches``: thin bright or dark strokes are found as pixels far from their 3x3 median (by more than
  ``scratch_threshold``, 0.3 of the [-1, 1] range, on any channel; grown by one pixel), or taken from a given
  ``mask``; they are filled with the 3x3 median, then repainted from ``START_LEVELS["scratches"]`` with the other pixels imposed on every estimate
  (inpainting's :class:`~openimagen.edit.inpaint.KnownRegion`); after the last stage the unmasked pixels are pasted
  back, so they come back exactly at the input's size.

A super-resolution stage restoring at its resolution sees the image downsampled to its low-res input (with that
input noise-augmented to ``aug_level``, default 0.3: Imagen's noise conditioning augmentation, Saharia et al. 2022,
Sec. 2.5). The result has the last stage's resolution, except ``scratches``, which returns the input's size.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from openimagen.edit.clipped_noise import debias_clipped
from openimagen.edit.inputs import (ImageInput, check_number, consistency_off_at, paste_original, per_image, resize,
                                    run_from, square, to_tensor)
from openimagen.errors import InvalidArgumentError
from openimagen.pipeline.pipeline import Pipeline, PipelineOutput
from openimagen.pipeline.request import GenerationRequest

KINDS = ("denoise", "deblur", "jpeg", "scratches")
DEFAULT_AUG_LEVEL = 0.3
DEFAULT_SCRATCH_THRESHOLD = 0.3                 # scratches: distance from the 3x3 median, in [-1, 1] units
START_LEVELS = {"deblur": 0.05, "jpeg": 0.1, "scratches": 0.1}   # VE noise levels, in [-1, 1] image units
MIN_NOISE_LEVEL = 0.02                          # denoise's start on an image with no measurable noise
MAX_NOISE_LEVEL = 2.0


def median3(x: torch.Tensor) -> torch.Tensor:
    """3x3 median filter of (B, C, H, W), edges replicated."""
    patches = F.unfold(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3)               # (B, C*9, H*W)
    b, c, h, w = x.shape
    return patches.view(b, c, 9, h * w).median(dim=2).values.view(b, c, h, w)


def scratch_mask(x: torch.Tensor, threshold: float = 0.3) -> torch.Tensor:
    """(B, 1, H, W) in {0, 1}: 1 where a pixel differs from its 3x3 median by more than ``threshold`` (in [-1, 1]
    units) on any channel, grown by one pixel."""
    far = ((x - median3(x)).abs() > threshold).any(dim=1, keepdim=True).float()
    return F.max_pool2d(far, 3, stride=1, padding=1)


def estimate_noise_level(x: torch.Tensor) -> torch.Tensor:
    """Gaussian noise level of each image: (B, C, H, W) in [-1, 1] -> (B,) float32, in the same units (the VE
    sigma of the denoiser contract; noise of std 0.1 on a [0, 1] scale is 0.2 here).

    Donoho & Johnstone (1994): the finest diagonal Haar wavelet coefficients (a - b - c + d) / 2 of the 2x2 blocks
    are mostly noise, with the noise's standard deviation, and their median absolute value / 0.6745 is a robust
    estimate of it (scikit-image's ``estimate_sigma`` does the same with a Daubechies wavelet). Blocks with a
    clipped pixel (|x| >= 0.999, where noise was cut off at black or white) are left out while 16 or more others
    remain. Smooth images give about 0; edges and texture add a little."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    if h == 0 or w == 0:
        return torch.zeros(x.shape[0])
    x = x[..., :h, :w].float()
    a, b, c, d = x[..., 0::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    hh = ((a - b - c + d) / 2).abs().flatten(1)                                   # (B, C*h*w/4)
    unclipped = (torch.stack([a, b, c, d]).abs() < 0.999).all(0).flatten(1)
    levels = []
    for coeffs, ok in zip(hh, unclipped):
        levels.append((coeffs[ok] if ok.sum() >= 16 else coeffs).median() / 0.6745)
    return torch.stack(levels).float()


def restore_stage(pipe: Pipeline, side: int, last: int) -> int:
    """The stage that restores an image of ``side`` pixels: the first of stages 0..``last`` whose resolution is at
    least ``side`` (the last one when none is)."""
    return next((i for i in range(last + 1) if pipe.resolutions[i] >= side), last)


def restore(pipe: Pipeline, images: ImageInput, kind: str, prompts="", *, mask=None,
            scratch_threshold: Optional[float] = None,
            noise_level: Optional[float] = None, fit: str = "center_crop", debias_clipping: bool = True,
            callback: Optional[Callable] = None, **settings) -> PipelineOutput:
    """Restore ``images`` (PIL image(s) or a (B, 3, H, W) tensor in [-1, 1]) degraded by ``kind`` (one of
    :data:`KINDS`; module docstring). ``prompts`` describe the content ("" by default: unconditional), or are a
    :class:`GenerationRequest`; ``aug_level`` (a request setting) defaults to :data:`DEFAULT_AUG_LEVEL` here.
    ``noise_level``: the VE noise level (in [-1, 1] image units, 0..2) the restoring stage starts from (denoise: the
    image's own noise, estimated when None). ``fit`` makes a non-square image square for denoise, deblur and jpeg
    (``center_crop`` or ``pad``); scratches always pad and map back. ``debias_clipping`` (denoise only): undo the
    bias of noise clipped at black and white (module docstring) at each image's estimated level, or ``noise_level``.

    Returns a :class:`PipelineOutput` with ``edit = {"mode": "restore", "kind", "start_stage", "noise_level"}``.
    Raises InvalidArgumentError for an unknown kind, a bad scratch_threshold, noise level, mask, image or setting,
    and for a mask or scratch_threshold given with a kind other than scratches."""
    if kind not in KINDS:
        raise InvalidArgumentError(f"restore kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(debias_clipping, bool):
        raise InvalidArgumentError(f"debias_clipping must be true or false, got {debias_clipping!r}")
    if kind != "scratches" and (mask is not None or scratch_threshold is not None):
        name = "mask" if mask is not None else "scratch_threshold"
        raise InvalidArgumentError(f"{name} is only used by kind scratches, not {kind}")
    scratch_threshold = check_number("scratch_threshold", DEFAULT_SCRATCH_THRESHOLD if scratch_threshold is None
                                     else scratch_threshold, 0.0, 2.0)
    if noise_level is not None:
        noise_level = check_number("noise_level", noise_level, 0.0, MAX_NOISE_LEVEL)
    if isinstance(prompts, GenerationRequest):
        request = prompts if prompts.aug_level is not None else \
            GenerationRequest.model_validate({**prompts.model_dump(), "aug_level": DEFAULT_AUG_LEVEL})
    else:
        request = GenerationRequest(prompts=prompts, **{"aug_level": DEFAULT_AUG_LEVEL, **settings})
    original = to_tensor(images)                                                  # (b, 3, H, W)
    height, width = original.shape[-2:]
    x_sq, box = square(original, "pad" if kind == "scratches" else fit)
    last = len(pipe.resolve(request)) - 1
    first = restore_stage(pipe, x_sq.shape[-1], last)
    request = consistency_off_at(pipe, request, first)
    side = pipe.resolutions[first]
    x = per_image(resize(x_sq, side), request)                                    # (B, 3, side, side)

    repaint = None
    if kind == "scratches":
        from openimagen.edit.inpaint import to_mask

        found = scratch_mask(original, scratch_threshold) if mask is None else to_mask(mask, height, width)
        m_sq, _ = square(found, "pad", fill=0.0)                                  # the padding is kept (cut off)
        repaint = per_image((resize(m_sq, side) > 0.01).float().expand(original.shape[0], -1, -1, -1), request)
        init = repaint * median3(x) + (1 - repaint) * x
    else:
        init = x
    if kind == "denoise":
        own = estimate_noise_level(x) if noise_level is None else torch.full((x.shape[0],), noise_level)
        start = max(float(own.max()), MIN_NOISE_LEVEL)
        clipped_at = None
        if debias_clipping:       # the level the noise had where it was clipped: at the image's own size
            clipped_at = own if noise_level is not None else per_image(estimate_noise_level(x_sq), request)
    else:
        own = clipped_at = None
        start = START_LEVELS[kind] if noise_level is None else noise_level

    def sample(i, stage, cond, generators, sampling, _lowres, cb):
        if i != first:
            return None                            # later stages upsample as in text-to-image
        lo, hi = stage.schedule.noise_level_range
        level = min(max(start, lo * 1.0001), hi)
        t_max = min(float(stage.schedule.t_from_noise_level(torch.tensor(level, dtype=torch.float64))), 1.0)
        steps = max(1, round(sampling.steps * t_max))
        x_init = init.to(stage.device)
        lowres = resize(x_init, stage.config.lowres_resolution) if stage.config.is_super_resolution else None
        wrap = None
        if repaint is not None:
            from openimagen.edit.inpaint import KnownRegion

            keep = (1 - repaint).to(stage.device)
            wrap = lambda den: KnownRegion(den, x.to(stage.device), keep)          # noqa: E731
        out = stage.sample(cond, generators, replace(sampling, steps=steps), lowres=lowres, callback=cb,
                           t_max=t_max, init=x_init, batch_invariant=request.batch_invariant, wrap=wrap,
                           init_noise=None if own is None else own.clamp(max=level))
        if repaint is not None:
            out = repaint.to(out.device) * out + (1 - repaint.to(out.device)) * x.to(out.device)
        if clipped_at is not None:
            out = debias_clipped(out, clipped_at.to(out.device).view(-1, 1, 1, 1))
        return out

    out = run_from(pipe, request, first, sample, callback, {
        "mode": "restore", "kind": kind, "start_stage": first, "noise_level": round(start, 4),
        **({"debias_clipping": clipped_at is not None} if kind == "denoise" else {}),
        **({"repainted_fraction": round(float(repaint.mean()), 4)} if repaint is not None else {})})
    if kind == "scratches" and (first != last or (height, width) != (side, side)):
        # back to the user's size, every pixel not marked as a scratch exactly the original's
        paste_original(pipe, out, original, found <= 0.5, box, x_sq.shape[-1], request)
    return out
