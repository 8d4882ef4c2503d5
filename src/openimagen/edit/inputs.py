"""User images in, cascade tensors out; and the loop that runs a cascade from a given stage on.

Images are resized with the antialiased bilinear filter the SR stages saw at training time
(:func:`openimagen.train.step.downsample`), so a user's image looks like what a stage was trained on.

Any size and aspect ratio (the rule, :func:`square`): the stages are square, so a W x H image is made square
first, by ``fit``: ``"center_crop"`` keeps the central min(W, H) square (what the training data loader does by
default) and ``"pad"`` centres the image on a white max(W, H) square (the loader's ``pad`` policy; nothing is cut
off). Image-to-image and upscaling take either (default ``center_crop``); inpainting and outpainting always pad,
mark the padding as area to paint, and map the result back to the user's W x H (:func:`unsquare`), so every
unmasked pixel of the original comes back unchanged.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from openimagen.errors import InvalidArgumentError
from openimagen.pipeline.pipeline import Pipeline, PipelineOutput, to_pil
from openimagen.pipeline.request import GenerationRequest
from openimagen.samplers import generators_from_seeds

ImageInput = Union[Image.Image, torch.Tensor, Sequence[Image.Image]]


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, size, size), antialiased bilinear (as the SR stages' low-res inputs in training)."""
    if tuple(images.shape[-2:]) == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


FITS = ("center_crop", "pad")


def square(x: torch.Tensor, fit: str, fill: float = 1.0) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """(B, C, H, W) -> (B, C, S, S) by ``fit`` (module docstring) and the box (left, top, width, height) of the
    kept part in the square's pixels (pad: where the image sits; center_crop: the whole square). ``fill`` is the
    padding value (1.0: white in [-1, 1]; for a mask, 1 = paint it)."""
    if fit not in FITS:
        raise InvalidArgumentError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    h, w = x.shape[-2:]
    if h == w:
        return x, (0, 0, w, h)
    if fit == "center_crop":
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        return x[..., top:top + s, left:left + s], (0, 0, s, s)
    s = max(h, w)
    top, left = (s - h) // 2, (s - w) // 2
    out = x.new_full((*x.shape[:-2], s, s), fill)
    out[..., top:top + h, left:left + w] = x
    return out, (left, top, w, h)


def unsquare(x: torch.Tensor, box: tuple[int, int, int, int], padded_side: int) -> torch.Tensor:
    """Undo :func:`square` with ``pad``: (B, C, R, R) at a stage's resolution -> the image's (B, C, H, W), resized to
    the padded square's side (antialiased when shrinking) and cropped to ``box``."""
    left, top, w, h = box
    if x.shape[-1] != padded_side:
        x = F.interpolate(x, size=(padded_side, padded_side), mode="bilinear", antialias=True, align_corners=False)
    return x[..., top:top + h, left:left + w]


def to_tensor(images: ImageInput) -> torch.Tensor:
    """PIL image(s) (any mode, converted to RGB; all one size) or a (B, 3, H, W) float tensor in [-1, 1] ->
    (B, 3, H, W) float32 in [-1, 1]. :class:`InvalidArgumentError` for anything else."""
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise InvalidArgumentError(f"an image tensor must be float (B, 3, H, W) in [-1, 1], got "
                                       f"{images.dtype} {tuple(images.shape)}")
        if images.shape[0] == 0 or min(images.shape[-2:]) < 1:
            raise InvalidArgumentError(f"an image tensor needs at least one 1x1 image, got {tuple(images.shape)}")
        if not torch.isfinite(images).all() or images.abs().max() > 1 + 1e-6:
            raise InvalidArgumentError("an image tensor must be finite and in [-1, 1]")
        return images.float()
    items = [images] if isinstance(images, Image.Image) else list(images)
    if not items or not all(isinstance(im, Image.Image) for im in items):
        raise InvalidArgumentError("images must be PIL images or a (B, 3, H, W) tensor in [-1, 1]")
    sizes = {im.size for im in items}
    if len(sizes) > 1:
        raise InvalidArgumentError(f"the images must have one size, got {sorted(sizes)}")
    if min(items[0].size) < 1:
        raise InvalidArgumentError(f"an image must be at least 1x1 pixels, got {items[0].size[0]}x{items[0].size[1]}")
    arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in items])     # (B, H, W, 3)
    return torch.from_numpy(arr).permute(0, 3, 1, 2) / 127.5 - 1


