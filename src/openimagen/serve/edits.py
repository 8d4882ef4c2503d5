"""``POST /v1/images/edits``: edit, repaint, extend or upscale an uploaded image (multipart form, as the OpenAI
images API's edits route), through the same queue, limits, auth, policy and watermark as generation.

Form fields: ``image`` (file: PNG, JPEG, WebP; alpha composited on white), ``mask`` (optional file: white =
repaint, or, as OpenAI sends it, an image with alpha whose fully transparent pixels = repaint), ``prompt``
(default "": unconditional), ``mode`` (``inpaint`` when a mask is sent, else ``img2img``; also ``outpaint``,
``upscale`` and ``restore``), ``n``, ``response_format``, and openimagen's ``strength`` (img2img), ``border``
(outpaint), ``kind`` (restore: denoise, deblur, jpeg or scratches; a mask, if sent, marks the scratches),
``noise_level`` (restore: the noise level it starts from, 0..2 in [-1, 1] image units; denoise estimates it),
``resample_jumps`` and ``jump_length`` (inpaint: RePaint's resampling, at most 10 times the steps),
``fit`` (img2img/upscale/restore: ``center_crop`` or ``pad``), ``seed``, ``steps``, ``guidance``, ``sampler``,
``adapter``/``adapter_scale``. The response is the generation route's: images with their PNG records (which
include the edit), seeds, resolved settings. An edit runs alone (it is never batched with other requests).
"""
from __future__ import annotations

import io
import time
from typing import Literal, Optional

from fastapi import Depends, File, Form, Request, Response, UploadFile
from PIL import Image, UnidentifiedImageError

from openimagen.errors import InvalidArgumentError
from openimagen.pipeline import GenerationRequest

MODES = ("img2img", "inpaint", "outpaint", "upscale", "restore")
RESTORE_KINDS = ("denoise", "deblur", "jpeg", "scratches")
MAX_SIDE = 4096        # uploaded images larger than this on a side are refused (memory)


def decode_upload(data: bytes, field: str) -> Image.Image:
    """An uploaded file as a PIL image (not yet converted); ApiError 422 naming ``field`` if it is not one."""
    from openimagen.serve.requests import ApiError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
        raise ApiError(422, f"{field} is not a readable image (PNG, JPEG or WebP): {type(e).__name__}",
                       param=field) from None
    if max(image.size) > MAX_SIDE:
        raise ApiError(422, f"{field} is {image.size[0]}x{image.size[1]}; at most {MAX_SIDE} pixels a side",
                       param=field)
    return image


def to_mask(image: Image.Image) -> Image.Image:
    """A mask upload as grey, white = repaint: OpenAI's convention (transparent = edit) when it has alpha."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = image.convert("RGBA").getchannel("A")
        return alpha.point(lambda a: 255 if a == 0 else 0)
    return image.convert("L")


def add_edit_route(app, svc) -> None:
    from openimagen.data.preprocess import composite_on_white
    from openimagen.serve.app import ERRORS, await_job
    from openimagen.serve.requests import ApiError, _param, check_limits, request_loras

    limited = Depends(svc.rate_limited)

    @app.post("/v1/images/edits", responses=ERRORS,
              summary="Edit an uploaded image: img2img, inpaint (mask), outpaint or upscale (multipart form)")
    async def edits(request: Request, image: UploadFile = File(..., description="the image to edit"),
                    mask: Optional[UploadFile] = File(None, description="white (or transparent) = repaint"),
                    prompt: str = Form("", max_length=svc.config.max_prompt_chars),
                    mode: Optional[Literal[MODES]] = Form(None), n: int = Form(1, ge=1, le=svc.config.max_images),
                    strength: float = Form(0.6, ge=0, le=1), border: int = Form(8, ge=1),
                    fit: Literal["center_crop", "pad"] = Form("center_crop"), seed: int = Form(0, ge=0),
                    steps: Optional[int] = Form(None, ge=1, le=svc.config.max_steps),
                    guidance: Optional[float] = Form(None, ge=0, le=100), sampler: Optional[str] = Form(None),
                    adapter: Optional[str] = Form(None), adapter_scale: float = Form(1.0, ge=-10, le=10),
                    kind: Optional[Literal[RESTORE_KINDS]] = Form(None),
                    noise_level: Optional[float] = Form(None, ge=0, le=2),
                    resample_jumps: int = Form(1, ge=1, le=10), jump_length: int = Form(10, ge=1, le=1000),
                    response_format: Literal["b64_json", "url"] = Form("b64_json"),
                    key: Optional[str] = limited):
        mode = mode or ("inpaint" if mask is not None else "img2img")
        if mode == "inpaint" and mask is None:
            raise svc.reject("invalid", ApiError(422, "mode inpaint needs a mask file", param="mask"))
        if mode == "restore" and kind is None:
            raise svc.reject("invalid", ApiError(422, f"mode restore needs kind: {', '.join(RESTORE_KINDS)}",
                                                 param="kind"))
        picture = composite_on_white(decode_upload(await image.read(), "image"))
        repaint = to_mask(decode_upload(await mask.read(), "mask")) if mask is not None else None
        try:
            loras = request_loras(svc.pipe, adapter, adapter_scale)
        except ApiError as e:
            raise svc.reject("invalid", e) from None
        settings = {k: v for k, v in (("steps", steps), ("guidance", guidance), ("sampler", sampler))
                    if v is not None}
        try:
            req = GenerationRequest(prompts=(prompt,), num_images_per_prompt=n, seed=seed,
                                    loras=loras, **settings)
            check_limits(svc.pipe.resolve(req), svc.config)
        except InvalidArgumentError as e:
            raise svc.reject("invalid", ApiError(422, str(e), param=_param(str(e)))) from None
        pipe = svc.pipe
        run = {"img2img": lambda cb: pipe.img2img(picture, req, strength=strength, fit=fit, callback=cb),
               "inpaint": lambda cb: pipe.inpaint(picture, repaint, req, callback=cb, resample_jumps=resample_jumps,
                                                  jump_length=jump_length),
               "restore": lambda cb: pipe.restore(picture, kind, req, mask=repaint, noise_level=noise_level,
                                                  fit=fit, callback=cb),
               "outpaint": lambda cb: pipe.outpaint(picture, req, border=border, callback=cb),
               "upscale": lambda cb: pipe.upscale(picture, req, fit=fit, callback=cb)}[mode]
        out = await await_job(svc, svc.enqueue(req, run=run), request)
        if isinstance(out, Response):
            return out
        return {"created": int(time.time()), "data": svc.image_items(out, request, response_format),
                "openimagen": {**svc.summary(out), "edit": out.edit}}
