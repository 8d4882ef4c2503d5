"""Restoration of a degraded user image (issue 13, point 4), built from the other edits, not a new network:

* ``denoise``, ``deblur``, ``jpeg``: the image is resized to an SR stage's low-res input with the antialiased
  filter of training (which averages much of the noise and block artefacts away) and that stage re-creates the
  detail, with its low-res input noise-augmented to ``aug_level`` (Imagen's noise conditioning augmentation,
  Saharia et al. 2022, Sec. 2.5: the stage was trained to treat a corrupted low-res input as noise of that level
  and not to copy it). This is :func:`openimagen.edit.upscale` at a higher default augmentation.
* ``scratches``: thin bright or dark strokes are found as pixels far from their 3x3 median (> ``threshold`` of
  the [-1, 1] range on any channel, grown by one pixel), or taken from a given ``mask``, and repainted with
  :func:`openimagen.edit.inpaint` (every stage; the other pixels come back exactly).

The result has the last stage's resolution (``upscale``) or the input's size (``scratches``).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from openimagen.edit.inputs import ImageInput, to_tensor
from openimagen.errors import InvalidArgumentError
from openimagen.pipeline.pipeline import Pipeline, PipelineOutput

KINDS = ("denoise", "deblur", "jpeg", "scratches")


def median3(x: torch.Tensor) -> torch.Tensor:
    """3x3 median filter of (B, C, H, W), edges replicated."""
    patches = F.unfold(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3)               # (B, C*9, H*W)
    b, c, h, w = x.shape
    return patches.view(b, c, 9, h * w).median(dim=2).values.view(b, c, h, w)


def scratch_mask(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """(B, 1, H, W) in {0, 1}: 1 where a pixel differs from its 3x3 median by more than ``threshold`` (in [-1, 1]
    units) on any channel, grown by one pixel."""
    far = ((x - median3(x)).abs() > threshold).any(dim=1, keepdim=True).float()
    return F.max_pool2d(far, 3, stride=1, padding=1)


DEFAULT_AUG_LEVEL = 0.3


def restore(pipe: Pipeline, images: ImageInput, kind: str, prompts="", *, mask=None, threshold: float = 0.5,
            callback: Optional[Callable] = None, **settings) -> PipelineOutput:
    """Restore ``images`` (PIL image(s) or a (B, 3, H, W) tensor in [-1, 1]) degraded by ``kind`` (one of
    :data:`KINDS`; module docstring). ``prompts`` describe the content ("" by default: unconditional), or are a
    :class:`GenerationRequest`; ``aug_level`` (a request setting) defaults to :data:`DEFAULT_AUG_LEVEL` here.
    ``out.edit = {"mode": "restore", "kind", ...}``. Raises InvalidArgumentError for an unknown kind, a pipeline
    without a super-resolution stage (denoise, deblur, jpeg) or a bad setting."""
    if kind not in KINDS:
        raise InvalidArgumentError(f"restore kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "scratches":
        from openimagen.edit.inpaint import inpaint

        x = to_tensor(images)
        m = scratch_mask(x, threshold) if mask is None else mask
        out = inpaint(pipe, x, m, prompts, callback=callback, **settings)
        out.edit = {**out.edit, "mode": "restore", "kind": kind}
        return out
    if len(pipe.stages) < 2:
        raise InvalidArgumentError("restoring noise, blur or JPEG artefacts needs a model with a super-resolution "
                                   "stage")
    from openimagen.edit.upscale import upscale
    from openimagen.pipeline.request import GenerationRequest

    if isinstance(prompts, GenerationRequest):
        request = prompts if prompts.aug_level is not None else \
            GenerationRequest.model_validate({**prompts.model_dump(), "aug_level": DEFAULT_AUG_LEVEL})
    else:
        request = GenerationRequest(prompts=prompts, **{"aug_level": DEFAULT_AUG_LEVEL, **settings})
    out = upscale(pipe, images, request, callback=callback)
    out.edit = {**out.edit, "mode": "restore", "kind": kind}
    return out
