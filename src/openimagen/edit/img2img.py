"""Image-to-image: SDEdit (Meng et al. 2022, "SDEdit: Guided image synthesis and editing with stochastic
differential equations", Sec. 3): noise the user's image to schedule time t0 = ``strength`` and solve the
reverse process from there with the text, x_{t0} = x_in + s(t0) n, n ~ N(0, I).

The cascade starts at the stage whose resolution equals the input's side (a 64 px image on the default cascade
edits the SR stage's output; its low-res input is the image downsampled as in training), or at the base stage
after resizing the input to the base resolution; the stages after it upsample as usual. Like diffusers'
img2img, a stage runs ``round(steps * strength)`` steps (at least 1) over [s(strength), 0], so the cost falls
with the strength. strength 0 returns the input (resized) at the first stage; strength 1 is exactly
text-to-image with the same request (the same noise draws, bit for bit).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional, Union

from openimagen.edit.inputs import (ImageInput, check_number, consistency_off_at, per_image, resize, run_from, square,
                                    to_tensor)
from openimagen.pipeline.pipeline import Pipeline, PipelineOutput
from openimagen.pipeline.request import GenerationRequest


def check_strength(strength) -> float:
    return check_number("strength", strength, 0.0, 1.0)


def start_stage(pipe: Pipeline, side: int) -> int:
    """The stage whose output side is ``side``; the base stage (0) when none is."""
    return pipe.resolutions.index(side) if side in pipe.resolutions else 0


def img2img(pipe: Pipeline, images: ImageInput, prompts: Union[str, GenerationRequest, None] = None, *,
            strength: float = 0.6, fit: str = "center_crop", callback: Optional[Callable] = None,
            **settings) -> PipelineOutput:
    """Edit ``images`` (PIL image(s), one for all prompts or one per prompt, or a (B, 3, H, W) tensor in [-1, 1])
    toward ``prompts`` (or a :class:`GenerationRequest`; keyword settings as for ``pipe(...)``). A non-square image
    is made square by ``fit``: ``center_crop`` or ``pad`` (see :mod:`openimagen.edit.inputs`).

    Returns a :class:`PipelineOutput` whose ``stages`` are the stages run (from the first) and whose ``edit``
    records ``{"mode": "img2img", "strength", "start_stage"}``. Raises :class:`InvalidArgumentError` for a bad
    strength, image or setting."""
    strength = check_strength(strength)
    request = prompts if isinstance(prompts, GenerationRequest) else GenerationRequest(prompts=prompts, **settings)
    x_in, _ = square(to_tensor(images), fit)
    first = start_stage(pipe, x_in.shape[-1])
    request = consistency_off_at(pipe, request, first)
    x_in = per_image(resize(x_in, pipe.resolutions[first]), request)              # (B, 3, R, R)

    def sample(i, stage, cond, generators, sampling, _lowres, callback):
        if i != first:
            return None                            # later stages upsample as in text-to-image
        init = x_in.to(stage.device)
        lowres = resize(init, stage.config.lowres_resolution) if stage.config.is_super_resolution else None
        if strength == 0:
            return init
        if strength == 1:                          # text-to-image's own path: the same draws, bit for bit
            return stage.sample(cond, generators, sampling, lowres=lowres, callback=callback,
                                batch_invariant=request.batch_invariant)
        steps = max(1, round(sampling.steps * strength))
        return stage.sample(cond, generators, replace(sampling, steps=steps), lowres=lowres, callback=callback,
                            t_max=strength, init=init, batch_invariant=request.batch_invariant)

    return run_from(pipe, request, first, sample, callback,
                    {"mode": "img2img", "strength": strength, "start_stage": first})
