"""What an HTTP request asks of the pipeline, checked at the service's boundary: the typed :class:`GenerationRequest`
of a body, its LoRA adapter, the service's step limits, and :class:`ApiError`, the one way a route answers with
the OpenAI API's error body (a one-line message naming the field)."""
import re
from typing import Optional

from fastapi.responses import JSONResponse

from openimagen.errors import InvalidArgumentError
from openimagen.pipeline import GenerationRequest, Pipeline
from openimagen.pipeline.config import SAMPLING_FIELDS
from openimagen.serve.config import ServeConfig
from openimagen.serve.schemas import ImagesRequest, StreamRequest


class ApiError(Exception):
    """An error answered as ``status`` with the OpenAI error body (``headers``: e.g. Retry-After)."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: Optional[str] = None,
                 code: Optional[str] = None, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _param(message: str) -> Optional[str]:
    """The request field a one-line message starts with (``steps[1] should ...`` -> ``steps``), if any."""
    m = re.match(r"(?:unknown field ')?([a-z_]+)", message)
    return m.group(1) if m and (m.group(1) in StreamRequest.model_fields or message.startswith("unknown")) else None


def to_generation_request(body: ImagesRequest, pipe: Pipeline, config: ServeConfig) -> GenerationRequest:
    """The validated :class:`GenerationRequest` an HTTP body asks for (422 ApiError naming the field if not). The
    service's limits are in the body's schema too (:func:`service_models`); they are checked again here for bodies
    built in code."""
    prompts = (body.prompt,)
    if body.n > config.max_images:
        raise ApiError(422, f"n may be at most {config.max_images} on this service, got {body.n}", param="n")
    if body.model is not None and body.model != config.model_name:
        raise ApiError(404, f"model {body.model!r} is not served here; this service serves {config.model_name!r} "
                            f"(GET /v1/models)", param="model", code="model_not_found")
    stop_at_stage = None
    if body.size is not None:
        sizes = [f"{r}x{r}" for r in pipe.resolutions]
        if body.size not in sizes:
            raise ApiError(422, f"size must be one of {', '.join(sizes)}, got {body.size!r}", param="size")
        stop_at_stage = sizes.index(body.size)
    per_stage = {name: v for name in SAMPLING_FIELDS if (v := getattr(body, name)) is not None}
    loras = request_loras(pipe, body.adapter, body.adapter_scale)
    try:
        request = GenerationRequest(prompts=prompts, num_images_per_prompt=body.n, seed=body.seed,
                                    negative_prompt=body.negative_prompt, stop_at_stage=stop_at_stage,
                                    batch_invariant=body.batch_invariant, loras=loras, **per_stage)
        settings = pipe.resolve(request)
    except InvalidArgumentError as e:
        raise ApiError(422, str(e), param=_param(str(e))) from None
    check_limits(settings, config)
    return request


def request_loras(pipe: Pipeline, adapter: Optional[str], scale: float) -> dict:
    """The request's LoRA set for an ``adapter`` field: {} for none, else {adapter: scale}; 422 if it is not
    loaded on this service."""
    if adapter is None:
        return {}
    if adapter not in pipe.loras.loaded:
        loaded = ", ".join(pipe.loras.loaded) or "none"
        raise ApiError(422, f"adapter {adapter!r} is not loaded on this service (loaded: {loaded})", param="adapter")
    return {adapter: scale}


def check_limits(settings, config: ServeConfig) -> None:
    """422 when a stage would run more steps than the service allows."""
    for i, s in enumerate(settings):
        if s.steps > config.max_steps:
            raise ApiError(422, f"steps[{i}] may be at most {config.max_steps} on this service, got {s.steps}",
                           param="steps")
