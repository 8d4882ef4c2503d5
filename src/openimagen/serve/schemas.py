"""The HTTP API's request and response bodies: the OpenAI images API's shapes, plus openimagen's own fields.

``POST /v1/images/generations`` takes what a client of the OpenAI images API sends (``prompt``, ``n``, ``size``,
``response_format``, ``model``, ``user``, ``quality``, ``style``; the last four are accepted and ignored but
``model``, which must name the loaded model when given) and openimagen's optional fields: ``seed``,
``negative_prompt`` and the per-stage sampling settings (one value for every stage, or a list with one per
stage). Their types and ranges are the ones :class:`~openimagen.pipeline.GenerationRequest` declares (the same
Annotated types), so the OpenAPI schema states them and a bad value is a 422 naming the field.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, StrictStr

from openimagen.pipeline.request import MAX_SEED, SamplingOverrides
from openimagen.validation import PlainNumber

MAX_PROMPTS = 8


class ImagesRequest(SamplingOverrides):
    """Body of ``POST /v1/images/generations`` (and of the streaming route)."""

    model_config = ConfigDict(extra="forbid", frozen=False, json_schema_extra={
        "examples": [{"prompt": "a red circle above a blue square", "n": 2, "response_format": "b64_json",
                      "seed": 0, "steps": [32, 16], "guidance": 3.0}]})

    prompt: Union[Annotated[StrictStr, Field(min_length=1)],
                  Annotated[list[Annotated[StrictStr, Field(min_length=1)]], Field(min_length=1,
                                                                                   max_length=MAX_PROMPTS)]] = Field(
        description="the text (or, an openimagen extension, a list of up to 8 texts)")
    n: Annotated[int, PlainNumber, Strict(), Field(ge=1)] = Field(1, description="images per prompt")
    size: Optional[StrictStr] = Field(None, description="'WxH' of a stage's output (e.g. '64x64'); smaller sizes "
                                                        "stop the cascade at that stage; default: the last stage's")
    response_format: Literal["b64_json", "url"] = "b64_json"
    model: Optional[StrictStr] = Field(None, description="must name the loaded model (GET /v1/models) if given")
    user: Optional[StrictStr] = Field(None, description="accepted for compatibility; not used")
    quality: Optional[StrictStr] = Field(None, description="accepted for compatibility; not used")
    style: Optional[StrictStr] = Field(None, description="accepted for compatibility; not used")
    # openimagen's own fields
    seed: Annotated[int, PlainNumber, Strict(), Field(ge=0, le=MAX_SEED)] = Field(
        0, description="seed of the first image; image k uses seed + k")
    negative_prompt: Optional[StrictStr] = Field(None, description="guide away from this text, for every prompt")
    batch_invariant: StrictBool = Field(False, description="bit-exact mode: the image's bits do not depend on the "
                                                           "batch the service runs it in (slower)")


class StreamRequest(ImagesRequest):
    """Body of ``POST /v1/images/generations/stream``: a generation request plus the preview period."""

    preview_every: Annotated[int, PlainNumber, Strict(), Field(ge=0, le=1000)] = Field(
        0, description="send the x0 estimate as PNGs every this many steps (0: no previews)")


class ImageData(BaseModel):
    b64_json: Optional[str] = None
    url: Optional[str] = None
    revised_prompt: Optional[str] = None
    seed: int


class ImagesResponse(BaseModel):
    """The OpenAI images API's response, plus ``openimagen``: model hash, resolved settings and timings."""

    created: int
    data: list[ImageData]
    openimagen: dict


class ErrorBody(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class ErrorResponse(BaseModel):
    """Every error, in the OpenAI API's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    error: ErrorBody
