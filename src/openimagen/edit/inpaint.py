"""Inpainting and outpainting with a mask, on every stage of the cascade.

Each stage samples its own resolution with the known pixels imposed on the denoiser's estimate: a wrapper
returns x0_hat' = keep * x_known + (1 - keep) * x0_hat, so the sampler (any of them, unchanged) carries the
known region along its noise levels and draws only the masked one. This is the replacement idea of RePaint
(Lugmayr et al. 2022, Eq. 8: known pixels noised to each step's level), applied to the x0 estimate, which for
the exponential-integrator samplers here puts the known pixels at exactly their noise level's mixture of
x_known and the sampler's noise. RePaint's resampling jumps are an option (``resample_jumps``, ``jump_length``:
:mod:`openimagen.samplers.resampling`), at ``resample_jumps`` times the cost. ``keep`` is the mask resized to
the stage with the antialiased filter, so it is soft at the seam: the new content is blended into the old over a
pixel or two at the base resolution. After the last stage the known pixels are pasted back with the hard mask,
so the result outside the mask equals the input exactly (at the last stage's resolution). An image of another
size or aspect ratio is padded to a square (the padding is painted too), and ``out.images`` are mapped back to
the user's W x H with the original's unmasked pixels pasted in exactly (:mod:`openimagen.edit.inputs`); the
invisible watermark, when on, is added after that paste.

Masks: white (1) = repaint, black (0) = keep; a PIL image (any mode, converted to grey, > 127 = repaint), a
(B, 1, H, W) or (H, W) tensor in [0, 1], or a rectangle ``(left, top, right, bottom)`` in the image's pixels.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from openimagen.edit.inputs import ImageInput, paste_original, per_image, resize, run_from, square, to_tensor
from openimagen.errors import InvalidArgumentError
from openimagen.pipeline.pipeline import Pipeline, PipelineOutput
from openimagen.pipeline.request import GenerationRequest
from openimagen.samplers.resampling import check_resampling

MaskInput = Union[Image.Image, torch.Tensor, Sequence[int]]


class KnownRegion:
    """Denoiser wrapper: the known pixels replace the estimate where ``keep`` is 1. known (B, 3, R, R) in
    [-1, 1]; keep (B, 1, R, R) in [0, 1]."""

    def __init__(self, denoiser, known: torch.Tensor, keep: torch.Tensor):
        self.denoiser, self.known, self.keep = denoiser, known, keep

    def __call__(self, x: torch.Tensor, sigma, cond) -> torch.Tensor:
        x0 = self.denoiser(x, sigma, cond)
        return self.keep * self.known + (1 - self.keep) * x0


def _check_aspect(mh: int, mw: int, height: int, width: int) -> None:
    """A mask must have the image's aspect ratio (it is resized with the image); else one line naming both."""
    if abs(mw * height - mh * width) > 0.02 * width * height:
        raise InvalidArgumentError(f"the mask is {mw}x{mh} but the image is {width}x{height}: give a mask of the "
                                   f"image's size (or at least its aspect ratio)")


