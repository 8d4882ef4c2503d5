"""The HTTP API's request and response bodies: the OpenAI images API's shapes, plus openimagen's own fields.

``POST /v1/images/generations`` takes what a client of the OpenAI images API sends (``prompt``, ``n``, ``size``,
``response_format``, ``model``, ``user``, ``quality``, ``style``; the last four are accepted and ignored but
``model``, which must name the loaded model when given) and openimagen's optional fields: ``seed``,
``negative_prompt``, the per-stage sampling settings (one value for every stage, or a list with one per
stage) and ``adapter``/``adapter_scale`` (one of the LoRA adapters the service loaded). Their types and ranges are the ones :class:`~openimagen.pipeline.GenerationRequest` declares (the same
Annotated types), so the OpenAPI schema states them and a bad value is a 422 naming the field.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Sequence, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StrictBool, StrictStr, create_model

from openimagen.lora.config import Scale as LoraScale
from openimagen.pipeline.request import MAX_SEED, SamplingOverrides
from openimagen.validation import PlainNumber

# JSON Schema counts 1.0 as an integer: the HTTP API takes integral floats where it takes ints (1.5 stays an error)
JsonInt = BeforeValidator(lambda v: int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 2**53 else v)
MAX_JSON_SEED = 2**53 - 1      # the largest integer every JSON client (JavaScript included) holds exactly


class ImagesRequest(SamplingOverrides):
    """Body of ``POST /v1/images/generations`` (and of the streaming route)."""

    model_config = ConfigDict(extra="forbid", frozen=False, json_schema_extra={
        "examples": [{"prompt": "a red circle above a blue square", "n": 1, "response_format": "b64_json",
                      "seed": 0, "guidance": 3.0}]})

    prompt: Annotated[StrictStr, Field(min_length=1)] = Field(description="the text to draw")
    n: Annotated[int, Field(ge=1), PlainNumber, Strict()] = Field(1, description="number of images")
    size: Optional[StrictStr] = Field(None, description="'WxH' of a stage's output (e.g. '64x64'); smaller sizes "
                                                        "stop the cascade at that stage; default: the last stage's")
    response_format: Literal["b64_json", "url"] = "b64_json"
    model: Optional[StrictStr] = Field(None, description="must name the loaded model (GET /v1/models) if given")
    user: Optional[StrictStr] = Field(None, description="accepted for compatibility; not used")
    quality: Optional[StrictStr] = Field(None, description="accepted for compatibility; not used")
    style: Optional[StrictStr] = Field(None, description="accepted for compatibility; not used")
    # openimagen's own fields
    seed: Annotated[int, Field(ge=0, le=MAX_SEED), PlainNumber, Strict()] = Field(
        0, description="seed of the first image; image k uses seed + k")
    negative_prompt: Optional[StrictStr] = Field(None, description="guide away from this text, for every prompt")
    batch_invariant: StrictBool = Field(False, description="bit-exact mode: the image's bits do not depend on the "
                                                           "batch the service runs it in (slower)")
    adapter: Optional[StrictStr] = Field(None, description="a LoRA adapter the service loaded (GET /v1/models lists "
                                                           "them); default: none, the base model")
    adapter_scale: LoraScale = Field(1.0, description="the adapter's scale (1 = as trained, 0 = off)")


class StreamRequest(ImagesRequest):
    """Body of ``POST /v1/images/generations/stream``: a generation request plus the preview period."""

    preview_every: Annotated[int, Field(ge=0, le=1000), PlainNumber, JsonInt, Strict()] = Field(
        0, description="send the x0 estimate as PNGs every this many steps (0: no previews)")


def service_models(config, stages: int, sizes: list[str], adapters: Sequence[str] = ()) -> tuple[type, type]:
    """:class:`ImagesRequest` and :class:`StreamRequest` with this service's limits written into their schema (so
    ``/openapi.json`` states exactly what is accepted): ``n`` up to ``max_images``, prompts up to
    ``max_prompt_chars``, seeds exact in every JSON client (< 2**53), ``size`` one of the stages' sizes, ``model`` the loaded one, ``steps`` up to
    ``max_steps``, per-stage lists with exactly one value per stage, and ``adapter`` one of ``adapters``."""
    from openimagen.pipeline.config import (MAX_STEPS, AugLevel, Guidance, Percentile, SamplerName, SpacingName,
                                            SrStrength, ThresholdName, LowresConsistency)

    def per_stage(kind):
        return Optional[Union[kind, Annotated[tuple[kind, ...], Field(min_length=stages, max_length=stages)]]], None

    text = Annotated[StrictStr, Field(min_length=1, max_length=config.max_prompt_chars)]
    fields = {
        "prompt": (text, Field(description="the text to draw")),
        "n": (Annotated[int, Field(ge=1, le=config.max_images), PlainNumber, JsonInt, Strict()],
              Field(1, description="number of images")),
        "size": (Optional[Literal[tuple(sizes)]], Field(None, description=ImagesRequest.model_fields["size"]
                                                        .description)),
        "model": (Optional[Literal[config.model_name]], None),
        "negative_prompt": (Optional[Annotated[StrictStr, Field(max_length=config.max_prompt_chars)]], None),
        "seed": (Annotated[int, Field(ge=0, le=MAX_JSON_SEED - config.max_images + 1), PlainNumber, JsonInt,
                           Strict()],
                 Field(0, description="seed of the first image; image k uses seed + k")),
        "sampler": per_stage(SamplerName), "steps": per_stage(Annotated[int, Field(ge=1, le=min(MAX_STEPS, config.max_steps)), PlainNumber, JsonInt,
                                     Strict()]),
        "guidance": per_stage(Guidance), "threshold": per_stage(ThresholdName), "percentile": per_stage(Percentile),
        "spacing": per_stage(SpacingName), "aug_level": per_stage(AugLevel),
        "sr_strength": per_stage(SrStrength), "lowres_consistency": per_stage(LowresConsistency),
        "adapter": (Optional[Literal[tuple(adapters)]] if adapters else None, ImagesRequest.model_fields["adapter"])}
    images = create_model("ImagesRequest", __base__=ImagesRequest, **fields)
    stream = create_model("StreamRequest", __base__=images,
                          preview_every=(StreamRequest.model_fields["preview_every"].annotation,
                                         StreamRequest.model_fields["preview_every"]))
    return images, stream


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