def check_number(name: str, value, lo: float, hi: float) -> float:
    """``value`` as a float if it is a number (not a bool, not NaN) in [lo, hi]; else a one-line
    :class:`InvalidArgumentError` naming ``name`` and the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not lo <= value <= hi:
        raise InvalidArgumentError(f"{name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def paste_original(pipe: Pipeline, out: PipelineOutput, original: torch.Tensor, keep: torch.Tensor,
                   box: tuple[int, int, int, int], padded_side: int, request: GenerationRequest) -> None:
    """Set ``out.images`` to the last stage's output mapped back to the user's (b, 3, H, W) ``original`` with
    :func:`unsquare`, and every pixel where ``keep`` ((1 or b, 1, H, W) bool) holds the original's, exactly; the
    watermark, when on, is added after that paste."""
    y = unsquare(out.stages[-1], box, padded_side)
    keep = per_image(keep.expand(original.shape[0], -1, -1, -1), request)
    out.images = pipe.mark(to_pil(torch.where(keep, per_image(original, request), y)))


def consistency_off_at(pipe: Pipeline, request: GenerationRequest, stage: int) -> GenerationRequest:
    """``request`` with low-res consistency off at ``stage`` (the other stages at their defaults) unless the caller
    set ``lowres_consistency``: where the low-res input is the user's image being edited or restored, projecting
    onto it would keep what the edit changes (its colours, its noise). Set in the request, so the resolved settings
    returned with the images say what ran."""
    if request.lowres_consistency is not None:
        return request
    values = tuple(False if i == stage else st.config.sampling.lowres_consistency for i, st in enumerate(pipe.stages))
    return request.model_copy(update={"lowres_consistency": values})


def per_image(x: torch.Tensor, request: GenerationRequest) -> torch.Tensor:
    """One input per prompt (or one for all) -> one per image of ``request`` (prompts x num_images_per_prompt)."""
    n = len(request.prompts)
    if x.shape[0] not in (1, n):
        raise InvalidArgumentError(f"give one image, or one per prompt ({n}); got {x.shape[0]}")
    x = x.expand(n, *x.shape[1:]) if x.shape[0] == 1 else x
    return x.repeat_interleave(request.num_images_per_prompt, dim=0)


def run_from(pipe: Pipeline, request: GenerationRequest, first: int, sample: Callable,
             callback: Optional[Callable], edit: dict) -> PipelineOutput:
    """Run stages ``first``.. of ``request`` (its settings resolved on ``pipe``) through
    :meth:`Pipeline.run_stages`: ``sample(i, stage, cond, generators, sampling, lowres, callback)`` makes stage
    ``i``'s output, or returns None for the plain text-to-image sampling (upsampling ``lowres``)."""
    settings = pipe.resolve(request)
    if first >= len(settings):
        raise InvalidArgumentError(f"stop_at_stage {len(settings) - 1} is before the first stage run ({first})")
    t0 = time.perf_counter()
    cond = pipe.encode(request.image_prompts, request.image_negative_prompts, request.batch_invariant)
    generators = generators_from_seeds(request.seeds)
    loras = pipe.loras.resolve(request.loras)
    t_text = time.perf_counter() - t0
    xs, timings = pipe.run_stages(cond, generators, settings, request.batch_invariant, callback, first,
                                  lambda i, stage, sampling, lowres, cb: sample(i, stage, cond, generators, sampling,
                                                                               lowres, cb), loras=loras)
    timings = {"text": t_text, **timings, "total": time.perf_counter() - t0}
    return PipelineOutput(images=pipe.mark(to_pil(xs[-1])), stages=xs, timings=timings, seeds=request.seeds,
                          request=request, settings=settings, model_hash=pipe.model_hash, edit=edit,
                          loras=pipe.loras.describe(loras), variant=pipe.variant)