def to_mask(mask: MaskInput, height: int, width: int) -> torch.Tensor:
    """(B or 1, 1, H, W) float32 in [0, 1], 1 = repaint, for an image of ``height`` x ``width``; a mask of another
    size with the same aspect ratio is resized to it."""
    if isinstance(mask, Image.Image):
        _check_aspect(mask.size[1], mask.size[0], height, width)
        grey = np.asarray(mask.convert("L").resize((width, height), Image.NEAREST), dtype=np.float32)
        return torch.from_numpy((grey > 127).astype(np.float32))[None, None]
    if isinstance(mask, torch.Tensor):
        m = mask.float()
        m = m[None, None] if m.ndim == 2 else m
        if m.ndim != 4 or m.shape[1] != 1 or not torch.isfinite(m).all() or m.min() < 0 or m.max() > 1:
            raise InvalidArgumentError(f"a mask tensor must be (H, W) or (B, 1, H, W) in [0, 1], got "
                                       f"{tuple(mask.shape)}")
        _check_aspect(m.shape[-2], m.shape[-1], height, width)
        if tuple(m.shape[-2:]) == (height, width):
            return m
        return F.interpolate(m, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    if isinstance(mask, (tuple, list)) and len(mask) == 4 and all(isinstance(v, int) for v in mask):
        left, top, right, bottom = mask
        if not (0 <= left < right <= width and 0 <= top < bottom <= height):
            raise InvalidArgumentError(f"the mask rectangle (left, top, right, bottom) must lie inside the "
                                       f"{width}x{height} image with left < right and top < bottom, got {tuple(mask)}")
        m = torch.zeros(1, 1, height, width)
        m[..., top:bottom, left:right] = 1
        return m
    raise InvalidArgumentError("mask must be a PIL image (white = repaint), a tensor in [0, 1] or a rectangle "
                               "(left, top, right, bottom) of ints")


def inpaint(pipe: Pipeline, images: ImageInput, mask: MaskInput, prompts=None, *,
            callback: Optional[Callable] = None, resample_jumps: int = 1, jump_length: int = 10,
            **settings) -> PipelineOutput:
    """Repaint the masked part of ``images`` (one for all prompts or one per prompt) with ``prompts`` (or a
    :class:`GenerationRequest`; keyword settings as for ``pipe(...)``); every stage runs, each inpainting at its
    resolution. ``resample_jumps`` > 1 samples every ``jump_length`` steps that many times (RePaint).
    ``out.edit = {"mode": "inpaint", "masked_fraction", "resample_jumps", "jump_length"}``."""
    check_resampling(jump_length, resample_jumps)                                 # before any work
    resample = (jump_length, resample_jumps) if resample_jumps > 1 else None
    request = prompts if isinstance(prompts, GenerationRequest) else GenerationRequest(prompts=prompts, **settings)
    original = to_tensor(images)                                                  # (b, 3, H, W)
    height, width = original.shape[-2:]
    repaint_original = to_mask(mask, height, width)                               # (1 or b, 1, H, W)
    last = len(pipe.resolve(request)) - 1
    side = pipe.resolutions[last]
    x_sq, box = square(original, "pad")
    m_sq, _ = square(repaint_original, "pad", fill=1.0)                           # the padding is painted
    x_in, repaint = per_image(resize(x_sq, side), request), per_image(resize(m_sq, side), request)

    def wrap_for(stage):
        r = stage.config.resolution
        known, keep = resize(x_in, r).to(stage.device), (1 - resize(repaint, r)).clamp(0, 1).to(stage.device)
        return lambda den: KnownRegion(den, known, keep)

    hard = (repaint > 0.5).float()

    def sample(i, stage, cond, generators, sampling, lowres, cb):
        x = stage.sample(cond, generators, sampling, lowres=lowres, callback=cb,
                         batch_invariant=request.batch_invariant, wrap=wrap_for(stage), resample=resample)
        if i < last:
            return x
        h = hard.to(x.device)
        return h * x + (1 - h) * x_in.to(x.device)      # the last stage: paste the known pixels back, exactly

    out = run_from(pipe, request, 0, sample, callback,
                   {"mode": "inpaint", "masked_fraction": round(float(repaint_original.mean()), 4),
                    **({"resample_jumps": resample_jumps, "jump_length": jump_length} if resample else {})})
    if (height, width) != (side, side):                 # back to the user's size, the original pasted in exactly
        paste_original(pipe, out, original, repaint_original <= 0.5, box, x_sq.shape[-1], request)
    return out


def outpaint(pipe: Pipeline, images: ImageInput, prompts=None, *, border: int = 8,
             callback: Optional[Callable] = None, **settings) -> PipelineOutput:
    """Extend ``images`` past their edges: each is shrunk into the centre of a canvas of the last stage's size,
    leaving ``border`` pixels on every side, which are painted from the prompt (a masked inpainting). A non-square
    image keeps its aspect ratio: the rest of the canvas is painted too."""
    request = prompts if isinstance(prompts, GenerationRequest) else GenerationRequest(prompts=prompts, **settings)
    side = pipe.resolutions[len(pipe.resolve(request)) - 1]
    if not (isinstance(border, int) and 0 < border < side // 2):
        raise InvalidArgumentError(f"border must be an int in 1..{side // 2 - 1} pixels, got {border!r}")
    x = to_tensor(images)
    x_sq, (left, top, w, h) = square(x, "pad")
    inner = resize(x_sq, side - 2 * border)
    canvas = torch.zeros(inner.shape[0], 3, side, side)
    canvas[..., border:side - border, border:side - border] = inner
    f = (side - 2 * border) / x_sq.shape[-1]                 # the image's own box inside the canvas: kept
    x0, y0 = border + round(left * f), border + round(top * f)
    mask = torch.ones(1, 1, side, side)
    mask[..., y0:y0 + round(h * f), x0:x0 + round(w * f)] = 0
    out = inpaint(pipe, canvas, mask, request, callback=callback)
    out.edit = {"mode": "outpaint", "border": border}
    return out
